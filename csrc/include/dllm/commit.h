// dllm/commit.h — CPU kernel for commit_: x[b, l] = x0[b, l] wherever transfer[b, l] (in place).
//
// This is the write-back of a denoising step: the positions chosen for transfer take their
// candidate token, every other position keeps its current token (mask or already committed).
//
// Napkin math, per element: read transfer (1 B) and x (sizeof(T)), read x0 and write x only where
// transfer is set. No FLOPs. For B*L elements with a fraction f transferred and T = int64:
//   bytes >= B*L*1 + f*B*L*(8 + 8)      (mask read always; x0 read + x written where set)
// The kernels stream transfer once and touch x0/x only where it is set, so they sit at that floor
// up to cache-line granularity (a set bit anywhere in a 64-byte line costs the whole line).
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
      if (transfer(b, l)) x(b, l) = x0(b, l);
    }
  }
}

}  // namespace dllm::cpu
