// csrc/cuda/cuda_ops.h — what the CUDA glue of denoise_step and denoise_and_select share: the
// sorted suppress list and the logits' element type.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/sort.h>
#include <c10/util/Exception.h>

#include <optional>
#include <tuple>

#include "dllm/sampling.h"

namespace dllm_torch {

// suppress_tokens sorted ascending on the device (the kernels walk the ids in order; asynchronous,
// no host sync; duplicates are harmless, out-of-range ids are ignored by the kernels). Empty: no
// tensor, no stream work.
inline at::Tensor sorted_suppress(const std::optional<at::Tensor>& suppress_tokens) {  // [n] int64
  if (suppress_tokens.has_value() && suppress_tokens->numel() > 0)
    return std::get<0>(at::sort(*suppress_tokens));
  return at::Tensor();
}

// Calls fn(ptr) with logits' data as the kernels' element type.
template <typename Fn>
void with_logits(const at::Tensor& logits, const char* op, Fn&& fn) {
  switch (logits.scalar_type()) {
    case at::kFloat: fn(logits.const_data_ptr<float>()); break;
    case at::kBFloat16:
      fn(reinterpret_cast<const dllm::bf16_t*>(logits.const_data_ptr<at::BFloat16>()));
      break;
    case at::kHalf:
      fn(reinterpret_cast<const dllm::f16_t*>(logits.const_data_ptr<at::Half>()));
      break;
    default: TORCH_CHECK(false, "dllm_kernels.", op, ": unsupported logits dtype");
  }
}

}  // namespace dllm_torch
