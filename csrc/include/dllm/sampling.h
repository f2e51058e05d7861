// dllm/sampling.h — what the sampling kernels (denoise_step, select_transfer) share on CPU and
// CUDA: parameters, 16-bit float decoding, and the logit sanitising rule of the reference
// (dllm_kernels/reference/denoise_step.py is the specification).
#pragma once

#include <cstdint>
#include <cstring>

#include "dllm/common.h"

namespace dllm {

enum class Confidence : int32_t { kProb = 0, kMargin = 1, kNegEntropy = 2, kRandom = 3 };
enum class SelectRule : int32_t {
  kNumTransfer = 0, kThreshold = 1, kFactor = 2, kProbability = 3, kEntropyBound = 4
};

struct DenoiseParams {
  int64_t mask_id;         // a position is masked iff x == mask_id (unless eligible is given)
  const uint8_t* eligible; // [B, L] bool bytes (strides eligible_sb, eligible_sl), or null: the
  int64_t eligible_sb;     //   positions denoised instead of x == mask_id
  int64_t eligible_sl;
  float inv_temperature;   // fl32(1 / T); 1 when T == 0
  bool sample;             // T > 0: Gumbel-max sampling; else argmax
  int64_t top_k;           // 0: off
  double top_p;            // 1: off (double: compared with a float64 cumulative mass)
  bool top_p_first;        // filter order
  Confidence confidence;
  bool source_sampling;    // p = the filtered distribution (else softmax of raw logits)
  bool shift_logits;       // position l reads the logits of l - 1 (position 0 its own)
  uint64_t seed;
  uint32_t offset;
  bool cfg;                // classifier-free guidance: z = u + cfg_scale1 * (c - u)
  float cfg_scale1;        // fl32(cfg_scale + 1)
};

// Is position (b, l), holding token xv, denoised this step?
DLLM_HOST_DEVICE bool denoised(const DenoiseParams& p, int64_t xv, int64_t b, int64_t l) {
  return p.eligible ? p.eligible[b * p.eligible_sb + l * p.eligible_sl] != 0 : xv == p.mask_id;
}

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
