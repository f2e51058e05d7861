// csrc/cuda/num_transfer_tokens.cu — CUDA implementation of dllm_kernels::num_transfer_tokens
// (checks in csrc/torch/checks.cpp).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda_check.h"
#include "dllm/cuda/num_transfer_tokens.cuh"
#include "checks.h"

namespace dllm_torch {
namespace {

at::Tensor num_transfer_tokens_cuda(const at::Tensor& mask_index,  // [B, L] bool
                                    int64_t steps) {
  num_transfer_tokens_check(mask_index, steps);
  const c10::cuda::CUDAGuard guard(mask_index.device());
  const int64_t B = mask_index.size(0), L = mask_index.size(1);
  at::Tensor out = at::empty({B, steps}, mask_index.options().dtype(at::kLong));  // [B, steps]
  const auto mv = dllm::view2d(reinterpret_cast<const uint8_t*>(mask_index.const_data_ptr<bool>()), mask_index.stride(0),
                               mask_index.stride(1));
  const auto ov = dllm::view2d(out.data_ptr<int64_t>(), out.stride(0), out.stride(1));
  DLLM_CUDA_CHECK("num_transfer_tokens",
                  dllm::cuda::num_transfer_tokens(mv, ov, B, L, steps,
                                                  at::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) {
  m.impl("num_transfer_tokens", &num_transfer_tokens_cuda);
}

}  // namespace dllm_torch
