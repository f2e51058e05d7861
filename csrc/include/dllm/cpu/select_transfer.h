// dllm/cpu/select_transfer.h — CPU kernel of select_transfer: per row of confidences, which
// eligible positions (conf > -inf) commit this step (dllm_kernels/reference/select_transfer.py is
// the spec).
//
// Napkin math: read B*L*4 bytes, write B*L bytes. Work per row of M eligible positions:
// top-k O(M log k) (partial sort), threshold O(M) (no order), factor and entropy_bound
// O(M log M) (full sort; entropy_bound then one float64 running sum).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "dllm/common.h"
#include "dllm/philox.h"
#include "dllm/select_transfer.h"

namespace dllm::cpu {

// Rows [row_begin, row_end). k: int64 [B] (num_transfer), prob: float [B] (probability).
inline void select_transfer_rows(View2D<const float> conf,  // [B, L] -inf = not eligible
                                 const int64_t* k,          // [B] or null
                                 const float* prob,         // [B] or null
                                 const SelectParams& p, int64_t L,
                                 View2D<uint8_t> out,  // [B, L] bool
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
    // Eligible positions by confidence, descending, ties to the lower index; each rule orders
    // only as much as it needs.
    order.clear();
    for (int64_t l = 0; l < L; ++l)
      if (conf(b, l) > kNegInf) order.push_back(l);
    const int64_t M = static_cast<int64_t>(order.size());
    if (M == 0) continue;
    const auto before = [&](int64_t a, int64_t c) {
      const float ca = conf(b, a), cc = conf(b, c);
      return ca > cc || (ca == cc && a < c);
    };
    int64_t take = 0;
    switch (p.rule) {
      case SelectRule::kNumTransfer:  // the top k: a partial sort, O(M log k)
        take = std::min(std::max<int64_t>(k[b], 0), M);
        std::partial_sort(order.begin(), order.begin() + take, order.end(), before);
        break;
      case SelectRule::kThreshold: {  // no order needed: the best plus everything above tau
        const float tau = static_cast<float>(p.value);
        for (const int64_t l : order) {
          const float c = conf(b, l);
          if (p.strict ? c > tau : c >= tau) out(b, l) = 1;
        }
        std::swap(order[0], *std::min_element(order.begin(), order.end(), before));
        take = 1;
        break;
      }
      case SelectRule::kFactor: {
        std::sort(order.begin(), order.end(), before);
        int64_t first = -1;
        for (int64_t i = 1; i < M; ++i) {
          if (conf(b, order[i]) <
              static_cast<float>(1.0 - p.value / (i + 2))) {  // as Fast-dLLM: in f32
            first = i;
            break;
          }
        }
        take = (first < 0 || first == M - 1) ? M : first;
        break;
      }
      case SelectRule::kEntropyBound: {  // H = -conf ascending; S_k summed in float64
        std::sort(order.begin(), order.end(), before);
        const float gamma = static_cast<float>(p.value);
        double sum = 0;
        for (int64_t i = 0; i < M; ++i) {
          const float h = -conf(b, order[i]);
          sum += h;
          const float s_k = static_cast<float>(sum);   // torch.cumsum's float64 running sum
          if (s_k - h <= gamma) out(b, order[i]) = 1;  // sum_{j<=k} H_j - H_k <= gamma
        }
        break;
      }
      case SelectRule::kProbability:
        break;
    }
    for (int64_t i = 0; i < take; ++i) out(b, order[i]) = 1;
  }
}

}  // namespace dllm::cpu
