// csrc/cuda/cache.cu — CUDA implementations of the paged KV cache ops cache_write_, cache_gather
// and cache_copy_pages_ (checks in csrc/torch/checks.cpp, kernels in dllm/cache.cuh).
// cache_write_ with check=false is the per-step path: one launch, no host synchronisation.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "cache_views.h"
#include "checks.h"
#include "cuda_check.h"
#include "dllm/cache.cuh"

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

std::tuple<at::Tensor, at::Tensor> cache_gather_cuda(
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
  const c10::cuda::CUDAGuard guard(k_cache.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  dispatch_elem_size(k_cache, [&](auto e) {
    using E = decltype(e);
    DLLM_CUDA_CHECK(
        "cache_gather",
        dllm::cuda::cache_gather<E>(
            const_cache_view<E>(k_cache), const_cache_view<E>(v_cache),
            dllm::view2d(block_table.const_data_ptr<int32_t>(), block_table.stride(0),
                         block_table.stride(1)),
            kv_lens.const_data_ptr<int32_t>(), kv_lens.stride(0),
            static_cast<E*>(k_out.data_ptr()), static_cast<E*>(v_out.data_ptr()), B, max_len,
            d.num_pages, block_table.size(1), d.page_size, d.heads, d.head_dim, stream));
  });
  return {k_out, v_out};
}

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

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) {
  m.impl("cache_write_", &cache_write_cuda);
  m.impl("cache_gather", &cache_gather_cuda);
  m.impl("cache_copy_pages_", &cache_copy_pages_cuda);
}

}  // namespace dllm_torch
