// dllm/cuda/denoise_step.cuh — CUDA launcher for denoise_step: per masked position, logits [V] ->
// candidate token x0 and a confidence (dllm_kernels/reference/denoise_step.py is the spec).
//
// Napkin math. The floor is one read of every masked position's V logits: B*L*V*sizeof(In) bytes.
// A [64, 32, 126464] bf16 step is 518 MB, ~0.17 ms at ~3 TB/s (H100 HBM3); [1, 32, 126464] bf16
// is 8 MB, ~3 us, i.e. launch-bound. Compute per logit on the fast path: decode, sanitize, one
// multiply, one expf and ~10 compares/adds (~30 instructions): 259M logits * 30 / ~29 T lane-ops/s
// ~ 0.27 ms, so the T = 0 path sits near the memory floor. T > 0 adds Philox (~12 instr/logit) and
// two deterministic logs per logit (dllm::gumbel_of_word); a logit whose score cannot reach the
// running best even with the largest possible Gumbel draw (-log(-log(1 - 2^-24)) = 16.64 < 17)
// skips the noise, which removes most of that cost for peaked distributions. Unmasked positions
// never read their logits.
//
// Fast path (no top-k / top-p): ONE pass over V per position. Every thread keeps an online state
// in registers: max m of the confidence logits d, n = #(d == m), r = sum_{d<m} e^{d-m},
// t = sum_{d<m} e^{d-m}(d-m), d2 = largest d < m, and the best choice score with its token id.
// Keeping the max group out of r gives S = n + r and log S = log1p(r) for n = 1, so neg_entropy
// = t/S - log S is a sum of two non-positive terms (no cancellation) and margin = -expm1(d2-m)/S
// is exact for near ties: everything in float32, within ~1e-6 relative of the float64 spec.
// 16-byte vector loads (unaligned head / tail elements scalar), warp shuffles + shared memory
// merge the block. When B*L is small the vocabulary is split over gridDim.y blocks per position;
// each writes its partial state to workspace [B*L, splits] and a one-warp-per-position kernel
// merges them (no atomics, deterministic). denoise_and_select runs these kernels with an epilogue
// (dllm/cuda/denoise_and_select.cuh): there the last split block of a position merges the states,
// in the same fixed order, and the merge kernel is not launched.
//
// CFG (p.cfg): every element the kernels read is the guided logit u + s1 * (c - u) of the
// position's two rows, formed in float32 right after decoding, op by op (__fsub_rn, __fmul_rn,
// __fadd_rn: never contracted to an FMA), so it rounds exactly like the CPU kernel and the
// reference. No [B, L, V] temporary: the floor becomes two reads, 2*B*L*V*sizeof(In) bytes; the
// fast path loads both rows' 16-byte vectors side by side when they share their alignment mod 16
// (else every element is read scalar).
//
// Filtered path (top_k > 0 or top_p < 1): one block per position, sorting-free radix select over
// the order-preserving uint32 key of the scaled logits, 8 bits per pass (4 passes) with
// histograms in shared memory: element counts for top-k (exact k-th largest), float64 mass
// e^{s-max} for top-p (tau = the value where the descending cumulative mass first reaches top_p).
// Then the fast path's single pass with the threshold applied. ~9-10 passes over V (L2-resident
// for small batches); exactness over speed.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "dllm/common.h"
#include "dllm/cuda/last_block.cuh"
#include "dllm/philox.h"
#include "dllm/denoise_step.h"
#include "dllm/sampling.h"

namespace dllm::cuda {
namespace denoise_detail {

constexpr float kNegInf = -__builtin_inff();
constexpr int kNoToken = 0x7FFFFFFF;
constexpr float kGumbelBound = 17.0f;  // > max Gumbel draw -log(-log(1 - 2^-24)) = 16.64
constexpr int kFastThreads = 256;
constexpr int kFilterThreads = 512;
constexpr int kMergeThreads = 256;  // one warp per position

// What the confidence needs from the softmax: nothing (random), max / sum / top-2 (prob, margin),
// or also sum e^{d-m}(d-m) (neg_entropy).
enum class Stats : int { kNone = 0, kBasic = 1, kEntropy = 2 };

// Online state of (part of) one position's vocabulary. 32 bytes, two 16-byte words.
struct alignas(16) RowState {
  float m;       // max of the confidence logits d (-inf: none finite yet)
  int n;         // how many d == m
  float r;       // sum over finite d < m of e^{d-m}
  float t;       // sum over finite d < m of e^{d-m} * (d-m)      (neg_entropy only)
  float d2;      // largest d < m (-inf: none)                   (margin)
  float best;    // best choice score: filtered (+ Gumbel); -inf: none
  int best_i;    // its token id (kNoToken: none)
  float best_d;  // d at best_i                                  (prob)
};

__device__ __forceinline__ RowState empty_state() {
  return RowState{kNegInf, 0, 0.0f, 0.0f, kNegInf, kNegInf, kNoToken, kNegInf};
}

// Per-position constants of the element loop.
struct Ctx {
  float inv_t;           // fl32(1 / T)
  float thr;             // filter threshold on scaled logits (-inf: keep all)
  bool source_sampling;  // d = filtered (else z)
  uint64_t seed;
  uint32_t offset;
  int64_t b, l;
};

// ---- 16-bit decoding and the order-preserving key ---------------------------------------------

__device__ __forceinline__ float load_float(float v) { return v; }
__device__ __forceinline__ float load_float(bf16_t v) { return to_float(v); }
__device__ __forceinline__ float load_float(f16_t v) {  // exact hardware conversion
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
  return f;
}

// The 16 bytes of a vector as floats.
template <typename In>
__device__ __forceinline__ void decode_vec(const uint4& q, float* out);
template <>
__device__ __forceinline__ void decode_vec<float>(const uint4& q, float* out) {
  out[0] = __uint_as_float(q.x);
  out[1] = __uint_as_float(q.y);
  out[2] = __uint_as_float(q.z);
  out[3] = __uint_as_float(q.w);
}
template <>
__device__ __forceinline__ void decode_vec<bf16_t>(const uint4& q, float* out) {
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(w[i] << 16);
    out[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
  }
}
template <>
__device__ __forceinline__ void decode_vec<f16_t>(const uint4& q, float* out) {
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = load_float(f16_t{static_cast<uint16_t>(w[i] & 0xFFFFu)});
    out[2 * i + 1] = load_float(f16_t{static_cast<uint16_t>(w[i] >> 16)});
  }
}

// CFG's guided logit u + s1 * (c - u) in float32, no FMA contraction (the reference's rounding).
__device__ __forceinline__ float guide(float c, float u, float s1) {
  return __fadd_rn(u, __fmul_rn(s1, __fsub_rn(c, u)));
}

// Logit v of a position: row[v], or with CFG (urow non-null) guide(row[v], urow[v], s1).
template <typename In>
__device__ __forceinline__ float logit_at(const In* row, const In* urow, float s1, int v) {
  return urow ? guide(load_float(row[v]), load_float(urow[v]), s1) : load_float(row[v]);
}

// The position's unconditional row (CFG) or null.
template <typename In>
__device__ __forceinline__ const In* uncond_row(const DenoiseParams& p, int64_t b, int64_t src) {
  return p.cfg ? static_cast<const In*>(p.uncond) + b * p.uncond_sb + src * p.uncond_sl : nullptr;
}

// Monotone uint32 key of a non-NaN float (-0 and +0 share a key, as they compare equal).
__device__ __forceinline__ uint32_t float_key(float f) {
  const uint32_t u = __float_as_uint(f == 0.0f ? 0.0f : f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

// ---- suppress_tokens: a per-thread cursor into the sorted id list -----------------------------
// Each thread visits increasing token ids, so its cursor only moves forward.
struct SuppressCursor {
  const int64_t* ids;  // [n] sorted unique
  int64_t n, i, next;  // next = ids[i] (INT64_MAX past the end)

  __device__ __forceinline__ void init(const int64_t* ids_, int64_t n_, int64_t v_start) {
    ids = ids_;
    n = n_;
    int64_t lo = 0, hi = n;  // first id >= v_start
    while (lo < hi) {
      const int64_t mid = (lo + hi) >> 1;
      if (ids[mid] < v_start)
        lo = mid + 1;
      else
        hi = mid;
    }
    i = lo;
    next = i < n ? ids[i] : INT64_MAX;
  }
  __device__ __forceinline__ void advance() { next = ++i < n ? ids[i] : INT64_MAX; }
  // Bit j set: token v0 + j is suppressed (j < w <= 32). Ids below v0 belong to other threads.
  __device__ __forceinline__ uint32_t hits(int64_t v0, int w) {
    uint32_t bits = 0;
    while (next < v0 + w) {
      if (next >= v0) bits |= 1u << static_cast<int>(next - v0);
      advance();
    }
    return bits;
  }
  __device__ __forceinline__ bool hit(int64_t v) { return hits(v, 1) != 0; }
};

// ---- Gumbel noise of token v: word v & 3 of Philox group v >> 2, cached per group -------------
struct GumbelCache {
  uint32_t group = 0xFFFFFFFFu;  // never a vocabulary group (v < 2^31)
  uint32_t w0 = 0, w1 = 0, w2 = 0, w3 = 0;
};

__device__ __forceinline__ float gumbel(GumbelCache& gc, const Ctx& c, int v) {
  const uint32_t g = static_cast<uint32_t>(v) >> 2;
  if (g != gc.group) {
    const Philox4 w = philox_group(c.seed, c.offset, c.b, c.l, g);
    gc.group = g;
    gc.w0 = w.w[0];
    gc.w1 = w.w[1];
    gc.w2 = w.w[2];
    gc.w3 = w.w[3];
  }
  const int j = v & 3;
  const uint32_t word = j == 0 ? gc.w0 : j == 1 ? gc.w1 : j == 2 ? gc.w2 : gc.w3;
  return gumbel_of_word(word);  // bit-identical to the CPU kernel and the reference
}

// ---- the online softmax / top-2 / argmax state ------------------------------------------------

// Moves the state's reference max up to m_new (> s.m): the old max group joins r and t.
template <Stats kStats>
__device__ __forceinline__ void rescale(RowState& s, float m_new) {
  if (s.n > 0) {
    const float dm = s.m - m_new;  // < 0 (may be -inf on overflow: then f = 0)
    const float f = expf(dm);
    const float mass = s.r + static_cast<float>(s.n);
    if constexpr (kStats == Stats::kEntropy) s.t = f > 0.0f ? f * fmaf(dm, mass, s.t) : 0.0f;
    s.r = f * mass;
    s.d2 = s.m;
  }
  s.m = m_new;
  s.n = 0;
}

// Adds one confidence logit d (d = -inf has no mass and is ignored).
template <Stats kStats>
__device__ __forceinline__ void add_conf(RowState& s, float d) {
  if (!(d > kNegInf)) return;
  if (d > s.m) rescale<kStats>(s, d);
  if (d == s.m) {
    ++s.n;
    return;
  }
  const float dm = d - s.m;
  const float e = expf(dm);
  s.r += e;
  if constexpr (kStats == Stats::kEntropy) {
    if (e > 0.0f) s.t = fmaf(e, dm, s.t);
  }
  s.d2 = fmaxf(s.d2, d);
}

// a = a (+) b. Choice ties go to the smaller token id.
template <Stats kStats>
__device__ __forceinline__ void merge(RowState& a, const RowState& b) {
  if (b.best > a.best || (b.best == a.best && b.best_i < a.best_i)) {
    a.best = b.best;
    a.best_i = b.best_i;
    a.best_d = b.best_d;
  }
  if constexpr (kStats != Stats::kNone) {
    if (b.n == 0) return;
    if (a.n == 0) {
      a.m = b.m;
      a.n = b.n;
      a.r = b.r;
      a.t = b.t;
      a.d2 = b.d2;
      return;
    }
    if (a.m == b.m) {
      a.n += b.n;
      a.r += b.r;
      a.t += b.t;
      a.d2 = fmaxf(a.d2, b.d2);
      return;
    }
    // hi: the state with the larger max, lo: the other (scalars, so nothing goes to local memory)
    const bool a_hi = a.m > b.m;
    const float hi_m = a_hi ? a.m : b.m, lo_m = a_hi ? b.m : a.m;
    const int hi_n = a_hi ? a.n : b.n, lo_n = a_hi ? b.n : a.n;
    const float hi_r = a_hi ? a.r : b.r, lo_r = a_hi ? b.r : a.r;
    const float hi_t = a_hi ? a.t : b.t, lo_t = a_hi ? b.t : a.t;
    const float hi_d2 = a_hi ? a.d2 : b.d2;
    const float dm = lo_m - hi_m;  // < 0
    const float f = expf(dm);
    const float lo_mass = lo_r + static_cast<float>(lo_n);
    float r = hi_r, t = hi_t;
    if (f > 0.0f) {
      r += f * lo_mass;
      if constexpr (kStats == Stats::kEntropy) t += f * fmaf(dm, lo_mass, lo_t);
    }
    const float d2 = fmaxf(hi_d2, lo_m);
    const float m = hi_m;
    const int n = hi_n;
    a.m = m;
    a.n = n;
    a.r = r;
    a.t = t;
    a.d2 = d2;
  }
}

__device__ __forceinline__ RowState shfl_down_state(const RowState& s, int delta) {
  RowState o;
  o.m = __shfl_down_sync(0xFFFFFFFFu, s.m, delta);
  o.n = __shfl_down_sync(0xFFFFFFFFu, s.n, delta);
  o.r = __shfl_down_sync(0xFFFFFFFFu, s.r, delta);
  o.t = __shfl_down_sync(0xFFFFFFFFu, s.t, delta);
  o.d2 = __shfl_down_sync(0xFFFFFFFFu, s.d2, delta);
  o.best = __shfl_down_sync(0xFFFFFFFFu, s.best, delta);
  o.best_i = __shfl_down_sync(0xFFFFFFFFu, s.best_i, delta);
  o.best_d = __shfl_down_sync(0xFFFFFFFFu, s.best_d, delta);
  return o;
}

template <Stats kStats>
__device__ __forceinline__ RowState warp_reduce(RowState s) {
#pragma unroll
  for (int delta = 16; delta > 0; delta >>= 1) merge<kStats>(s, shfl_down_state(s, delta));
  return s;  // lane 0
}

// Full block reduction; the result is valid in thread 0. smem: [32]. Ends with a barrier so the
// caller may reuse smem.
template <Stats kStats>
__device__ __forceinline__ RowState block_reduce(RowState s, RowState* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  s = warp_reduce<kStats>(s);
  if (lane == 0) smem[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < warps ? smem[lane] : empty_state();
    s = warp_reduce<kStats>(s);
  }
  __syncthreads();
  return s;
}

// A partial state written by another block (of this launch or an earlier one): two 16-byte loads
// through L2.
__device__ __forceinline__ RowState load_state(const RowState* p) {
  const float4 a = __ldcg(reinterpret_cast<const float4*>(p));
  const float4 c = __ldcg(reinterpret_cast<const float4*>(p) + 1);
  return RowState{a.x, __float_as_int(a.y), a.z, a.w, c.x, c.y, __float_as_int(c.z), c.w};
}

// The merged state of one position's splits, valid in lane 0; all 32 lanes of the warp call.
// The order of the merges depends only on `splits`: the result is deterministic.
template <Stats kStats>
__device__ __forceinline__ RowState merge_splits(const RowState* partial,  // [splits]
                                                 int splits) {
  RowState s = empty_state();
  for (int k = threadIdx.x & 31; k < splits; k += 32) merge<kStats>(s, load_state(partial + k));
  return warp_reduce<kStats>(s);
}

// One logit: raw value (decoded, unsanitised) of token v.
template <Stats kStats, bool kSample, bool kFiltered>
__device__ __forceinline__ void visit(RowState& s, GumbelCache& gc, const Ctx& c, float raw,
                                      bool suppressed, int v) {
  const float z = suppressed ? kNegInf : sanitize(raw);
  const float sc = sanitize(__fmul_rn(z, c.inv_t));              // z * fl32(1/T)
  const float f = (kFiltered && !(sc >= c.thr)) ? kNegInf : sc;  // filtered
  const float d = c.source_sampling ? f : z;                     // confidence logit
  float y = f;                                                   // choice score
  if constexpr (kSample) {
    // f + g <= f + 16.64 <= fl(f + 17) < best: this token cannot win (nor tie); skip the noise.
    y = (f > kNegInf && __fadd_rn(f, kGumbelBound) >= s.best) ? __fadd_rn(f, gumbel(gc, c, v))
                                                              : kNegInf;
  }
  if (y > s.best) {  // a thread visits increasing ids: strict > keeps the smallest id
    s.best = y;
    s.best_i = v;
    s.best_d = d;
  }
  if constexpr (kStats != Stats::kNone) add_conf<kStats>(s, d);
}

// This thread's share of the state of `row` (token ids [0, V)), split `split` of `splits`:
// vectors of 16 bytes over the aligned body, head / tail elements scalar (split 0 / the last).
// kCfg: the logits are guide(row, urow, s1), both rows read side by side (vectors only when the
// two rows share their alignment mod 16).
template <typename In, Stats kStats, bool kSample, bool kFiltered, bool kCfg>
__device__ __forceinline__ RowState scan_row(const In* row,   // [V]
                                             const In* urow,  // [V] unconditional (kCfg) or null
                                             float s1, int V, int split, int splits,
                                             const int64_t* sup, int64_t n_sup, const Ctx& c) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(In));
  const uintptr_t addr = reinterpret_cast<uintptr_t>(row);
  const uintptr_t uaddr = kCfg ? reinterpret_cast<uintptr_t>(urow) : addr;
  int head = (addr % sizeof(In) != 0 || (uaddr & 15u) != (addr & 15u))
                 ? V
                 : static_cast<int>(((16u - (addr & 15u)) & 15u) / sizeof(In));
  head = min(head, V);
  const int nvec = (V - head) / kVec;
  const int tail = head + nvec * kVec;
  const int vb = static_cast<int>(int64_t(nvec) * split / splits);
  const int ve = static_cast<int>(int64_t(nvec) * (split + 1) / splits);

  RowState s = empty_state();
  GumbelCache gc;
  SuppressCursor cur;
  cur.init(sup, n_sup, split == 0 ? 0 : head + int64_t(vb) * kVec);
  const int tid = threadIdx.x, nt = blockDim.x;

  const auto at = [&](int v) {  // one scalar logit
    if constexpr (kCfg)
      return guide(load_float(row[v]), load_float(urow[v]), s1);
    else
      return load_float(row[v]);
  };
  if (split == 0)
    for (int v = tid; v < head; v += nt)
      visit<kStats, kSample, kFiltered>(s, gc, c, at(v), cur.hit(v), v);

  const uint4* vrow = reinterpret_cast<const uint4*>(row + head);
  const uint4* vurow = reinterpret_cast<const uint4*>((kCfg ? urow : row) + head);
  const auto body = [&](const uint4& q, const uint4& qu, int i) {
    float vals[kVec];
    decode_vec<In>(q, vals);
    if constexpr (kCfg) {
      float uvals[kVec];
      decode_vec<In>(qu, uvals);
#pragma unroll
      for (int j = 0; j < kVec; ++j) vals[j] = guide(vals[j], uvals[j], s1);
    }
    const int v0 = head + i * kVec;
    const uint32_t hits = cur.hits(v0, kVec);
#pragma unroll
    for (int j = 0; j < kVec; ++j)
      visit<kStats, kSample, kFiltered>(s, gc, c, vals[j], (hits >> j) & 1u, v0 + j);
  };
  // The unconditional vector (kCfg), or q itself (not read).
  const auto uload = [&](int i, const uint4& q) { return kCfg ? __ldcs(vurow + i) : q; };
  int i = vb + tid;
  for (; i + nt < ve; i += 2 * nt) {  // two 16-byte loads (four with CFG) in flight per thread
    const uint4 q0 = __ldcs(vrow + i);
    const uint4 q1 = __ldcs(vrow + i + nt);
    const uint4 u0 = uload(i, q0);
    const uint4 u1 = uload(i + nt, q1);
    body(q0, u0, i);
    body(q1, u1, i + nt);
  }
  if (i < ve) {
    const uint4 q = __ldcs(vrow + i);
    body(q, uload(i, q), i);
  }

  if (split == splits - 1)
    for (int v = tail + tid; v < V; v += nt)
      visit<kStats, kSample, kFiltered>(s, gc, c, at(v), cur.hit(v), v);
  return s;
}

// Writes x0 and conf of position (b, l) from its complete state.
__device__ __forceinline__ void finalize(const RowState& s, const DenoiseParams& p, int64_t b,
                                         int64_t l, int64_t xv, int64_t* x0, float* conf) {
  if (!(s.best > kNegInf)) {  // every filtered logit is -inf: nothing to decode
    *x0 = xv;
    *conf = kNegInf;
    return;
  }
  *x0 = s.best_i;
  const float S = static_cast<float>(s.n) + s.r;
  float c = 0.0f;
  switch (p.confidence) {
    case Confidence::kProb:
      c = expf(s.best_d - s.m) / S;
      break;
    case Confidence::kMargin:  // p1 - p2 = (1 - e^{d2 - m}) / S; 0 when the max is shared
      c = s.n >= 2 ? 0.0f : -expm1f(s.d2 - s.m) / S;
      break;
    case Confidence::kNegEntropy:  // sum p log p = t/S - log S, both terms <= 0
      c = s.t / S - (s.n == 1 ? log1pf(s.r) : logf(S));
      break;
    case Confidence::kRandom:
      c = uniform_closed0(philox_group(p.seed, p.offset, b, l, kSlotGroupConfidence).w[0]);
      break;
  }
  *conf = c;
}

__device__ __forceinline__ Ctx make_ctx(const DenoiseParams& p, float thr, int64_t b, int64_t l) {
  return Ctx{p.inv_temperature, thr, p.source_sampling, p.seed, p.offset, b, l};
}

// ---- what a kernel does after writing a position's result --------------------------------------
// Nothing for denoise_step (NoEpilogue). denoise_and_select's fused kernel passes an epilogue
// with kFused = true (dllm/cuda/denoise_and_select.cuh): then split blocks count their arrivals on
// split_count[pos], the last one merges the partial states itself (instead of the merge kernel),
// and epi.position_done(b, scratch) is called by every thread of the block once thread 0 has
// written x0 / conf of a position of row b (scratch: the kernel's dynamic shared memory).
struct NoEpilogue {
  static constexpr bool kFused = false;
};

// ---- fast path ---------------------------------------------------------------------------------

template <typename In, Stats kStats, bool kSample, bool kCfg, typename Epi>
__global__ void __launch_bounds__(kFastThreads)
    denoise_fast_kernel(const In* logits,  // [B, L, V], strides (stride_b, stride_l, 1)
                        int64_t stride_b, int64_t stride_l,
                        View2D<const int64_t> x,  // [B, L] token ids
                        const int64_t* sup,       // [n_sup] sorted unique suppressed ids
                        int64_t n_sup, int64_t B, int64_t L, int V, DenoiseParams p,
                        int64_t* x0,        // [B, L] contiguous
                        float* conf,        // [B, L] contiguous
                        RowState* partial,  // [B*L, splits] (splits > 1 only)
                        int splits,
                        Epi epi) {  // NoEpilogue, or the fused selection
  __shared__ RowState smem[32];
  extern __shared__ __align__(16) unsigned char scratch[];  // the epilogue's (fused only)
  const int split = blockIdx.y;
  for (int64_t pos = blockIdx.x; pos < B * L; pos += gridDim.x) {
    const int64_t b = pos / L, l = pos - b * L;
    const int64_t xv = x(b, l);
    bool wrote;                    // block-uniform: this block wrote x0 / conf of the position
    if (!denoised(p, xv, b, l)) {  // split 0 writes the position not denoised
      wrote = split == 0;
      if (wrote && threadIdx.x == 0) {
        x0[pos] = xv;
        conf[pos] = kNegInf;
      }
    } else {
      const int64_t src = p.shift_logits ? (l > 0 ? l - 1 : 0) : l;
      const In* row = logits + b * stride_b + src * stride_l;
      const In* urow = kCfg ? uncond_row<In>(p, b, src) : nullptr;
      const Ctx c = make_ctx(p, kNegInf, b, l);
      RowState s = scan_row<In, kStats, kSample, false, kCfg>(row, urow, p.cfg_scale1, V, split,
                                                              splits, sup, n_sup, c);
      s = block_reduce<kStats>(s, smem);
      wrote = splits == 1;
      if (wrote) {
        if (threadIdx.x == 0) finalize(s, p, b, l, xv, x0 + pos, conf + pos);
      } else {
        if (threadIdx.x == 0) partial[pos * splits + split] = s;
        if constexpr (Epi::kFused) {
          // The last split to arrive merges the position (the merge kernel's work).
          wrote = last_to_arrive(epi.split_count + pos, static_cast<unsigned>(splits));
          if (wrote && threadIdx.x < 32) {
            s = merge_splits<kStats>(partial + pos * splits, splits);
            if (threadIdx.x == 0) finalize(s, p, b, l, xv, x0 + pos, conf + pos);
          }
        }
      }
    }
    if constexpr (Epi::kFused) {
      if (wrote) epi.position_done(b, scratch);  // one call site: one inlined copy
    }
  }
}

// Merges the splits' partial states: one warp per position (denoise_step only; the fused kernel
// merges in its last split block).
template <Stats kStats>
__global__ void __launch_bounds__(kMergeThreads)
    denoise_merge_kernel(View2D<const int64_t> x,  // [B, L]
                         int64_t B, int64_t L, DenoiseParams p,
                         int64_t* x0,              // [B, L] contiguous
                         float* conf,              // [B, L] contiguous
                         const RowState* partial,  // [B*L, splits]
                         int splits) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t pos = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; pos < B * L;
       pos += warps) {
    const int64_t b = pos / L, l = pos - b * L;
    const int64_t xv = x(b, l);
    if (!denoised(p, xv, b, l)) continue;  // written by the fast kernel
    const RowState s = merge_splits<kStats>(partial + pos * splits, splits);
    if (lane == 0) finalize(s, p, b, l, xv, x0 + pos, conf + pos);
  }
}

// ---- filtered path: radix select of the top-k / top-p threshold --------------------------------

// The scaled logit of token v (suppressed -> -inf), as the element loop computes it.
template <typename In>
__device__ __forceinline__ float scaled_at(const In* row, const In* urow, float s1, int v,
                                           bool suppressed, float inv_t) {
  const float z = suppressed ? kNegInf : sanitize(logit_at(row, urow, s1, v));
  return sanitize(__fmul_rn(z, inv_t));
}

// hist[bin] += (1, w) from every active lane, aggregating lanes of the same bin first (the
// leading digit of a logit's key is shared by most of the vocabulary: plain shared atomics would
// serialise). All 32 lanes of the warp must call.
template <bool kMass>
__device__ __forceinline__ void hist_add(uint32_t* cnt, double* mass, uint32_t bin, double w,
                                         bool active) {
  const int lane = threadIdx.x & 31;
  const uint32_t act = __ballot_sync(0xFFFFFFFFu, active);
  if (act == 0) return;
  const uint32_t peers = __match_any_sync(0xFFFFFFFFu, active ? bin : 0xFFFFFFFFu);
  const int leader = __ffs(peers) - 1;
  if (active && lane == leader) atomicAdd(cnt + bin, static_cast<uint32_t>(__popc(peers)));
  if constexpr (kMass) {
    const uint32_t leaders = __ballot_sync(0xFFFFFFFFu, active && lane == leader);
    if (__popc(leaders) * 4 > __popc(act)) {  // bins mostly distinct: direct atomics
      if (active && w > 0.0) atomicAdd(mass + bin, w);
      return;
    }
    uint32_t todo = leaders;  // few distinct bins: one warp sum per bin
    while (todo) {
      const int lead = __ffs(todo) - 1;
      todo &= todo - 1;
      const uint32_t lb = __shfl_sync(0xFFFFFFFFu, bin, lead);
      double v = (active && bin == lb) ? w : 0.0;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
      if (lane == lead && v > 0.0) atomicAdd(mass + lb, v);
    }
  }
}

// Warp 0: the highest bin d with cnt[d] > 0 whose cumulative weight from the top reaches target;
// if none (float64 rounding), the lowest non-empty bin. Returns d; *above = weight of bins > d.
template <typename W>
__device__ __forceinline__ int pick_bin(const uint32_t* cnt, const W* weight, W target, W* above) {
  const int lane = threadIdx.x & 31;
  const int top = 255 - 8 * lane;  // lane owns bins top .. top - 7 (descending)
  W total = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) total += weight[top - j];
  W incl = total;  // inclusive scan over lanes (lane 0 = the highest bins)
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const W u = __shfl_up_sync(0xFFFFFFFFu, incl, o);
    if (lane >= o) incl += u;
  }
  const W excl = incl - total;
  int found = -1, lowest = -1;
  W found_above = 0, lowest_above = 0, run = excl;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int d = top - j;
    const W before = run;
    run += weight[d];
    if (cnt[d] > 0) {
      if (found < 0 && run >= target) {
        found = d;
        found_above = before;
      }
      lowest = d;
      lowest_above = before;
    }
  }
  const uint32_t any_found = __ballot_sync(0xFFFFFFFFu, found >= 0);
  int src;
  if (any_found) {
    src = __ffs(any_found) - 1;
  } else {
    const uint32_t any = __ballot_sync(0xFFFFFFFFu, lowest >= 0);
    src = any ? 31 - __clz(any) : 0;
    found = lowest;
    found_above = lowest_above;
  }
  *above = __shfl_sync(0xFFFFFFFFu, found_above, src);
  return __shfl_sync(0xFFFFFFFFu, found, src);
}

struct FilterSmem {
  uint32_t cnt[256];
  double mass[256];
  uint32_t prefix;
  int64_t remaining;
  double above, target;
  float fmax[32];
};

// The k-th largest scaled logit of the row (duplicates counted), 1 <= k < V.
template <typename In>
__device__ float top_k_value(const In* row, const In* urow, float s1, int V, int64_t k,
                             const int64_t* sup, int64_t n_sup, float inv_t, FilterSmem& sh) {
  uint32_t prefix = 0, pmask = 0;
  if (threadIdx.x == 0) sh.remaining = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) sh.cnt[i] = 0;
    __syncthreads();
    SuppressCursor cur;
    cur.init(sup, n_sup, 0);
    for (int base = 0; base < V; base += blockDim.x) {  // warp-uniform trip count
      const int v = base + threadIdx.x;
      uint32_t key = 0;
      bool in = false;
      if (v < V) {
        key = float_key(scaled_at(row, urow, s1, v, cur.hit(v), inv_t));
        in = (key & pmask) == prefix;
      }
      hist_add<false>(sh.cnt, nullptr, (key >> shift) & 255u, 0.0, in);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      uint32_t above;
      const int64_t rem = sh.remaining;  // <= V < 2^31
      const int d = pick_bin<uint32_t>(sh.cnt, sh.cnt, static_cast<uint32_t>(rem), &above);
      if (threadIdx.x == 0) {
        sh.remaining = rem - above;
        sh.prefix = prefix | (uint32_t(d) << shift);
      }
    }
    __syncthreads();
    prefix = sh.prefix;
    pmask |= 255u << shift;
  }
  return key_float(prefix);
}

// tau of top-p over the tokens whose key >= lo_key: the value at which the descending cumulative
// float64 mass e^{s - m_s} first reaches top_p of the set's total. m_s: the row's max (finite).
template <typename In>
__device__ float top_p_value(const In* row, const In* urow, float s1, int V, double top_p,
                             uint32_t lo_key, float m_s, const int64_t* sup, int64_t n_sup,
                             float inv_t, FilterSmem& sh) {
  uint32_t prefix = 0, pmask = 0;
  if (threadIdx.x == 0) sh.above = 0.0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) {
      sh.cnt[i] = 0;
      sh.mass[i] = 0.0;
    }
    __syncthreads();
    SuppressCursor cur;
    cur.init(sup, n_sup, 0);
    for (int base = 0; base < V; base += blockDim.x) {
      const int v = base + threadIdx.x;
      uint32_t key = 0;
      bool in = false;
      double w = 0.0;
      if (v < V) {
        const float s = scaled_at(row, urow, s1, v, cur.hit(v), inv_t);
        key = float_key(s);
        in = key >= lo_key && (key & pmask) == prefix;
        if (in) w = exp(static_cast<double>(s) - static_cast<double>(m_s));
      }
      hist_add<true>(sh.cnt, sh.mass, (key >> shift) & 255u, w, in);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      if (shift == 24) {  // the set's total mass: all of it is in this first histogram
        double tot = 0.0;
        for (int j = 0; j < 8; ++j) tot += sh.mass[255 - 8 * threadIdx.x - j];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) tot += __shfl_xor_sync(0xFFFFFFFFu, tot, o);
        if (threadIdx.x == 0) sh.target = top_p * tot;
        __syncwarp();
      }
      double above;
      const double done = sh.above;
      const int d = pick_bin<double>(sh.cnt, sh.mass, sh.target - done, &above);
      if (threadIdx.x == 0) {
        sh.above = done + above;
        sh.prefix = prefix | (uint32_t(d) << shift);
      }
    }
    __syncthreads();
    prefix = sh.prefix;
    pmask |= 255u << shift;
  }
  return key_float(prefix);
}

template <typename In>
__device__ float row_max_scaled(const In* row, const In* urow, float s1, int V, const int64_t* sup,
                                int64_t n_sup, float inv_t, FilterSmem& sh) {
  SuppressCursor cur;
  cur.init(sup, n_sup, 0);
  float m = kNegInf;
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    m = fmaxf(m, scaled_at(row, urow, s1, v, cur.hit(v), inv_t));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, o));
  if ((threadIdx.x & 31) == 0) sh.fmax[threadIdx.x >> 5] = m;
  __syncthreads();
  m = kNegInf;
  for (int w = 0; w < int(blockDim.x >> 5); ++w) m = fmaxf(m, sh.fmax[w]);
  __syncthreads();
  return m;
}

template <typename In, Stats kStats, bool kSample, typename Epi>
__global__ void __launch_bounds__(kFilterThreads, 1)
    denoise_filtered_kernel(const In* logits,  // [B, L, V], strides (stride_b, stride_l, 1)
                            int64_t stride_b, int64_t stride_l,
                            View2D<const int64_t> x,  // [B, L]
                            const int64_t* sup,       // [n_sup] sorted unique suppressed ids
                            int64_t n_sup, int64_t B, int64_t L, int V, DenoiseParams p,
                            int64_t* x0,  // [B, L] contiguous
                            float* conf,  // [B, L] contiguous
                            Epi epi) {    // NoEpilogue, or the fused selection
  __shared__ FilterSmem sh;
  __shared__ RowState smem[32];
  extern __shared__ __align__(16) unsigned char scratch[];  // the epilogue's (fused only)
  const bool use_k = p.top_k > 0 && p.top_k < V;
  const bool use_p = p.top_p < 1.0;
  for (int64_t pos = blockIdx.x; pos < B * L; pos += gridDim.x) {
    const int64_t b = pos / L, l = pos - b * L;
    const int64_t xv = x(b, l);
    if (!denoised(p, xv, b, l)) {  // block-uniform
      if (threadIdx.x == 0) {
        x0[pos] = xv;
        conf[pos] = kNegInf;
      }
    } else {
      const int64_t src = p.shift_logits ? (l > 0 ? l - 1 : 0) : l;
      const In* row = logits + b * stride_b + src * stride_l;
      const In* urow = uncond_row<In>(p, b, src);  // CFG's unconditional row, or null
      const float s1 = p.cfg_scale1;
      const float inv_t = p.inv_temperature;
      // top_k_first: thr = tau(top-p over {s >= kth}) (>= kth); top_p_first: the k-th largest of
      // the top-p survivors = max(tau(full row), kth(full row)).
      const float kth =
          use_k ? top_k_value(row, urow, s1, V, p.top_k, sup, n_sup, inv_t, sh) : kNegInf;
      float thr = kth;
      if (use_p) {
        const float m_s = row_max_scaled(row, urow, s1, V, sup, n_sup, inv_t, sh);
        if (m_s > kNegInf) {
          const uint32_t lo_key = (use_k && !p.top_p_first) ? float_key(kth) : 0u;
          thr = fmaxf(thr,
                      top_p_value(row, urow, s1, V, p.top_p, lo_key, m_s, sup, n_sup, inv_t, sh));
        }
      }
      const Ctx c = make_ctx(p, thr, b, l);
      RowState s =
          urow ? scan_row<In, kStats, kSample, true, true>(row, urow, s1, V, 0, 1, sup, n_sup, c)
               : scan_row<In, kStats, kSample, true, false>(row, nullptr, s1, V, 0, 1, sup, n_sup,
                                                            c);
      s = block_reduce<kStats>(s, smem);
      if (threadIdx.x == 0) finalize(s, p, b, l, xv, x0 + pos, conf + pos);
    }
    if constexpr (Epi::kFused) epi.position_done(b, scratch);  // one call site: one inlined copy
  }
}

// ---- return_argmax: argmax of z per position ----------------------------------------------------
// p.argmax[b, l] = the smallest v maximising z (the logits after CFG, suppress_tokens and the
// sanitising rule; before temperature and filters); x[b, l] where the position is not denoised or
// every z is -inf. A second read of the denoised rows (not fused into the kernels above): at
// T = 0 it repeats x0's argmax, at T > 0 (a sample) it is the only argmax. Launched before the
// denoise kernels, so a fused commit has not yet rewritten x.
constexpr int kArgmaxThreads = 256;

// (value, id) of the larger, ties to the smaller id.
__device__ __forceinline__ void argmax_merge(float& z, int& i, float oz, int oi) {
  if (oz > z || (oz == z && oi < i)) {
    z = oz;
    i = oi;
  }
}

template <typename In>
__global__ void __launch_bounds__(kArgmaxThreads)
    denoise_argmax_kernel(const In* logits,  // [B, L, V], strides (stride_b, stride_l, 1)
                          int64_t stride_b, int64_t stride_l,
                          View2D<const int64_t> x,  // [B, L] token ids
                          const int64_t* sup,       // [n_sup] sorted unique suppressed ids
                          int64_t n_sup, int64_t B, int64_t L, int V, DenoiseParams p) {
  __shared__ float sz[32];
  __shared__ int si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t pos = blockIdx.x; pos < B * L; pos += gridDim.x) {
    const int64_t b = pos / L, l = pos - b * L;
    const int64_t xv = x(b, l);
    int64_t* out = p.argmax + b * p.argmax_sb + l;
    if (!denoised(p, xv, b, l)) {  // block-uniform
      if (threadIdx.x == 0) *out = xv;
      continue;
    }
    const int64_t src = p.shift_logits ? (l > 0 ? l - 1 : 0) : l;
    const In* row = logits + b * stride_b + src * stride_l;
    const In* urow = uncond_row<In>(p, b, src);
    SuppressCursor cur;
    cur.init(sup, n_sup, 0);
    float best = kNegInf;
    int best_i = kNoToken;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {  // increasing v: strict > keeps the first
      const float z = cur.hit(v) ? kNegInf : sanitize(logit_at(row, urow, p.cfg_scale1, v));
      if (z > best) {
        best = z;
        best_i = v;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
      argmax_merge(best, best_i, __shfl_down_sync(0xFFFFFFFFu, best, o),
                   __shfl_down_sync(0xFFFFFFFFu, best_i, o));
    if (lane == 0) {
      sz[warp] = best;
      si[warp] = best_i;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < int(blockDim.x >> 5); ++w) argmax_merge(best, best_i, sz[w], si[w]);
      *out = best > kNegInf ? best_i : xv;
    }
    __syncthreads();
  }
}

// Launches denoise_argmax_kernel when p.argmax is set (else nothing).
template <typename In>
cudaError_t launch_argmax(const In* logits, int64_t stride_b, int64_t stride_l,
                          View2D<const int64_t> x, const int64_t* sup, int64_t n_sup, int64_t B,
                          int64_t L, int V, const DenoiseParams& p, cudaStream_t stream) {
  if (p.argmax == nullptr) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(B * L, 1 << 30));
  denoise_argmax_kernel<In><<<blocks, kArgmaxThreads, 0, stream>>>(logits, stride_b, stride_l, x,
                                                                   sup, n_sup, B, L, V, p);
  return cudaGetLastError();
}

// Launches the kernels of one (stats, sampling, CFG) variant. Standalone (NoEpilogue): the fast or
// the filtered kernel, plus the merge kernel when V is split. Fused: exactly one kernel, with
// epi_smem bytes of dynamic shared memory for the epilogue.
template <typename In, Stats kStats, bool kSample, bool kCfg, typename Epi>
cudaError_t launch(const In* logits, int64_t stride_b, int64_t stride_l, View2D<const int64_t> x,
                   const int64_t* sup, int64_t n_sup, int64_t B, int64_t L, int V,
                   const DenoiseParams& p, bool filtered, int splits, int64_t* x0, float* conf,
                   RowState* partial, const Epi& epi, size_t epi_smem, cudaStream_t stream) {
  const int64_t P = B * L;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(P, 1 << 30));
  if (filtered) {
    denoise_filtered_kernel<In, kStats, kSample, Epi><<<blocks, kFilterThreads, epi_smem, stream>>>(
        logits, stride_b, stride_l, x, sup, n_sup, B, L, V, p, x0, conf, epi);
    return cudaGetLastError();
  }
  const dim3 grid(blocks, static_cast<unsigned>(splits));
  denoise_fast_kernel<In, kStats, kSample, kCfg, Epi><<<grid, kFastThreads, epi_smem, stream>>>(
      logits, stride_b, stride_l, x, sup, n_sup, B, L, V, p, x0, conf, partial, splits, epi);
  if (!Epi::kFused && splits > 1) {
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    const int64_t merge_blocks = ceil_div(P, kMergeThreads / 32);
    denoise_merge_kernel<kStats>
        <<<static_cast<unsigned>(std::min<int64_t>(merge_blocks, 1 << 30)), kMergeThreads, 0,
           stream>>>(x, B, L, p, x0, conf, partial, splits);
  }
  return cudaGetLastError();
}

// Picks the (stats, sampling, CFG) variant of p and launches it (the filtered kernel branches on
// CFG per position instead: one instance fewer of the largest kernel).
template <typename In, typename Epi>
cudaError_t launch_variant(const In* logits, int64_t stride_b, int64_t stride_l,
                           View2D<const int64_t> x, const int64_t* sup, int64_t n_sup, int64_t B,
                           int64_t L, int V, const DenoiseParams& p, bool filtered, int splits,
                           int64_t* x0, float* conf, RowState* partial, const Epi& epi,
                           size_t epi_smem, cudaStream_t stream) {
  const auto go = [&](auto stats_tag, auto sample_tag) {
    constexpr Stats kS = decltype(stats_tag)::value;
    constexpr bool kSample = decltype(sample_tag)::value;
    if (p.cfg && !filtered)
      return launch<In, kS, kSample, true, Epi>(logits, stride_b, stride_l, x, sup, n_sup, B, L, V,
                                                p, filtered, splits, x0, conf, partial, epi,
                                                epi_smem, stream);
    return launch<In, kS, kSample, false, Epi>(logits, stride_b, stride_l, x, sup, n_sup, B, L, V,
                                               p, filtered, splits, x0, conf, partial, epi,
                                               epi_smem, stream);
  };
  using SNone = std::integral_constant<Stats, Stats::kNone>;
  using SBasic = std::integral_constant<Stats, Stats::kBasic>;
  using SEnt = std::integral_constant<Stats, Stats::kEntropy>;
  const auto with_stats = [&](auto sample_tag) {
    switch (p.confidence) {
      case Confidence::kRandom:
        return go(SNone{}, sample_tag);
      case Confidence::kNegEntropy:
        return go(SEnt{}, sample_tag);
      default:
        return go(SBasic{}, sample_tag);
    }
  };
  return p.sample ? with_stats(std::true_type{}) : with_stats(std::false_type{});
}

}  // namespace denoise_detail

// How a call is laid out: splits of V per position (fast path, small B*L) and the workspace the
// caller must provide (partial states [B*L, splits], 32 B each; never B*L*V).
struct DenoisePlan {
  bool filtered;
  int splits;
  size_t workspace_bytes;
};

inline DenoisePlan denoise_step_plan(int64_t B, int64_t L, int64_t V, const DenoiseParams& p,
                                     int num_sms) {
  DenoisePlan plan{};
  plan.filtered = (p.top_k > 0 && p.top_k < V) || p.top_p < 1.0;
  plan.splits = 1;
  const int64_t P = B * L;
  if (!plan.filtered && P > 0) {
    const int64_t target_blocks = int64_t(std::max(num_sms, 1)) * 4;  // ~4 x 256 threads per SM
    const int64_t max_splits = std::clamp<int64_t>(V / 4096, 1, 64);  // >= 4096 logits per split
    plan.splits = static_cast<int>(std::clamp<int64_t>(ceil_div(target_blocks, P), 1, max_splits));
  }
  plan.workspace_bytes =
      plan.splits > 1 ? size_t(P) * plan.splits * sizeof(denoise_detail::RowState) : 0;
  return plan;
}

// x0 / conf of every position (x0 = x, conf = -inf where not denoised), and p.argmax when set.
// workspace: at least plan.workspace_bytes, 16-byte aligned.
template <typename In>
cudaError_t denoise_step(const In* logits,                    // [B, L, V], V contiguous
                         int64_t stride_b, int64_t stride_l,  // element strides of B and L
                         View2D<const int64_t> x,             // [B, L] token ids
                         const int64_t* suppress,  // [n_suppress] sorted unique ids, or null
                         int64_t n_suppress, int64_t B, int64_t L, int64_t V,
                         const DenoiseParams& p, const DenoisePlan& plan,
                         int64_t* x0,      // [B, L] contiguous, written
                         float* conf,      // [B, L] contiguous, written
                         void* workspace,  // plan.workspace_bytes
                         cudaStream_t stream) {
  using namespace denoise_detail;
  if (B == 0 || L == 0) return cudaSuccess;
  if (V < 1 || V > INT32_MAX - 1024) return cudaErrorInvalidValue;  // int loops step <= 512
  if (plan.splits > 1 && workspace == nullptr) return cudaErrorInvalidValue;
  if (suppress == nullptr) n_suppress = 0;
  const cudaError_t err = launch_argmax(logits, stride_b, stride_l, x, suppress, n_suppress, B, L,
                                        static_cast<int>(V), p, stream);
  if (err != cudaSuccess) return err;
  return launch_variant<In, NoEpilogue>(logits, stride_b, stride_l, x, suppress, n_suppress, B, L,
                                        static_cast<int>(V), p, plan.filtered, plan.splits, x0,
                                        conf, static_cast<RowState*>(workspace), NoEpilogue{}, 0,
                                        stream);
}

}  // namespace dllm::cuda
