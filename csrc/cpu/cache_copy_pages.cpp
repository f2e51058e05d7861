// csrc/cpu/cache_copy_pages.cpp — CPU implementation of dllm_kernels::cache_copy_pages_:
// page -> page copies (checks in csrc/torch/checks.cpp, the copy in dllm/cpu/cache_copy_pages.h).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "cache_views.h"
#include "checks.h"
#include "cpu_ops.h"
#include "dllm/cpu/cache_copy_pages.h"

namespace dllm_torch {

namespace {

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

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("cache_copy_pages_", &cache_copy_pages_cpu); }

}  // namespace dllm_torch
