// csrc/cpu/cache.cpp — CPU implementations of the paged KV cache ops cache_write_, cache_gather
// and cache_copy_pages_ (checks in csrc/torch/checks.cpp, copies in dllm/cache.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "cache_views.h"
#include "checks.h"
#include "dllm/cache.h"

namespace dllm_torch {

namespace {

// Units of work per parallel chunk: ~64 KB of copies.
int64_t grain_for(int64_t bytes_per_unit) {
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(bytes_per_unit, 1));
}

void cache_write_cpu(at::Tensor& k_cache,              // [num_pages, page_size, H, D], in place
                     at::Tensor& v_cache,              // [num_pages, page_size, H, D], in place
                     const at::Tensor& k,              // [N, H, D] or [B, L, H, D]
                     const at::Tensor& v,              // same shape as k
                     const at::Tensor& slot_mapping,   // [N] or [B, L] int64
                     bool check) {
  const CacheDims d = cache_write_check(k_cache, v_cache, k, v, slot_mapping, check);
  const int64_t N = slot_mapping.numel();
  if (N == 0) return;
  const int64_t capacity = d.num_pages * d.page_size;
  dispatch_elem_size(k_cache, [&](auto e) {
    using E = decltype(e);
    const auto kc = cache_view<E>(k_cache), vc = cache_view<E>(v_cache);
    const auto kt = token_view<E>(k), vt = token_view<E>(v);
    const auto sm = slots_view(slot_mapping);
    at::parallel_for(0, N, grain_for(2 * d.heads * d.head_dim * sizeof(E)), [&](int64_t b, int64_t e) {
      dllm::cpu::cache_write_tokens<E>(kc, vc, kt, vt, sm, d.page_size, capacity, d.heads,
                                       d.head_dim, b, e);
    });
  });
}

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

void cache_copy_pages_cpu(at::Tensor& k_cache,     // [num_pages, page_size, H, D], in place
                          at::Tensor& v_cache,     // [num_pages, page_size, H, D], in place
                          const at::Tensor& pairs) // [n, 2] int64 (src, dst)
{
  const CacheDims d = cache_copy_pages_check(k_cache, v_cache, pairs);
  const int64_t n = pairs.size(0);
  if (n == 0) return;
  dispatch_elem_size(k_cache, [&](auto e) {
    using E = decltype(e);
    const auto kc = cache_view<E>(k_cache), vc = cache_view<E>(v_cache);
    const auto pv = dllm::view2d(pairs.const_data_ptr<int64_t>(), pairs.stride(0), pairs.stride(1));
    at::parallel_for(0, n * d.page_size, grain_for(2 * d.heads * d.head_dim * sizeof(E)),
                     [&](int64_t b, int64_t e) {
      dllm::cpu::cache_copy_page_slots<E>(kc, vc, pv, d.num_pages, d.page_size, d.heads, d.head_dim,
                                          b, e);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) {
  m.impl("cache_write_", &cache_write_cpu);
  m.impl("cache_gather", &cache_gather_cpu);
  m.impl("cache_copy_pages_", &cache_copy_pages_cpu);
}

}  // namespace dllm_torch
