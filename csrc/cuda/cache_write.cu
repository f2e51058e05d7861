// csrc/cuda/cache_write.cu — CUDA implementation of dllm_kernels::cache_write_:
// tokens into cache slots (checks in csrc/torch/checks.cpp, the kernel in
// dllm/cuda/cache_write.cuh). check=false is the per-step path: one launch, no host
// synchronisation.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cache_views.h"
#include "checks.h"
#include "cuda_check.h"
#include "dllm/cuda/cache_write.cuh"

namespace dllm_torch {

namespace {

void cache_write_cuda(at::Tensor& k_cache,             // [num_pages, page_size, H, D], in place
                      at::Tensor& v_cache,             // [num_pages, page_size, H, D], in place
                      const at::Tensor& k,             // [N, H, D] or [B, L, H, D]
                      const at::Tensor& v,             // same shape as k
                      const at::Tensor& slot_mapping,  // [N] or [B, L] int64
                      bool check) {
  const CacheDims d = cache_write_check(k_cache, v_cache, k, v, slot_mapping, check);
  const int64_t N = slot_mapping.numel();
  if (N == 0) return;
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto sm = slots_view(slot_mapping);
  dispatch_elem_size(k_cache, [&](auto e) {
    using E = decltype(e);
    DLLM_CUDA_CHECK("cache_write_",
                    dllm::cuda::cache_write<E>(cache_view<E>(k_cache), cache_view<E>(v_cache),
                                               token_view<E>(k), token_view<E>(v), sm, N,
                                               d.page_size, d.num_pages * d.page_size, d.heads,
                                               d.head_dim, stream));
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) { m.impl("cache_write_", &cache_write_cuda); }

}  // namespace dllm_torch
