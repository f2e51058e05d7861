// csrc/cuda/cache_gather.cu — CUDA implementation of dllm_kernels::cache_gather: a batch of paged
// sequences into contiguous k / v (checks in csrc/torch/checks.cpp, the kernel in
// dllm/cuda/cache_gather.cuh).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cache_views.h"
#include "checks.h"
#include "cuda_check.h"
#include "dllm/cuda/cache_gather.cuh"

namespace dllm_torch {

namespace {

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

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) { m.impl("cache_gather", &cache_gather_cuda); }

}  // namespace dllm_torch
