// dllm/cpu/commit.h — CPU kernel for commit_: x[b, l] = x0[b, l] wherever transfer[b, l] (in
// place).
//
// This is the write-back of a denoising step: the positions chosen for transfer take their
// candidate token, every other position keeps its current token (mask or already committed).
//
// Napkin math, per element: read transfer (1 B); where it is set, read x0 and write x
// (sizeof(T) each). No FLOPs. Memory moves in sectors/lines, not elements: with a fraction f >=
// ~1/4 transferred, nearly every 32-byte sector of x and x0 holds a set position, so the floor is
//   bytes = B*L*(1 + 2*sizeof(T))       (17 B per element for int64)
// over memory bandwidth. Both kernels store only where transfer is set, so positions that keep
// their token are never written (no lost updates if another view of x is written concurrently).
#pragma once

#include <cstdint>

#include "dllm/common.h"
#include "dllm/philox.h"

namespace dllm::cpu {

// Processes rows [row_begin, row_end) so that callers can split rows across threads.
template <typename T>
void commit_rows(View2D<T> x,                     // [B, L] token ids, written in place
                 View2D<const T> x0,              // [B, L] candidate token ids
                 View2D<const uint8_t> transfer,  // [B, L] bool bytes, nonzero: x takes x0
                 int64_t L, int64_t row_begin, int64_t row_end) {
  for (int64_t b = row_begin; b < row_end; ++b) {
    for (int64_t l = 0; l < L; ++l) {
      if (transfer(b, l) != 0) x(b, l) = x0(b, l);
    }
  }
}

// Renoise (DiffusionGemma's renoise_canvas as one pass): x[b, l] = a token uniform on [0, V)
// from Philox slot kSlotGroupRenoise of (seed, offset, b, l) wherever eligible and not
// transferred. Napkin math: B*L bytes read twice, one Philox (10 rounds) per renoised position.
inline void renoise_rows(View2D<int64_t> x,               // [B, L] token ids, written in place
                         View2D<const uint8_t> eligible,  // [B, L] bool bytes
                         View2D<const uint8_t> transfer,  // [B, L] bool bytes
                         int64_t V, uint64_t seed, uint32_t offset, int64_t L, int64_t row_begin,
                         int64_t row_end) {
  for (int64_t b = row_begin; b < row_end; ++b) {
    for (int64_t l = 0; l < L; ++l) {
      if (eligible(b, l) == 0 || transfer(b, l) != 0) continue;
      x(b, l) = below_of_word(philox_group(seed, offset, b, l, kSlotGroupRenoise).w[0], V);
    }
  }
}

}  // namespace dllm::cpu
