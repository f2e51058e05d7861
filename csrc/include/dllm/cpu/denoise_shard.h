// dllm/cpu/denoise_shard.h — the per-position pieces of vocabulary-parallel denoise_step on CPU.
// dllm_kernels/tp.py runs them around torch.distributed collectives; each rank holds the logits
// of tokens [vocab_start, vocab_start + V) (V = its shard) and every piece reads only its shard.
//
// Why the result is the unsharded op's bits: everything denoise_step computes per position is
// either order-free (the maxima, the first-index argmax, the Gumbel-max choice keyed by the GLOBAL
// token id, the two largest values, the k-th largest value) or an exact integer sum (the
// confidence sums, dllm::cpu::ExactSums; the top-p bucket masses, exact in double). So the shards'
// partial results merge into exactly what one pass over the whole row gives, with the same
// functions at the same SIMD level (dllm/cpu/denoise_step_simd.h).
//
// A step (tp.py): [filters: top-k candidates, top-p max / histogram / crossing bucket members]
// -> pass 1 "state" (the choice, max, top-2, argmax) -> all_gather, merge in rank order -> pass 2
// "sums" with the global max -> all_reduce -> finalize (the unsharded op's finalize).
//
// Napkin math, bytes a rank sends per denoised position and step (unfiltered): the state, 8
// doubles (64 B), and the sums, 2 int64 (16 B): 80 B, against V_shard * 2 B of bf16 logits that
// an all-gather moves (126,464 / 2 tokens: 126 KB, ~1600x more). top-k adds k floats; top-p a
// 4096-bucket histogram (32 KB: still 4x less than the bf16 shard at tp = 2) and the crossing
// bucket's members (typically tens).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "dllm/cpu/denoise_step.h"

namespace dllm::cpu {

// Layout of a pass-1 state row (float64): ids are global (-1: none).
enum ShardState : int {
  kStM = 0,        // max of d
  kStBest = 1,     // best choice score
  kStBestIdx = 2,  // its token id
  kStBestD = 3,    // d at that id
  kStTop1 = 4,     // two largest d (margin)
  kStTop2 = 5,
  kStAm = 6,     // return_argmax: max of z
  kStAmIdx = 7,  // its first id
  kStateSize = 8,
};

inline void export_state(const RowState& st, int64_t vocab_start, double* out) {
  out[kStM] = st.m;
  out[kStBest] = st.best;
  out[kStBestIdx] = st.best_idx >= 0 ? static_cast<double>(st.best_idx + vocab_start) : -1.0;
  out[kStBestD] = st.best_d;
  out[kStTop1] = st.top1;
  out[kStTop2] = st.top2;
  out[kStAm] = st.am;
  out[kStAmIdx] = st.am_idx >= 0 ? static_cast<double>(st.am_idx + vocab_start) : -1.0;
}

inline RowState import_state(const double* in) {
  RowState st;
  st.m = static_cast<float>(in[kStM]);
  st.best = static_cast<float>(in[kStBest]);
  st.best_idx = static_cast<int64_t>(in[kStBestIdx]);
  st.best_d = static_cast<float>(in[kStBestD]);
  st.top1 = static_cast<float>(in[kStTop1]);
  st.top2 = static_cast<float>(in[kStTop2]);
  st.am = static_cast<float>(in[kStAm]);
  st.am_idx = static_cast<int64_t>(in[kStAmIdx]);
  return st;
}

// The position's shard values as the filtered path sees them (ws.full: sanitised, suppressed ids
// -inf, scaled by 1/T), cut below thr (-inf: nothing cut).
template <typename In>
void shard_values(const In* row, int64_t V, const int64_t* suppress, int64_t n_suppress,
                  const DenoiseParams& p, float thr, Workspace& ws) {
  simd::prepare_filtered_at(simd::level(), row, V, suppress, n_suppress, p, ws, &thr);
}

// out = (max, min) of the finite values of vals[0, V): (-inf, +inf) when none. Branch-free lanes
// (the -inf values are +inf for the min), so the loop vectorises.
DLLM_CPU_CLONES static void finite_range(const float* vals, int64_t V, float* out) {
  constexpr int kL = 8;
  const float inf = std::numeric_limits<float>::infinity();
  float hi[kL], lo[kL];
  for (int j = 0; j < kL; ++j) {
    hi[j] = kNegInf;
    lo[j] = inf;
  }
  int64_t i = 0;
  for (; i + kL <= V; i += kL) {
    for (int j = 0; j < kL; ++j) {
      const float v = vals[i + j];
      hi[j] = v > hi[j] ? v : hi[j];
      const float w = v == kNegInf ? inf : v;
      lo[j] = w < lo[j] ? w : lo[j];
    }
  }
  for (; i < V; ++i) {
    hi[0] = vals[i] > hi[0] ? vals[i] : hi[0];
    const float w = vals[i] == kNegInf ? inf : vals[i];
    lo[0] = w < lo[0] ? w : lo[0];
  }
  for (int j = 1; j < kL; ++j) {
    hi[0] = std::max(hi[0], hi[j]);
    lo[0] = std::min(lo[0], lo[j]);
  }
  out[0] = hi[0];
  out[1] = lo[0];
}

// The shard's k largest values of ws.full, descending, -inf padded: out[0, k).
inline void shard_top_k(const Workspace& ws, int64_t V, int64_t k, float* out) {
  std::vector<float> tmp(ws.full.begin(), ws.full.begin() + V);
  const int64_t n = std::min(k, V);
  std::partial_sort(tmp.begin(), tmp.begin() + n, tmp.end(), std::greater<float>());
  for (int64_t i = 0; i < k; ++i) out[i] = i < n ? tmp[i] : kNegInf;
}

// Pass 1 on the shard: the state of tokens [0, V) (ids offset by p.vocab_start). thr_given: the
// filters' global threshold was applied by shard_values (filtered path).
template <typename In>
RowState shard_pass1(const In* row, int64_t V, const int64_t* suppress, int64_t n_suppress,
                     const DenoiseParams& p, int64_t b, int64_t l, bool filtered, Workspace& ws) {
  RowState st;
  simd::accumulate_range_at(simd::level(), row, 0, V, suppress, n_suppress, p, b, l, filtered, ws,
                            st);
  return st;
}

// Pass 2 on the shard: the exact sums with the global max M.
template <typename In>
ExactSums shard_pass2(const In* row, int64_t V, const int64_t* suppress, int64_t n_suppress,
                      const DenoiseParams& p, bool filtered, Workspace& ws, float M) {
  ExactSums sums;
  simd::exact_sums_at(simd::level(), row, 0, V, suppress, n_suppress, p, filtered, ws, M, sums);
  return sums;
}

}  // namespace dllm::cpu
