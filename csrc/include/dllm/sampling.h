// dllm/sampling.h — what the kernels share on CPU and CUDA: 16-bit float decoding, and the logit
// sanitising rule of the reference (dllm_kernels/reference/denoise_step.py is the specification).
// The ops' parameters live in their own headers (dllm/denoise_step.h, dllm/select_transfer.h).
#pragma once

#include <cstdint>
#include <cstring>

#include "dllm/common.h"

namespace dllm {

// 16-bit float storage types (bit patterns), decoded identically on host and device.
struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };

DLLM_HOST_DEVICE float bits_to_float(uint32_t u) {
  float f;
#if defined(__CUDA_ARCH__)
  f = __uint_as_float(u);
#else
  std::memcpy(&f, &u, sizeof(f));
#endif
  return f;
}

DLLM_HOST_DEVICE float to_float(float v) { return v; }
DLLM_HOST_DEVICE float to_float(bf16_t v) { return bits_to_float(static_cast<uint32_t>(v.bits) << 16); }
DLLM_HOST_DEVICE float to_float(f16_t v) {
  const uint32_t sign = static_cast<uint32_t>(v.bits & 0x8000u) << 16;
  uint32_t exp = (v.bits >> 10) & 0x1Fu, mant = v.bits & 0x3FFu;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    if (mant == 0) return bits_to_float(sign);                                // +-0
    exp = 1;                                                                   // subnormal
    while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
    mant &= 0x3FFu;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

constexpr float kFloatMax = 3.402823466e+38f;

// NaN -> -inf (never chosen), +inf -> the largest float (chosen; ties share the mass).
DLLM_HOST_DEVICE float sanitize(float z) {
  if (z != z) return -__builtin_inff();
  return z > kFloatMax ? kFloatMax : z;
}

}  // namespace dllm
