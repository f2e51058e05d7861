// dllm/sampling.h — what the sampling kernels (denoise_step, select_transfer) share on CPU and
// CUDA: the logit sanitising rule of the reference (dllm_kernels/reference/denoise_step.py is the
// specification) and the 16-bit float decoding (dllm/float16.h). The ops' parameters live in their
// own headers (dllm/denoise_step.h, dllm/select_transfer.h).
#pragma once

#include <cstdint>

#include "dllm/common.h"
#include "dllm/float16.h"

namespace dllm {

constexpr float kFloatMax = 3.402823466e+38f;

// NaN -> -inf (never chosen), +inf -> the largest float (chosen; ties share the mass).
DLLM_HOST_DEVICE float sanitize(float z) {
  if (z != z) return -__builtin_inff();
  return z > kFloatMax ? kFloatMax : z;
}

}  // namespace dllm
