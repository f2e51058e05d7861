// csrc/cpu/cache_write.cpp — CPU implementation of dllm_kernels::cache_write_:
// tokens into cache slots (checks in csrc/torch/checks.cpp, the copy in dllm/cpu/cache_write.h).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "cache_views.h"
#include "checks.h"
#include "cpu_ops.h"
#include "dllm/cpu/cache_write.h"

namespace dllm_torch {

namespace {

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

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("cache_write_", &cache_write_cpu); }

}  // namespace dllm_torch
