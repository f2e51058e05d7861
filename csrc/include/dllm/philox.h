// dllm/philox.h — Philox4x32-10, the counter-based RNG shared bit for bit by the CPU kernels, the
// CUDA kernels and the PyTorch reference (dllm_kernels/reference/philox.py, which documents the
// streams). Checked against the Random123 known-answer vectors in csrc/tests/test_philox.cpp.
#pragma once

#include <cstdint>

#include "dllm/common.h"

namespace dllm {

struct Philox4 {
  uint32_t w[4];
};

DLLM_HOST_DEVICE void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// counter (c0, c1, c2, c3), key (k0, k1), 10 rounds.
DLLM_HOST_DEVICE Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                       uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Stream slots beyond any vocabulary (see reference/philox.py).
constexpr uint32_t kSlotGroupConfidence = 0xFFFFFFFFu;  // "random" confidence, word 0
constexpr uint32_t kSlotGroupTransfer = 0xFFFFFFFEu;    // select_transfer(probability), word 0
constexpr uint32_t kSlotGroupRenoise = 0xFFFFFFFDu;     // denoise_and_select(renoise), word 0

// (w * n) >> 32: an integer in [0, n) (n < 2^31) from a 32-bit word; the renoised token.
DLLM_HOST_DEVICE int64_t below_of_word(uint32_t w, int64_t n) {
  return static_cast<int64_t>((static_cast<uint64_t>(w) * static_cast<uint64_t>(n)) >> 32);
}

// The four words of vocabulary group v / 4 at position (b, l).
DLLM_HOST_DEVICE Philox4 philox_group(uint64_t seed, uint32_t offset, int64_t b, int64_t l,
                                      uint32_t group) {
  return philox4x32_10(group, static_cast<uint32_t>(l), static_cast<uint32_t>(b), offset,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// (0, 1), exact in float32: Gumbel noise input.
DLLM_HOST_DEVICE float uniform_open01(uint32_t w) {
  return static_cast<float>((w >> 9) * 2u + 1u) * 5.9604644775390625e-08f;  // 2^-24
}

// [0, 1), exact in float32: "random" confidence and transfer coins.
DLLM_HOST_DEVICE float uniform_closed0(uint32_t w) {
  return static_cast<float>(w >> 8) * 5.9604644775390625e-08f;
}

// ---- Gumbel noise, bit-identical on host, device and in the PyTorch reference
// --------------------- log is evaluated with one fixed sequence of separately rounded float32
// multiplies and adds (no FMA contraction, no library call), mirrored op for op by
// reference/philox.py, so the three backends draw the same noise and therefore the same tokens.

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

DLLM_HOST_DEVICE float det_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

DLLM_HOST_DEVICE float det_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

DLLM_HOST_DEVICE uint32_t det_float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  __builtin_memcpy(&u, &x, sizeof(u));
  return u;
#endif
}

DLLM_HOST_DEVICE float det_bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  __builtin_memcpy(&x, &u, sizeof(x));
  return x;
#endif
}

// Natural log of a normal, positive float32 (~1 ulp): x = 2^e * m with m in [sqrt(1/2), sqrt(2)),
// log x = e*ln2 + log1p(m - 1), the log1p by a degree-9 polynomial (Cephes' logf scheme).
DLLM_HOST_DEVICE float log_det(float x) {
  const uint32_t bits = det_float_bits(x);
  int32_t e = static_cast<int32_t>((bits >> 23) & 0xFFu) - 127;
  float m = det_bits_float((bits & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  const bool big = m > 1.41421356f;
  m = big ? det_mul(m, 0.5f) : m;  // exact
  e = big ? e + 1 : e;
  const float f = det_add(m, -1.0f);  // exact
  const float z = det_mul(f, f);
  float y = 7.0376836292e-2f;
  y = det_add(det_mul(y, f), -1.1514610310e-1f);
  y = det_add(det_mul(y, f), 1.1676998740e-1f);
  y = det_add(det_mul(y, f), -1.2420140846e-1f);
  y = det_add(det_mul(y, f), 1.4249322787e-1f);
  y = det_add(det_mul(y, f), -1.6668057665e-1f);
  y = det_add(det_mul(y, f), 2.0000714765e-1f);
  y = det_add(det_mul(y, f), -2.4999993993e-1f);
  y = det_add(det_mul(y, f), 3.3333331174e-1f);
  y = det_mul(det_mul(y, f), z);
  const float fe = static_cast<float>(e);
  y = det_add(y, det_mul(fe, -2.12194440e-4f));
  y = det_add(y, det_mul(z, -0.5f));
  return det_add(det_add(f, y), det_mul(fe, 0.693359375f));
}

// The Gumbel draw of a Philox word: -log(-log U), U = uniform_open01(w); at most 16.64.
DLLM_HOST_DEVICE float gumbel_of_word(uint32_t w) { return -log_det(-log_det(uniform_open01(w))); }

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace dllm
