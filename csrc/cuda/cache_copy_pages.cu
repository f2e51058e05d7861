// csrc/cuda/cache_copy_pages.cu — CUDA implementation of dllm_kernels::cache_copy_pages_:
// page -> page copies (checks in csrc/torch/checks.cpp, the kernel in
// dllm/cuda/cache_copy_pages.cuh).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cache_views.h"
#include "checks.h"
#include "cuda_check.h"
#include "dllm/cuda/cache_copy_pages.cuh"

namespace dllm_torch {

namespace {

void cache_copy_pages_cuda(at::Tensor& k_cache,      // [num_pages, page_size, H, D], in place
                           at::Tensor& v_cache,      // [num_pages, page_size, H, D], in place
                           const at::Tensor& pairs)  // [n, 2] int64 (src, dst)
{
  const CacheDims d = cache_copy_pages_check(k_cache, v_cache, pairs);
  const int64_t n = pairs.size(0);
  if (n == 0) return;
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  dispatch_elem_size(k_cache, [&](auto e) {
    using E = decltype(e);
    DLLM_CUDA_CHECK("cache_copy_pages_",
                    dllm::cuda::cache_copy_pages<E>(
                        cache_view<E>(k_cache), cache_view<E>(v_cache),
                        dllm::view2d(pairs.const_data_ptr<int64_t>(), pairs.stride(0), pairs.stride(1)),
                        n, d.num_pages, d.page_size, d.heads, d.head_dim, stream));
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) { m.impl("cache_copy_pages_", &cache_copy_pages_cuda); }

}  // namespace dllm_torch
