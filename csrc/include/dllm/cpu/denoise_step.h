// dllm/cpu/denoise_step.h — CPU kernel of denoise_step: per masked position, logits [V] ->
// candidate token x0 and a confidence (dllm_kernels/reference/denoise_step.py is the
// specification).
//
// Napkin math: one read of the position's V logits (4 B fp32, 2 B bf16/fp16) is the floor; for
// [1, 32, 126464] fp32 that is 16 MB, ~0.7 ms at this machine's ~24 GB/s copy bandwidth, and one
// exp per element (~4M) is the compute. Fast path (no top-k/top-p): one pass over V in chunks of
// kChunk logits decoded into an L1-resident buffer, keeping max / top-2 / argmax state, then a
// second pass (the row is in L2) for the confidence sums, exact integers relative to the row's max
// (exact_sums_range: the same bits for any split of the row, tensor parallelism included); exp is
// a branch-free polynomial the compiler vectorises (8 lanes). T > 0 adds
// Philox (scalar) + two deterministic logs (vectorised) per element for Gumbel-max, skipped for
// groups that cannot win even with the largest possible draw.
// Filtered path (top_k > 0 or top_p < 1): the position's scaled logits are copied to a per-thread
// [V] buffer; top-k uses nth_element, top-p a mass histogram + the crossing bucket (both O(V)).
// This is the generic code; on x86-64 with AVX2 / AVX-512 the vector kernel of
// dllm/cpu/denoise_step_simd.h runs instead (same x0, same Gumbel bits; it falls back to these
// functions for chunks holding suppressed ids and for the last partial block).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "dllm/cpu/math.h"
#include "dllm/philox.h"
#include "dllm/denoise_step.h"
#include "dllm/sampling.h"

namespace dllm::cpu {

constexpr int64_t kChunk = 2048;
constexpr int kLanes = 8;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Running state of one position over its vocabulary.
struct RowState {
  float m = kNegInf;                     // max of d (the confidence distribution's logits)
  double s = 0;                          // sum exp(d - m)             (exact_sums, after the pass)
  double t1 = 0;                         // sum exp(d - m) * (d - m)   (for sum p log p)
  float top1 = kNegInf, top2 = kNegInf;  // two largest d (margin)
  float best = kNegInf;                  // best choice score (scaled, or scaled + gumbel)
  int64_t best_idx = -1;
  float best_d = kNegInf;  // d at best_idx (prob)
  float am = kNegInf;      // return_argmax: the max of z (sanitised, suppressed ids skipped)
  int64_t am_idx = -1;     //   and its first id (-1: every z is -inf)
};

DLLM_CPU_CLONES static float chunk_max(const float* d, int64_t n) {
  float lane_max[kLanes];
  for (int j = 0; j < kLanes; ++j) lane_max[j] = kNegInf;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane_max[j] = lane_max[j] > d[i + j] ? lane_max[j] : d[i + j];
  float cm = kNegInf;
  for (int j = 0; j < kLanes; ++j) cm = std::max(cm, lane_max[j]);
  for (; i < n; ++i) cm = std::max(cm, d[i]);
  return cm;
}

// ---- the confidence sums: exact, whatever the order or split of the vocabulary ----------------
// s = sum exp(d - M) and t1 = sum exp(d - M) (d - M), M = the position's max of d (known after the
// pass over the row): every term is rounded to a multiple of 2^-40 and the integers are added, so
// the sums depend neither on the summation order nor on how the vocabulary is split (threads,
// vocabulary slices, tensor-parallel shards: dllm_kernels/tp.py): a position's confidence is the
// same bits however the row was cut. Rounding: <= 2^-41 per term, |error| <= V 2^-41 (2^-23 of
// s >= 1 at V = 2^18 in the worst case, ~2^-32 typically: unbiased); V < 2^23 keeps the
// integers in int64. exp(d - M) is exp_nonpos here and the vector exp at the vector levels: one
// function per level for every element (tails included), or the split would matter.
struct ExactSums {
  int64_t s = 0;  // sum round(exp(d - M) 2^40)
  int64_t t = 0;  // sum round(fl32(exp(d - M) (d - M)) 2^40)   (neg_entropy)
};
constexpr double kSumScale = 1099511627776.0;  // 2^40

// round(v 2^40), nearest with ties to even (the default rounding mode), for |v| <= 1 (the vector
// code computes the same integer in two int32 halves).
inline int64_t quantize(float v) { return std::llrint(static_cast<double>(v) * kSumScale); }

// d[0, n) into sums (M finite). d = -inf and d - M < -80 give 0.
DLLM_CPU_CLONES static void exact_sums_chunk(const float* d, int64_t n, float M, bool entropy,
                                             ExactSums& sums) {
  int64_t s = 0, t = 0;
  if (entropy) {
    for (int64_t i = 0; i < n; ++i) {
      const float dm = std::max(d[i] - M, -80.0f);
      const float e = exp_nonpos(dm);
      s += quantize(e);
      t += quantize(e * dm);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) s += quantize(exp_nonpos(std::max(d[i] - M, -80.0f)));
  }
  sums.s += s;
  sums.t += t;
}

// The position's sums as the finalize step reads them.
inline void set_sums(RowState& st, const ExactSums& sums) {
  st.s = static_cast<double>(sums.s) / kSumScale;
  st.t1 = static_cast<double>(sums.t) / kSumScale;
}

// First index of the chunk's maximum score cm (ties to the smallest index); merges into st.best.
inline void accumulate_argmax(RowState& st, const float* score, const float* d, int64_t n,
                              int64_t base, float cm) {
  if (!(cm > st.best)) return;  // earlier chunks win ties; -inf chunks never win
  for (int64_t i = 0; i < n; ++i) {
    if (score[i] == cm) {
      st.best = cm;
      st.best_idx = base + i;
      st.best_d = d[i];
      return;
    }
  }
}

// Two largest d (duplicates count twice), branch-free per lane: insert(v) keeps (t1 >= t2).
DLLM_CPU_CLONES static void accumulate_top2(RowState& st, const float* d, int64_t n) {
  float t1[kLanes], t2[kLanes];
  for (int j = 0; j < kLanes; ++j) t1[j] = t2[j] = kNegInf;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float v = d[i + j];
      t2[j] = std::max(t2[j], std::min(t1[j], v));
      t1[j] = std::max(t1[j], v);
    }
  }
  const auto insert = [&](float v) {
    st.top2 = std::max(st.top2, std::min(st.top1, v));
    st.top1 = std::max(st.top1, v);
  };
  for (int j = 0; j < kLanes; ++j) {
    insert(t1[j]);
    insert(t2[j]);
  }
  for (; i < n; ++i) insert(d[i]);
}

// The largest Gumbel draw the stream can produce, -log(-log(max U)) = 16.64 (bounded by 17).
constexpr float kGumbelBound = 17.0f;

// Gumbel scores of one chunk, vectorised: score = scaled + gumbel_of_word(word), or -inf where the
// group was skipped. Compiled without FMA contraction so the noise is bit-identical to the CUDA
// kernel and the reference (dllm::log_det).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
DLLM_CPU_CLONES static void gumbel_add(float* score, const float* scaled, const uint32_t* words,
                                       const uint8_t* skip, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = scaled[i] + gumbel_of_word(words[i]);
    score[i] = skip[i] ? kNegInf : s;
  }
}
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC pop_options
#endif

// score = scaled + Gumbel noise for tokens [base, base + n) at (b, l); base is a multiple of 4.
// A group of 4 whose best possible score (scaled + kGumbelBound) is below `beat` (the best score
// so far) cannot win: its Philox draw is skipped and its score is -inf. Exact.
inline void gumbel_scores(float* score, const float* scaled, int64_t n, int64_t base,
                          const DenoiseParams& p, int64_t b, int64_t l, float beat, uint32_t* words,
                          uint8_t* skip) {
  for (int64_t i = 0; i < n; i += 4) {
    const int64_t w = std::min<int64_t>(4, n - i);
    float top = kNegInf;
    for (int64_t j = 0; j < w; ++j) top = std::max(top, scaled[i + j]);
    const bool cut = top + kGumbelBound < beat;
    Philox4 r{{0x3F800000u, 0x3F800000u, 0x3F800000u, 0x3F800000u}};
    if (!cut)
      r = philox_group(p.seed, p.offset, b, l,
                       static_cast<uint32_t>((p.vocab_start + base + i) >> 2));
    for (int64_t j = 0; j < w; ++j) {
      words[i + j] = r.w[j];
      skip[i + j] = cut ? 1 : 0;
    }
  }
  gumbel_add(score, scaled, words, skip, n);
}

// src[0, n) -> sanitised float32 (one clone set per input type).
template <typename In>
inline void decode_impl(const In* src, int64_t n, float* z) {
  for (int64_t i = 0; i < n; ++i) z[i] = sanitize(to_float(src[i]));
}
DLLM_CPU_CLONES static void decode(const float* s, int64_t n, float* z) { decode_impl(s, n, z); }
DLLM_CPU_CLONES static void decode(const bf16_t* s, int64_t n, float* z) { decode_impl(s, n, z); }
DLLM_CPU_CLONES static void decode(const f16_t* s, int64_t n, float* z) { decode_impl(s, n, z); }

// Decodes logits [v0, v0 + n) into z (sanitised, suppressed -> -inf) and, if scaled != z, the
// temperature-scaled copy. suppress: sorted ids, *next: first id >= v0 (advanced past the chunk).
template <typename In>
inline void load_chunk(const In* row, int64_t v0, int64_t n, const int64_t* suppress,
                       int64_t n_suppress, int64_t* next, float inv_t, float* z, float* scaled) {
  decode(row + v0, n, z);
  while (*next < n_suppress && suppress[*next] < v0 + n) {
    if (suppress[*next] >= v0) z[suppress[*next] - v0] = kNegInf;
    ++*next;
  }
  if (scaled != z)
    for (int64_t i = 0; i < n; ++i) scaled[i] = sanitize(z[i] * inv_t);
}

// Keeps values >= the k-th largest (ties kept): returns that threshold (-inf keeps everything).
inline float top_k_threshold(const float* vals, int64_t V, int64_t k, std::vector<float>& tmp) {
  if (k <= 0 || k >= V) return kNegInf;
  tmp.assign(vals, vals + V);
  // A partial sort for the usual small k (O(V log k), ~20x faster than nth_element at k = 50 and
  // V = 126,464); the same k-th largest value either way.
  if (k <= 1024)
    std::partial_sort(tmp.begin(), tmp.begin() + k, tmp.end(), std::greater<float>());
  else
    std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end(), std::greater<float>());
  return tmp[k - 1];
}

// The mass walk of top_p_threshold on tmp[0, n) with weights wts (reordered in place): the largest
// value t with above + mass(v >= t) >= need, found by a 3-way quickselect by mass (expected O(n));
// returns false (above += the whole mass) when rounding leaves need unreached.
inline bool top_p_quickselect(float* tmp, float* wts, int64_t n, double need, double& above,
                              float& tau) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const float a = tmp[lo], b = tmp[lo + (hi - lo) / 2], c = tmp[hi - 1];
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of 3
    // Dutch flag: [lo, gt) > pivot, [gt, i) == pivot, [lt, hi) < pivot.
    int64_t gt = lo, i = lo, lt = hi;
    while (i < lt) {
      if (tmp[i] > pivot) {
        std::swap(tmp[i], tmp[gt]);
        std::swap(wts[i], wts[gt]);
        ++gt;
        ++i;
      } else if (tmp[i] < pivot) {
        --lt;
        std::swap(tmp[i], tmp[lt]);
        std::swap(wts[i], wts[lt]);
      } else
        ++i;
    }
    double mass_gt = 0, mass_eq = 0;
    for (int64_t j = lo; j < gt; ++j) mass_gt += wts[j];
    for (int64_t j = gt; j < lt; ++j) mass_eq += wts[j];
    if (above + mass_gt >= need && gt > lo) {
      hi = gt;
      continue;
    }  // crosses among larger ones
    if (above + mass_gt + mass_eq >= need) {
      tau = pivot;
      return true;
    }
    above += mass_gt + mass_eq;
    lo = lt;
  }
  return false;
}

// Buckets of the top-p histogram: a finite v goes to min(floor((m - v) * 64), 4095), i.e. 1/64-wide
// slices of the 64 below the max and one for everything lower (weights < e^-64 of the max).
// Monotone in v (every step rounds monotonically), the same in every clone (no FMA to contract).
// The bucket sums are exact (the weights of a bucket lie within a factor e^(1/64) < 2, so their
// float32 values add up exactly in double for up to 2^28 terms), hence the same in any order or
// split of the row (tensor parallelism adds the shards' histograms); the last bucket's weights
// (< e^-64 each, spanning every binade below) would not be: they count as 0. The reference's mass
// includes them, a difference < V e^-64 ~ 2^-74 of the total.
constexpr int kTopPBuckets = 4096;
constexpr float kTopPPerUnit = 64.0f;

inline int32_t top_p_bucket(float v, float m) {
  return static_cast<int32_t>(std::min((m - v) * kTopPPerUnit, float(kTopPBuckets - 1)));
}

// hist[b] += exp(v - m) over the finite values of bucket b (double sums, vectorised weights).
DLLM_CPU_CLONES static void top_p_histogram(const float* vals, int64_t V, float m, double* hist) {
  constexpr int64_t kB = 256;
  float w[kB];
  int32_t bucket[kB];
  for (int64_t v0 = 0; v0 < V; v0 += kB) {
    const int64_t n = std::min(kB, V - v0);
    for (int64_t i = 0; i < n; ++i) {  // -inf and the last bucket: weight 0
      bucket[i] = top_p_bucket(vals[v0 + i], m);
      w[i] = bucket[i] < kTopPBuckets - 1 ? exp_nonpos(vals[v0 + i] - m) : 0.0f;
    }
    for (int64_t i = 0; i < n; ++i) hist[bucket[i]] += w[i];
  }
}

// The finite values of bucket b, appended to out.
DLLM_CPU_CLONES static void top_p_members(const float* vals, int64_t V, float m, int32_t b,
                                          std::vector<float>& out) {
  for (int64_t i = 0; i < V; ++i)
    if (vals[i] > kNegInf && top_p_bucket(vals[i], m) == b) out.push_back(vals[i]);
}

// tau = the value at which the descending cumulative softmax mass first reaches top_p (ties kept).
// Selection by mass instead of a sort: one pass sums the weights w = exp(v - max) into a histogram
// of 4096 value buckets (double sums, as the reference's cumulative sum is); walking it from the
// top finds the bucket where the mass crosses top_p * sum, whose members (typically tens to a few
// hundred) are collected and walked in descending order. A bucket of more than kTopPSort members
// (flat rows, ties) uses a quickselect by mass instead of a sort. O(V), two passes, no branches
// on data in the first.
constexpr int64_t kTopPSort = 4096;

// need = top_p * the histogram's total mass (summed in bucket order).
inline double top_p_need(const double* hist, double top_p) {
  double total = 0;
  for (int b = 0; b < kTopPBuckets; ++b) total += hist[b];
  return top_p * total;
}

// The first bucket b >= start where the mass reaches need (above: the mass of the values above
// the bucket, updated), or kTopPBuckets when none does.
inline int32_t top_p_crossing(const double* hist, double need, int32_t start, double& above) {
  for (int32_t b = start; b < kTopPBuckets; ++b) {
    if (above + hist[b] >= need) return b;
    above += hist[b];
  }
  return kTopPBuckets;
}

// Walks the crossing bucket's members tmp[0, n) (reordered in place): true with tau = the value at
// which the descending cumulative mass reaches need; false (above += their whole mass) when
// rounding leaves need unreached, and the next bucket goes on.
inline bool top_p_walk(float* tmp, int64_t n, float m, double need, double& above, float& tau,
                       std::vector<float>& wts) {
  if (n > kTopPSort) {
    wts.resize(n);
    for (int64_t i = 0; i < n; ++i) wts[i] = exp_nonpos(tmp[i] - m);
    return top_p_quickselect(tmp, wts.data(), n, need, above, tau);
  }
  std::sort(tmp, tmp + n, std::greater<float>());
  for (int64_t i = 0; i < n;) {
    const float v = tmp[i];
    const float w = exp_nonpos(v - m);
    double mass = 0;
    for (; i < n && tmp[i] == v; ++i) mass += w;
    above += mass;
    if (above >= need) {
      tau = v;
      return true;
    }
  }
  return false;
}

// histogram(vals, V, m, hist) and members(vals, V, m, b, out) are top_p_histogram /
// top_p_members or their vector versions (dllm/cpu/denoise_step_simd_impl.h).
template <typename Histogram, typename Members>
float top_p_threshold_with(const float* vals, int64_t V, double top_p, std::vector<float>& tmp,
                           std::vector<float>& wts, std::vector<double>& hist,
                           Histogram&& histogram, Members&& members) {
  if (top_p >= 1.0) return kNegInf;
  const float m = chunk_max(vals, V);
  if (m == kNegInf) return kNegInf;
  hist.assign(kTopPBuckets, 0.0);
  histogram(vals, V, m, hist.data());
  const double need = top_p_need(hist.data(), top_p);
  double above = 0;  // mass of the values above the current bucket
  for (int32_t b = top_p_crossing(hist.data(), need, 0, above); b < kTopPBuckets;
       b = top_p_crossing(hist.data(), need, b + 1, above)) {
    tmp.clear();
    members(vals, V, m, b, tmp);
    float tau;
    if (top_p_walk(tmp.data(), static_cast<int64_t>(tmp.size()), m, need, above, tau, wts))
      return tau;
  }
  // Rounding left the target unreached: the smallest value closes the set.
  float smallest = kNegInf;
  for (int64_t i = 0; i < V; ++i)
    if (vals[i] > kNegInf && (smallest == kNegInf || vals[i] < smallest)) smallest = vals[i];
  return smallest;
}

inline float top_p_threshold(const float* vals, int64_t V, double top_p, std::vector<float>& tmp,
                             std::vector<float>& wts, std::vector<double>& hist) {
  return top_p_threshold_with(
      vals, V, top_p, tmp, wts, hist,
      [](const float* v, int64_t n, float m, double* h) { top_p_histogram(v, n, m, h); },
      [](const float* v, int64_t n, float m, int32_t b, std::vector<float>& out) {
        top_p_members(v, n, m, b, out);
      });
}

// Classifier-free guidance: out[i] = u + s1 * (c - u) in float32 for i in [0, n), op by op (the
// reference's sequence; no FMA contraction, so every clone and the CUDA kernel round alike).
// Unsanitised: the row is then read as float logits (NaN / inf handled there).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
template <typename In>
inline void cfg_combine_impl(const In* c, const In* u, int64_t n, float s1, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float uf = to_float(u[i]);
    const float e = s1 * (to_float(c[i]) - uf);
    out[i] = uf + e;
  }
}
DLLM_CPU_CLONES static void cfg_combine(const float* c, const float* u, int64_t n, float s1,
                                        float* out) {
  cfg_combine_impl(c, u, n, s1, out);
}
DLLM_CPU_CLONES static void cfg_combine(const bf16_t* c, const bf16_t* u, int64_t n, float s1,
                                        float* out) {
  cfg_combine_impl(c, u, n, s1, out);
}
DLLM_CPU_CLONES static void cfg_combine(const f16_t* c, const f16_t* u, int64_t n, float s1,
                                        float* out) {
  cfg_combine_impl(c, u, n, s1, out);
}
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC pop_options
#endif

// Per-thread buffers, reused across positions.
struct Workspace {
  std::vector<float> z, scaled, score, full, tmp, wts;
  std::vector<float> cfg;  // CFG: the position's guided logits [V] (one row, never [B, L, V])
  std::vector<double> hist;
  std::vector<int32_t> kept;  // filtered rows: ids of the kept tokens (vector kernel, T > 0)
  std::vector<uint32_t> words;
  std::vector<uint8_t> skip;
  std::vector<float> am;  // return_argmax: one piece of z (kArgChunk)
  Workspace() : z(kChunk), scaled(kChunk), score(kChunk), words(kChunk), skip(kChunk) {}
};

// Merges the state of a later vocabulary range into st (ties keep the earlier, smaller id).
inline void merge_state(RowState& st, const RowState& o) {
  if (o.am_idx >= 0 && (st.am_idx < 0 || o.am > st.am)) {
    st.am = o.am;
    st.am_idx = o.am_idx;
  }
  if (o.best > st.best) {
    st.best = o.best;
    st.best_idx = o.best_idx;
    st.best_d = o.best_d;
  }
  st.m = std::max(st.m, o.m);  // the sums come after the whole row's max (exact_sums)
  for (const float v : {o.top1, o.top2}) {
    st.top2 = std::max(st.top2, std::min(st.top1, v));
    st.top1 = std::max(st.top1, v);
  }
}

// Accumulates tokens [v_begin, v_end) of one position into st. v_begin is a multiple of 4 (Philox
// groups). filtered: ws.full holds the position's filtered scaled logits (whole row).
template <typename In>
void accumulate_range(const In* row, int64_t v_begin, int64_t v_end, const int64_t* suppress,
                      int64_t n_suppress, const DenoiseParams& p, int64_t b, int64_t l,
                      bool filtered, Workspace& ws, RowState& st) {
  const bool separate = p.inv_temperature != 1.0f;  // scaled differs from z
  int64_t next = std::lower_bound(suppress, suppress + n_suppress, v_begin) - suppress;
  for (int64_t v0 = v_begin; v0 < v_end; v0 += kChunk) {
    const int64_t n = std::min(kChunk, v_end - v0);
    float* z = ws.z.data();
    float* scaled;
    if (filtered) {
      scaled = ws.full.data() + v0;
      if (!p.source_sampling)  // raw confidence needs the unfiltered z of this chunk
        load_chunk(row, v0, n, suppress, n_suppress, &next, 1.0f, z, z);
    } else {
      scaled = separate ? ws.scaled.data() : z;
      load_chunk(row, v0, n, suppress, n_suppress, &next, p.inv_temperature, z, scaled);
    }
    const float* d = p.source_sampling ? scaled : z;
    const float* score = scaled;
    if (p.sample) {
      gumbel_scores(ws.score.data(), scaled, n, v0, p, b, l, st.best, ws.words.data(),
                    ws.skip.data());
      score = ws.score.data();
    }
    const float score_max = chunk_max(score, n);
    accumulate_argmax(st, score, d, n, v0, score_max);
    st.m = std::max(st.m, d == score ? score_max : chunk_max(d, n));  // sums: exact_sums_range
    if (p.confidence == Confidence::kMargin) accumulate_top2(st, d, n);
  }
}

// The exact sums (ExactSums) of tokens [v_begin, v_end) of one position, M = the whole row's max
// of d (finite). filtered: ws.full holds the position's filtered scaled logits (read when d is the
// sampling distribution's).
template <typename In>
void exact_sums_range(const In* row, int64_t v_begin, int64_t v_end, const int64_t* suppress,
                      int64_t n_suppress, const DenoiseParams& p, bool filtered, Workspace& ws,
                      float M, ExactSums& sums) {
  const bool entropy = p.confidence == Confidence::kNegEntropy;
  int64_t next = std::lower_bound(suppress, suppress + n_suppress, v_begin) - suppress;
  for (int64_t v0 = v_begin; v0 < v_end; v0 += kChunk) {
    const int64_t n = std::min(kChunk, v_end - v0);
    const float* d;
    if (filtered && p.source_sampling) {
      d = ws.full.data() + v0;
    } else {
      const bool scaled = p.source_sampling && p.inv_temperature != 1.0f;
      load_chunk(row, v0, n, suppress, n_suppress, &next, p.inv_temperature, ws.z.data(),
                 scaled ? ws.scaled.data() : ws.z.data());
      d = scaled ? ws.scaled.data() : ws.z.data();
    }
    exact_sums_chunk(d, n, M, entropy, sums);
  }
}

inline bool is_filtered(const DenoiseParams& p, int64_t V) {
  return (p.top_k > 0 && p.top_k < V) || p.top_p < 1.0;
}

// Filtered path: ws.full = the position's scaled logits (suppressed ids -inf) with the top-k /
// top-p filters applied in their order (filtered-out logits -inf).
// thr (tensor parallelism): the filters' global threshold, applied instead of computing them.
template <typename In>
void prepare_filtered(const In* row, int64_t V, const int64_t* suppress, int64_t n_suppress,
                      const DenoiseParams& p, Workspace& ws, const float* thr = nullptr) {
  // Materialise the position's scaled logits once, then find the filter threshold(s).
  ws.full.resize(V);
  int64_t next = 0;
  for (int64_t v0 = 0; v0 < V; v0 += kChunk) {
    const int64_t n = std::min(kChunk, V - v0);
    load_chunk(row, v0, n, suppress, n_suppress, &next, p.inv_temperature, ws.z.data(),
               ws.full.data() + v0);
  }
  float* s = ws.full.data();
  const auto apply = [&](bool top_k_step) {
    const float t = top_k_step ? top_k_threshold(s, V, p.top_k, ws.tmp)
                               : top_p_threshold(s, V, p.top_p, ws.tmp, ws.wts, ws.hist);
    if (t > kNegInf)
      for (int64_t i = 0; i < V; ++i)
        if (s[i] < t) s[i] = kNegInf;
  };
  if (thr != nullptr) {
    if (*thr > kNegInf)
      for (int64_t i = 0; i < V; ++i)
        if (s[i] < *thr) s[i] = kNegInf;
    return;
  }
  apply(!p.top_p_first);
  apply(p.top_p_first);
}

// ---- return_argmax: the first maximum of z, one piece of the row at a time ---------------------
// z as sanitize() reads it: NaN never wins, +inf ties the largest float. The range is taken in
// pieces of kArgChunk tokens, each right after the piece's accumulation (simd::
// accumulate_range_at), while its logits are still in L1 / L2: the logits are read from memory
// once, and the pieces start on the same kChunk boundaries as one whole-range call, so x0 and
// conf are bit-identical with and without return_argmax.
constexpr int64_t kArgChunk = 4 * kChunk;
constexpr float kFltMax = std::numeric_limits<float>::max();

DLLM_CPU_CLONES static float z_max(const float* z, int64_t n) {  // NaN skipped, +inf -> FLT_MAX
  float lane[kLanes];
  for (int j = 0; j < kLanes; ++j) lane[j] = kNegInf;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float v = z[i + j] > kFltMax ? kFltMax : z[i + j];
      lane[j] = v > lane[j] ? v : lane[j];
    }
  float m = kNegInf;
  for (int j = 0; j < kLanes; ++j) m = lane[j] > m ? lane[j] : m;
  for (; i < n; ++i) {
    const float v = z[i] > kFltMax ? kFltMax : z[i];
    m = v > m ? v : m;
  }
  return m;
}

// Tokens [v0, v0 + n) of `row` (n <= kArgChunk) into st.am / st.am_idx (ties: the earlier id).
template <typename In>
void accumulate_zmax(const In* row, int64_t v0, int64_t n, const int64_t* suppress,
                     int64_t n_suppress, Workspace& ws, RowState& st) {
  float* z = ws.am.data();
  decode(row + v0, n, z);
  for (int64_t k = std::lower_bound(suppress, suppress + n_suppress, v0) - suppress;
       k < n_suppress && suppress[k] < v0 + n; ++k)
    z[suppress[k] - v0] = kNegInf;
  const float m = z_max(z, n);
  if (!(m > st.am)) return;  // nothing larger here (or every z is -inf)
  for (int64_t i = 0; i < n; ++i) {
    if ((z[i] > kFltMax ? kFltMax : z[i]) == m) {
      st.am = m;
      st.am_idx = v0 + i;
      return;
    }
  }
}

// return_argmax's output at (b, l) (p.argmax: [B, L] int64, row stride p.argmax_sb), if asked.
inline void write_argmax(const DenoiseParams& p, int64_t b, int64_t l, int64_t v) {
  if (p.argmax != nullptr) p.argmax[b * p.argmax_sb + l] = v;
}

}  // namespace dllm::cpu

#include "dllm/cpu/denoise_step_simd.h"

namespace dllm::cpu {

// Does the confidence of a position with this whole-row state need the sums (exact_sums_range)?
inline bool needs_sums(const DenoiseParams& p, const RowState& st) {
  return p.confidence != Confidence::kRandom && st.best_idx >= 0 && st.m != kNegInf;
}

// x0 and conf of a position from its whole-row state (x0 = x_val, conf = -inf if every
// (filtered) logit is -inf: nothing to decode).
inline void finalize(const RowState& st, const DenoiseParams& p, int64_t b, int64_t l,
                     int64_t x_val, int64_t* x0_out, float* conf_out) {
  write_argmax(p, b, l, st.am_idx >= 0 ? st.am_idx : x_val);
  if (st.best_idx < 0) {
    *x0_out = x_val;
    *conf_out = kNegInf;
    return;
  }
  *x0_out = st.best_idx;
  double c = 0;
  switch (p.confidence) {
    case Confidence::kProb:
      c = std::exp(static_cast<double>(st.best_d) - st.m) / st.s;
      break;
    case Confidence::kMargin: {
      const double p1 = std::exp(static_cast<double>(st.top1) - st.m) / st.s;
      const double p2 =
          st.top2 == kNegInf ? 0.0 : std::exp(static_cast<double>(st.top2) - st.m) / st.s;
      c = p1 - p2;
      break;
    }
    case Confidence::kNegEntropy:
      c = st.t1 / st.s - std::log(st.s);
      break;
    case Confidence::kRandom: {
      const Philox4 w = philox_group(p.seed, p.offset, b, l, kSlotGroupConfidence);
      c = uniform_closed0(w.w[0]);
      break;
    }
  }
  *conf_out = static_cast<float>(c);
}

// One position: row = its V logits.
template <typename In>
void denoise_position(const In* row, int64_t V, const int64_t* suppress, int64_t n_suppress,
                      const DenoiseParams& p, int64_t b, int64_t l, int64_t x_val, Workspace& ws,
                      int64_t* x0_out, float* conf_out, int level = simd::kGeneric) {
  const bool filtered = is_filtered(p, V);
  if (filtered) simd::prepare_filtered_at(level, row, V, suppress, n_suppress, p, ws);
  RowState st;
  simd::accumulate_range_at(level, row, 0, V, suppress, n_suppress, p, b, l, filtered, ws, st);
  if (needs_sums(p, st)) {
    ExactSums sums;
    simd::exact_sums_at(level, row, 0, V, suppress, n_suppress, p, filtered, ws, st.m, sums);
    set_sums(st, sums);
  }
  finalize(st, p, b, l, x_val, x0_out, conf_out);
}

// Positions [begin, end) of the flattened [B, L] grid. uncond (p.cfg): CFG's unconditional
// logits, combined with the position's logits into ws.cfg (one [V] float row per thread), which
// the float kernel then reads: the mask path is untouched.
template <typename In>
void denoise_step_positions(const In* logits, int64_t sb, int64_t sl,     // [B, L, V], V contiguous
                            View2D<const int64_t> x,                      // [B, L]
                            const int64_t* suppress, int64_t n_suppress,  // [n] sorted ids
                            int64_t L, int64_t V, const DenoiseParams& p,
                            View2D<int64_t> x0,  // [B, L]
                            View2D<float> conf,  // [B, L]
                            int64_t begin, int64_t end,
                            const In* uncond = nullptr,  // [B, L, V] or null
                            int64_t usb = 0, int64_t usl = 0) {
  Workspace ws;
  const int level = simd::level();
  for (int64_t i = begin; i < end; ++i) {
    const int64_t b = i / L, l = i - b * L;
    const int64_t xv = x(b, l);
    if (!denoised(p, xv, b, l)) {
      x0(b, l) = xv;
      conf(b, l) = kNegInf;
      write_argmax(p, b, l, xv);
      continue;
    }
    const int64_t src = p.shift_logits ? std::max<int64_t>(l - 1, 0) : l;
    if (p.cfg) {
      ws.cfg.resize(V);
      cfg_combine(logits + b * sb + src * sl, uncond + b * usb + src * usl, V, p.cfg_scale1,
                  ws.cfg.data());
      denoise_position(static_cast<const float*>(ws.cfg.data()), V, suppress, n_suppress, p, b, l,
                       xv, ws, &x0(b, l), &conf(b, l), level);
      continue;
    }
    denoise_position(logits + b * sb + src * sl, V, suppress, n_suppress, p, b, l, xv, ws,
                     &x0(b, l), &conf(b, l), level);
  }
}

// Vocabulary slices for one position when there are fewer positions than threads: slice j covers
// [j * kSlice, (j + 1) * kSlice); states merge in slice order, so the result does not depend on
// the thread count (unfiltered path only; the filtered path needs the whole row).
constexpr int64_t kSlice = 16384;

// row_given: `logits` is the position's row itself (CFG's guided row), not [B, L, V].
template <typename In>
void denoise_slice(const In* logits, int64_t sb, int64_t sl, int64_t b, int64_t l, int64_t V,
                   const int64_t* suppress, int64_t n_suppress, const DenoiseParams& p,
                   int64_t slice, RowState& out, bool row_given = false) {
  Workspace ws;
  const int64_t src = p.shift_logits ? std::max<int64_t>(l - 1, 0) : l;
  const int64_t v0 = slice * kSlice;
  simd::accumulate_range_at(simd::level(), row_given ? logits : logits + b * sb + src * sl, v0,
                            std::min(V, v0 + kSlice), suppress, n_suppress, p, b, l,
                            /*filtered=*/false, ws, out);
}

// The exact sums of one slice, M = the merged states' max of d (the second pass of the split).
template <typename In>
void denoise_slice_sums(const In* logits, int64_t sb, int64_t sl, int64_t b, int64_t l, int64_t V,
                        const int64_t* suppress, int64_t n_suppress, const DenoiseParams& p,
                        int64_t slice, float M, ExactSums& out, bool row_given = false) {
  Workspace ws;
  const int64_t src = p.shift_logits ? std::max<int64_t>(l - 1, 0) : l;
  const int64_t v0 = slice * kSlice;
  simd::exact_sums_at(simd::level(), row_given ? logits : logits + b * sb + src * sl, v0,
                      std::min(V, v0 + kSlice), suppress, n_suppress, p, /*filtered=*/false, ws, M,
                      out);
}

}  // namespace dllm::cpu
