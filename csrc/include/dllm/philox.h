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

}  // namespace dllm
