// dllm/cpu/num_transfer_tokens.h — CPU kernel for LLaDA's linear transfer schedule:
//   n[b, i] = floor(M_b / steps) + (i < M_b mod steps ? 1 : 0),   M_b = sum_l mask[b, l]
// so that row b commits exactly M_b tokens over `steps` denoising steps, the earlier steps taking
// the remainder.
//
// Napkin math: read B*L bytes of mask, write B*steps*8 bytes; O(B*L) integer adds. Tiny next to
// a model forward; the point of a kernel is removing the reference's per-row Python loop.
#pragma once

#include <cstdint>

#include "dllm/common.h"

namespace dllm::cpu {

// Processes rows [row_begin, row_end) so that callers can split rows across threads.
inline void num_transfer_tokens_rows(View2D<const uint8_t> mask,  // [B, L] bool bytes, nonzero: masked
                                     View2D<int64_t> out,         // [B, steps] tokens per step
                                     int64_t L, int64_t steps, int64_t row_begin,
                                     int64_t row_end) {
  for (int64_t b = row_begin; b < row_end; ++b) {
    int64_t masked = 0;
    for (int64_t l = 0; l < L; ++l) masked += mask(b, l) != 0 ? 1 : 0;
    const int64_t base = masked / steps;
    const int64_t remainder = masked % steps;
    for (int64_t i = 0; i < steps; ++i) out(b, i) = base + (i < remainder ? 1 : 0);
  }
}

}  // namespace dllm::cpu
