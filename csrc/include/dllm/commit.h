// dllm/commit.h — CPU kernel for commit_: x[b, l] = x0[b, l] wherever transfer[b, l] (in place).
//
// This is the write-back of a denoising step: the positions chosen for transfer take their
// candidate token, every other position keeps its current token (mask or already committed).
//
// Napkin math, per element: read transfer (1 B); where it is set, read x0 and write x
// (sizeof(T) each). No FLOPs. Memory moves in sectors/lines, not elements: with a fraction f >= ~1/4
// transferred, nearly every 32-byte sector of x and x0 holds a set position, so the floor is
//   bytes = B*L*(1 + 2*sizeof(T))       (17 B per element for int64)
// over memory bandwidth. The CPU loop below is a branch-free select (a random mask would
// mispredict a branch on every other element), so it also reads x: 25 B per element in practice.
#pragma once

#include <cstdint>

#include "dllm/common.h"

namespace dllm::cpu {

// Processes rows [row_begin, row_end) so that callers can split rows across threads.
template <typename T>
void commit_rows(View2D<T> x,                  // [B, L] token ids, written in place
                 View2D<const T> x0,           // [B, L] candidate token ids
                 View2D<const bool> transfer,  // [B, L] true where x takes x0
                 int64_t L, int64_t row_begin, int64_t row_end) {
  for (int64_t b = row_begin; b < row_end; ++b) {
    for (int64_t l = 0; l < L; ++l) {
      const T keep = x(b, l);
      x(b, l) = transfer(b, l) ? x0(b, l) : keep;
    }
  }
}

}  // namespace dllm::cpu
