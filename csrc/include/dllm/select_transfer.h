// dllm/select_transfer.h — CPU kernel of select_transfer: per row of confidences, which eligible
// positions (conf > -inf) commit this step (dllm_kernels/reference/select_transfer.py is the spec).
//
// Napkin math: read B*L*4 bytes, write B*L bytes; the work is a sort of each row's eligible
// positions, O(M log M) with M <= L (L is a block or a sequence: up to a few thousand).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "dllm/philox.h"
#include "dllm/sampling.h"

namespace dllm::cpu {

struct SelectParams {
  SelectRule rule;
  double value;     // threshold (compared in float32, as the reference does) or factor
  bool strict;      // threshold: conf > value instead of >=
  uint64_t seed;
  uint32_t offset;
};

// Rows [row_begin, row_end). k: int64 [B] (num_transfer), prob: float [B] (probability).
inline void select_transfer_rows(View2D<const float> conf,   // [B, L] -inf = not eligible
                                 const int64_t* k,           // [B] or null
                                 const float* prob,          // [B] or null
                                 const SelectParams& p, int64_t L,
                                 View2D<uint8_t> out,        // [B, L] bool
                                 int64_t row_begin, int64_t row_end) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  std::vector<int64_t> order;
  for (int64_t b = row_begin; b < row_end; ++b) {
    for (int64_t l = 0; l < L; ++l) out(b, l) = 0;
    if (p.rule == SelectRule::kProbability) {
      for (int64_t l = 0; l < L; ++l) {
        if (!(conf(b, l) > kNegInf)) continue;
        const Philox4 w = philox_group(p.seed, p.offset, b, l, kSlotGroupTransfer);
        out(b, l) = uniform_closed0(w.w[0]) < prob[b] ? 1 : 0;
      }
      continue;
    }
    // Eligible positions by confidence, descending, ties to the lower index.
    order.clear();
    for (int64_t l = 0; l < L; ++l)
      if (conf(b, l) > kNegInf) order.push_back(l);
    const int64_t M = static_cast<int64_t>(order.size());
    if (M == 0) continue;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t c) { return conf(b, a) > conf(b, c); });
    int64_t take = 0;
    switch (p.rule) {
      case SelectRule::kNumTransfer:
        take = std::min(std::max<int64_t>(k[b], 0), M);
        break;
      case SelectRule::kThreshold:
        for (int64_t l = 0; l < L; ++l) {
          const float c = conf(b, l), tau = static_cast<float>(p.value);
          if (c > kNegInf && (p.strict ? c > tau : c >= tau)) out(b, l) = 1;
        }
        take = 1;  // always the most confident eligible position
        break;
      case SelectRule::kFactor: {
        int64_t first = -1;
        for (int64_t i = 1; i < M; ++i) {
          if (static_cast<double>(conf(b, order[i])) < 1.0 - p.value / (i + 2)) {
            first = i;
            break;
          }
        }
        take = (first < 0 || first == M - 1) ? M : first;
        break;
      }
      case SelectRule::kProbability:
        break;
    }
    for (int64_t i = 0; i < take; ++i) out(b, order[i]) = 1;
  }
}

}  // namespace dllm::cpu
