// csrc/cpu/cache_gather.cpp — CPU implementation of dllm_kernels::cache_gather: a batch of paged
// sequences into contiguous k / v (checks in csrc/torch/checks.cpp, the copy in
// dllm/cpu/cache_gather.h).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <tuple>

#include "cache_views.h"
#include "checks.h"
#include "cpu_ops.h"
#include "dllm/cpu/cache_gather.h"

namespace dllm_torch {

namespace {

std::tuple<at::Tensor, at::Tensor> cache_gather_cpu(
    const at::Tensor& k_cache,      // [num_pages, page_size, H, D]
    const at::Tensor& v_cache,      // [num_pages, page_size, H, D]
    const at::Tensor& block_table,  // [B, max_pages] int32
    const at::Tensor& kv_lens,      // [B] int32
    int64_t max_len) {
  const CacheDims d = cache_gather_check(k_cache, v_cache, block_table, kv_lens, max_len);
  const int64_t B = block_table.size(0);
  at::Tensor k_out = at::empty({B, max_len, d.heads, d.head_dim}, k_cache.options());
  at::Tensor v_out = at::empty_like(k_out);
  if (k_out.numel() == 0) return {k_out, v_out};
  dispatch_elem_size(k_cache, [&](auto e) {
    using E = decltype(e);
    const auto kc = const_cache_view<E>(k_cache), vc = const_cache_view<E>(v_cache);
    const auto bt = dllm::view2d(block_table.const_data_ptr<int32_t>(), block_table.stride(0),
                                 block_table.stride(1));
    E* ko = static_cast<E*>(k_out.data_ptr());
    E* vo = static_cast<E*>(v_out.data_ptr());
    at::parallel_for(0, B * max_len, grain_for(2 * d.heads * d.head_dim * sizeof(E)),
                     [&](int64_t b, int64_t e) {
      dllm::cpu::cache_gather_tokens<E>(kc, vc, bt, kv_lens.const_data_ptr<int32_t>(),
                                        kv_lens.stride(0), ko, vo, max_len, d.num_pages,
                                        block_table.size(1), d.page_size, d.heads, d.head_dim, b, e);
    });
  });
  return {k_out, v_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("cache_gather", &cache_gather_cpu); }

}  // namespace dllm_torch
