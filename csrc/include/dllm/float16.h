// dllm/float16.h — 16-bit float storage types (bit patterns) and their decoding to float,
// identical on host and device; the kernels' element types next to float.
#pragma once

#include <cstdint>
#include <cstring>

#include "dllm/common.h"

namespace dllm {

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

}  // namespace dllm
