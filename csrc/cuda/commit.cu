// csrc/cuda/commit.cu — CUDA implementation of dllm_kernels::commit_ (checks in csrc/torch/checks.cpp).
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda_check.h"
#include "dllm/cuda/commit.cuh"
#include "checks.h"

namespace dllm_torch {
namespace {

void commit_cuda(at::Tensor& x,               // [B, L] int64/int32, written in place
                 const at::Tensor& x0,        // [B, L] same dtype as x
                 const at::Tensor& transfer)  // [B, L] bool
{
  commit_check(x, x0, transfer);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_INDEX_TYPES(x.scalar_type(), "commit_", [&] {
    const auto xv = dllm::view2d(x.data_ptr<index_t>(), x.stride(0), x.stride(1));
    const auto x0v = dllm::view2d(x0.const_data_ptr<index_t>(), x0.stride(0), x0.stride(1));
    const auto tv =
        dllm::view2d(reinterpret_cast<const uint8_t*>(transfer.const_data_ptr<bool>()), transfer.stride(0), transfer.stride(1));
    DLLM_CUDA_CHECK("commit_",
                    dllm::cuda::commit<index_t>(xv, x0v, tv, x.size(0), x.size(1), stream));
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) { m.impl("commit_", &commit_cuda); }

}  // namespace dllm_torch
