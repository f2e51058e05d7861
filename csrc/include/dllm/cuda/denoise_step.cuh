// dllm/cuda/denoise_step.cuh — CUDA launcher for denoise_step: per masked position, logits [V] ->
// candidate token x0 and a confidence (dllm_kernels/reference/denoise_step.py is the spec).
//
// Napkin math. The floor is one read of every masked position's V logits: B*L*V*sizeof(In) bytes.
// A [64, 32, 126464] bf16 step is 518 MB, ~0.17 ms at ~3 TB/s (H100 HBM3); [1, 32, 126464] bf16
// is 8 MB, ~3 us, i.e. launch-bound. Compute per logit on the fast path: decode, sanitize, one
// multiply, ~6 compares (pass 1), then one expf and two float->int64 roundings (pass 2): ~30
// instructions, 259M logits * 30 / ~29 T lane-ops/s ~ 0.27 ms. T > 0 adds Philox (~12 instr/logit)
// and two deterministic logs per logit (dllm::gumbel_of_word); a logit whose score cannot reach the
// running best even with the largest possible Gumbel draw (-log(-log(1 - 2^-24)) = 16.64 < 17)
// skips the noise, which removes most of that cost for peaked distributions. Unmasked positions
// never read their logits.
//
// Two passes over a position's row, as the CPU kernel (dllm/cpu/denoise_step.h):
//   pass 1  the choice (argmax, or the Gumbel-max winner keyed by the GLOBAL token id), its
//           confidence logit d, the max m of d and the second largest d2 (duplicates count: the
//           margin). Order-free: maxima, and ties to the smaller id.
//   pass 2  the confidence sums with the row's max M: every term exp(d - M) (and its entropy term
//           exp(d - M)(d - M)) rounded to a multiple of 2^-40, added as int64 (Sums, the CPU's
//           ExactSums). Integer sums do not depend on the order or on how the row is split over
//           threads, blocks or tensor-parallel shards (dllm/cuda/denoise_shard.cuh): that is what
//           makes a sharded step the unsharded step's bits. Rounding: <= 2^-41 per term.
// The finalize turns (m, d2, best_d, sums) into the confidence in float64, as the CPU kernel does.
// Cost of exactness: the second read of the row. It comes from L2 when the row fits (V split over
// blocks for small B*L: <= 64 KB per block; [1, 32, 126464] bf16 is 8 MB in all), from HBM for
// large batches of whole rows (up to 2x the floor there).
//
// Layout. 16-byte vector loads (unaligned head / tail elements scalar), warp shuffles + shared
// memory merge the block. When B*L is small the vocabulary is split over gridDim.y blocks per
// position: the fast kernel writes each split's pass-1 state to workspace [B*L, splits]; the sums
// kernel (grid B*L x splits again) merges them for M, sums its split, adds it with int64 atomics
// (exact: any order), and the last split block to arrive (dllm/cuda/last_block.cuh) finalises the
// position. No float atomics, deterministic. denoise_and_select runs the same kernels with an
// epilogue (dllm/cuda/denoise_and_select.cuh) called where a position is finalised.
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
// histograms in shared memory: element counts for top-k (exact k-th largest), masses for top-p as
// integers round(e^{s-max} 2^40) (tau = the value where the descending cumulative mass first
// reaches top_p of the total; integer sums are exact, so the result does not depend on the order
// of the atomics, and vocabulary shards reproduce it from their all-reduced histograms). Then the
// fast path's two passes with the threshold applied. ~10-11 passes over V (L2-resident for small
// batches); exactness over speed.
//
// NOT YET RUN ON A GPU: this file compiles for sm_90a in CI; no kernel of it has executed.
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

// What the confidence needs: nothing (random), max / top-2 / sum e^{d-M} (prob, margin), or also
// sum e^{d-M}(d-M) (neg_entropy).
enum class Stats : int { kNone = 0, kBasic = 1, kEntropy = 2 };

// Pass-1 state of (part of) one position's vocabulary. 32 bytes, two 16-byte words.
struct alignas(16) RowState {
  float m;       // max of the confidence logits d (-inf: none finite yet)
  float d2;      // second largest d, duplicates counted (== m when the max is shared)  (margin)
  float best;    // best choice score: filtered (+ Gumbel); -inf: none
  int best_i;    // its token id in the logits row (kNoToken: none)
  float best_d;  // d at best_i                                                         (prob)
  float pad0, pad1, pad2;
};

__device__ __forceinline__ RowState empty_state() {
  return RowState{kNegInf, kNegInf, kNegInf, kNoToken, kNegInf, 0.0f, 0.0f, 0.0f};
}

// Pass-2 sums (the CPU kernel's dllm::cpu::ExactSums): s = sum round(exp(d - M) 2^40),
// t = sum round(fl32(exp(d - M) (d - M)) 2^40) (neg_entropy). V < 2^23 keeps them in int64.
struct Sums {
  long long s, t;
};
constexpr double kSumScale = 1099511627776.0;  // 2^40
constexpr float kSumScaleF = 1099511627776.0f;
// A term with d - M < -40 rounds to 0 in both sums (e^-40 2^40 < 5e-6; |e^x x| 2^40 < 2e-4 for
// x < -40), so it is skipped: the same integers, no expf.
constexpr float kSumCut = -40.0f;

// Per-position constants of the element loop.
struct Ctx {
  float inv_t;           // fl32(1 / T)
  float thr;             // filter threshold on scaled logits (-inf: keep all)
  bool source_sampling;  // d = filtered (else z)
  uint64_t seed;
  uint32_t offset;
  int64_t b, l;
  int64_t v0;  // global id of the row's token 0 (p.vocab_start): keys the Gumbel noise
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

// v: the id in the row; the noise is that of the global id c.v0 + v (c.v0 % 4 == 0: same word).
__device__ __forceinline__ float gumbel(GumbelCache& gc, const Ctx& c, int v) {
  const uint32_t g = static_cast<uint32_t>((c.v0 + v) >> 2);
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

// ---- pass 1: the choice, max and second largest ------------------------------------------------

// Adds one confidence logit d to (m, d2).
__device__ __forceinline__ void add_conf(RowState& s, float d) {
  if (d > s.m) {
    s.d2 = s.m;
    s.m = d;
  } else {
    s.d2 = fmaxf(s.d2, d);
  }
}

// a = a (+) b. Choice ties go to the smaller token id. Order-free: any merge tree gives the same.
template <Stats kStats>
__device__ __forceinline__ void merge(RowState& a, const RowState& b) {
  if (b.best > a.best || (b.best == a.best && b.best_i < a.best_i)) {
    a.best = b.best;
    a.best_i = b.best_i;
    a.best_d = b.best_d;
  }
  if constexpr (kStats != Stats::kNone) {
    a.d2 = fmaxf(fmaxf(a.d2, b.d2), fminf(a.m, b.m));
    a.m = fmaxf(a.m, b.m);
  }
}

__device__ __forceinline__ RowState shfl_down_state(const RowState& s, int delta) {
  RowState o = s;
  o.m = __shfl_down_sync(0xFFFFFFFFu, s.m, delta);
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

// What the fast, sums and filtered kernels keep in shared memory.
struct BlockSmem {
  RowState states[32];  // block_reduce
  Sums sums[32];        // block_reduce_sums
  RowState merged;      // the sums kernel: the position's merged pass-1 state
  float M;              // the position's max of d, for every thread
};

// Full block reduction; the result is valid in thread 0. Ends with a barrier so the caller may
// reuse the shared memory.
template <Stats kStats>
__device__ __forceinline__ RowState block_reduce(RowState s, BlockSmem& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  s = warp_reduce<kStats>(s);
  if (lane == 0) sh.states[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < warps ? sh.states[lane] : empty_state();
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
  return RowState{a.x, a.y, a.z, __float_as_int(a.w), c.x, c.y, c.z, c.w};
}

// The merged state of one position's splits, valid in lane 0; all 32 lanes of the warp call.
template <Stats kStats>
__device__ __forceinline__ RowState merge_splits(const RowState* partial,  // [splits]
                                                 int splits) {
  RowState s = empty_state();
  for (int k = threadIdx.x & 31; k < splits; k += 32) merge<kStats>(s, load_state(partial + k));
  return warp_reduce<kStats>(s);
}

// ---- pass 2: the exact sums --------------------------------------------------------------------

template <Stats kStats>
__device__ __forceinline__ void add_exact(Sums& q, float d, float M) {
  const float dm = __fsub_rn(d, M);
  if (!(dm >= kSumCut)) return;  // d = -inf, or a term that rounds to 0
  const float e = expf(dm);
  // v 2^40 is exact in float32 (|v| <= 1), so one float->int64 rounding (nearest, ties to even)
  // gives the CPU's llrint(double(v) 2^40).
  q.s += __float2ll_rn(__fmul_rn(e, kSumScaleF));
  if constexpr (kStats == Stats::kEntropy)
    q.t += __float2ll_rn(__fmul_rn(__fmul_rn(e, dm), kSumScaleF));
}

// Block sum of the threads' Sums, valid in thread 0 (integers: any order gives the same). Ends
// with a barrier.
__device__ __forceinline__ Sums block_reduce_sums(Sums q, BlockSmem& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    q.s += __shfl_down_sync(0xFFFFFFFFu, q.s, o);
    q.t += __shfl_down_sync(0xFFFFFFFFu, q.t, o);
  }
  if (lane == 0) sh.sums[warp] = q;
  __syncthreads();
  if (warp == 0) {
    q = lane < warps ? sh.sums[lane] : Sums{0, 0};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      q.s += __shfl_down_sync(0xFFFFFFFFu, q.s, o);
      q.t += __shfl_down_sync(0xFFFFFFFFu, q.t, o);
    }
  }
  __syncthreads();
  return q;
}

// ---- one logit ---------------------------------------------------------------------------------

// What the passes read of token v, from its raw value (decoded, unsanitised): z (sanitised,
// suppressed -inf), f (z scaled by fl32(1/T), cut below c.thr) and the confidence logit d.
struct Values {
  float z, f, d;
};

// s, or -inf below the threshold thr (thr = -inf keeps every non-NaN s).
__device__ __forceinline__ float cut_below(float s, float thr) { return !(s >= thr) ? kNegInf : s; }

__device__ __forceinline__ Values values_of(const Ctx& c, float raw, bool suppressed) {
  const float z = suppressed ? kNegInf : sanitize(raw);
  const float f = cut_below(sanitize(__fmul_rn(z, c.inv_t)), c.thr);
  return Values{z, f, c.source_sampling ? f : z};
}

// Pass 1 of one logit (v: its id in the row).
template <Stats kStats, bool kSample>
__device__ __forceinline__ void visit(RowState& s, GumbelCache& gc, const Ctx& c, float raw,
                                      bool suppressed, int v) {
  const Values e = values_of(c, raw, suppressed);
  float y = e.f;  // choice score
  if constexpr (kSample) {
    // f + g <= f + 16.64 <= fl(f + 17) < best: this token cannot win (nor tie); skip the noise.
    y = (e.f > kNegInf && __fadd_rn(e.f, kGumbelBound) >= s.best) ? __fadd_rn(e.f, gumbel(gc, c, v))
                                                                  : kNegInf;
  }
  if (y > s.best) {  // a thread visits increasing ids: strict > keeps the smallest id
    s.best = y;
    s.best_i = v;
    s.best_d = e.d;
  }
  if constexpr (kStats != Stats::kNone) add_conf(s, e.d);
}

// ---- the walk over a row -----------------------------------------------------------------------

// Calls fn(raw, suppressed, v) for this thread's share of `row` (token ids [0, V)), split `split`
// of `splits`, in increasing v: vectors of 16 bytes over the aligned body, head / tail elements
// scalar (split 0 / the last). kCfg: the logits are guide(row, urow, s1), both rows read side by
// side (vectors only when the two rows share their alignment mod 16).
template <typename In, bool kCfg, typename Fn>
__device__ __forceinline__ void for_each_logit(const In* row,   // [V]
                                               const In* urow,  // [V] unconditional, or null
                                               float s1, int V, int split, int splits,
                                               const int64_t* sup, int64_t n_sup, Fn&& fn) {
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
    for (int v = tid; v < head; v += nt) fn(at(v), cur.hit(v), v);

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
    for (int j = 0; j < kVec; ++j) fn(vals[j], ((hits >> j) & 1u) != 0, v0 + j);
  };
  // The unconditional vector (kCfg), or q itself (not read).
  const auto uload = [&](int i, const uint4& q) { return kCfg ? __ldcg(vurow + i) : q; };
  int i = vb + tid;
  for (; i + nt < ve; i += 2 * nt) {  // two 16-byte loads (four with CFG) in flight per thread
    const uint4 q0 = __ldcg(vrow + i);
    const uint4 q1 = __ldcg(vrow + i + nt);
    const uint4 u0 = uload(i, q0);
    const uint4 u1 = uload(i + nt, q1);
    body(q0, u0, i);
    body(q1, u1, i + nt);
  }
  if (i < ve) {
    const uint4 q = __ldcg(vrow + i);
    body(q, uload(i, q), i);
  }

  if (split == splits - 1)
    for (int v = tail + tid; v < V; v += nt) fn(at(v), cur.hit(v), v);
}

// Pass 1 of this thread's share.
template <typename In, Stats kStats, bool kSample, bool kCfg>
__device__ __forceinline__ RowState scan_states(const In* row, const In* urow, float s1, int V,
                                                int split, int splits, const int64_t* sup,
                                                int64_t n_sup, const Ctx& c) {
  RowState s = empty_state();
  GumbelCache gc;
  for_each_logit<In, kCfg>(row, urow, s1, V, split, splits, sup, n_sup,
                           [&](float raw, bool suppressed, int v) {
                             visit<kStats, kSample>(s, gc, c, raw, suppressed, v);
                           });
  return s;
}

// Pass 2 of this thread's share, M = the whole row's max of d (finite).
template <typename In, Stats kStats, bool kCfg>
__device__ __forceinline__ Sums scan_sums(const In* row, const In* urow, float s1, int V, int split,
                                          int splits, const int64_t* sup, int64_t n_sup,
                                          const Ctx& c, float M) {
  Sums q{0, 0};
  for_each_logit<In, kCfg>(row, urow, s1, V, split, splits, sup, n_sup,
                           [&](float raw, bool suppressed, int) {
                             add_exact<kStats>(q, values_of(c, raw, suppressed).d, M);
                           });
  return q;
}

// Writes x0 and conf of position (b, l) from its whole-row state and sums, as the CPU kernel's
// finalize (float64, the same formulas). x0 = s.best_i (a global id: the shards' states carry
// them).
__device__ __forceinline__ void finalize(const RowState& s, const Sums& q, const DenoiseParams& p,
                                         int64_t b, int64_t l, int64_t xv, int64_t* x0,
                                         float* conf) {
  if (!(s.best > kNegInf)) {  // every filtered logit is -inf: nothing to decode
    *x0 = xv;
    *conf = kNegInf;
    return;
  }
  *x0 = s.best_i;
  const double S = static_cast<double>(q.s) / kSumScale;  // >= 1: the max's own term is 2^40
  double c = 0.0;
  switch (p.confidence) {
    case Confidence::kProb:
      c = exp(static_cast<double>(s.best_d) - s.m) / S;
      break;
    case Confidence::kMargin:  // p1 - p2; 0 when the max is shared (d2 == m)
      c = 1.0 / S - (s.d2 == kNegInf ? 0.0 : exp(static_cast<double>(s.d2) - s.m) / S);
      break;
    case Confidence::kNegEntropy:  // sum p log p = T/S - log S
      c = static_cast<double>(q.t) / kSumScale / S - log(S);
      break;
    case Confidence::kRandom:
      c = uniform_closed0(philox_group(p.seed, p.offset, b, l, kSlotGroupConfidence).w[0]);
      break;
  }
  *conf = static_cast<float>(c);
}

__device__ __forceinline__ Ctx make_ctx(const DenoiseParams& p, float thr, int64_t b, int64_t l) {
  return Ctx{p.inv_temperature, thr, p.source_sampling, p.seed, p.offset, b, l, p.vocab_start};
}

// The positions' logits and what selects them: every kernel's first argument.
template <typename In>
struct Rows {
  const In* logits;  // [B, L, V], strides (stride_b, stride_l, 1)
  int64_t stride_b, stride_l;
  View2D<const int64_t> x;  // [B, L] token ids
  const int64_t* sup;       // [n_sup] sorted unique suppressed ids of the row (or null)
  int64_t n_sup;
  int64_t B, L;
  int V;

  // The logits row position (b, l) reads (shift_logits: l - 1's, position 0 its own).
  __device__ __forceinline__ int64_t src(const DenoiseParams& p, int64_t l) const {
    return p.shift_logits ? (l > 0 ? l - 1 : 0) : l;
  }
  __device__ __forceinline__ const In* row(int64_t b, int64_t src) const {
    return logits + b * stride_b + src * stride_l;
  }
};

// Pass 2 and the finalize of a position whose whole row this block scanned (s: its block-reduced
// pass-1 state, valid in thread 0). Every thread calls.
template <typename In, Stats kStats, bool kCfg>
__device__ __forceinline__ void finish_row(const RowState& s, const Rows<In>& r, const In* row,
                                           const In* urow, const Ctx& c, const DenoiseParams& p,
                                           int64_t xv, int64_t* x0, float* conf, BlockSmem& sh) {
  if (threadIdx.x == 0) sh.M = s.m;
  __syncthreads();
  const float M = sh.M;
  Sums q{0, 0};
  if (kStats != Stats::kNone && M > kNegInf) {  // block-uniform
    q = scan_sums<In, kStats, kCfg>(row, urow, p.cfg_scale1, r.V, 0, 1, r.sup, r.n_sup, c, M);
    q = block_reduce_sums(q, sh);
  }
  if (threadIdx.x == 0) finalize(s, q, p, c.b, c.l, xv, x0, conf);
}

// ---- what a kernel does after writing a position's result --------------------------------------
// Nothing for denoise_step (NoEpilogue). denoise_and_select's fused kernels pass an epilogue with
// kFused = true (dllm/cuda/denoise_and_select.cuh): epi.position_done(b, scratch) is called by
// every thread of the block once thread 0 has written x0 / conf of a position of row b (scratch:
// the kernel's dynamic shared memory).
struct NoEpilogue {
  static constexpr bool kFused = false;
};

// ---- fast path (no filters of its own) ---------------------------------------------------------

// Where the fast kernel's pass-1 results go.
struct FastIO {
  const float* thr;   // [B*L] filter threshold (tensor parallelism: the filters' global one), or
                      //   null: none
  RowState* partial;  // [B*L, splits] pass-1 states (splits > 1, or states_only)
  bool states_only;   // write the states, never finalise (denoise_shard's state stage)
};

// splits == 1 (and not states_only): both passes and the finalize of whole rows, one block per
// position. Else pass 1 of split blockIdx.y into io.partial (the sums kernel goes on).
template <typename In, Stats kStats, bool kSample, bool kCfg, typename Epi>
__global__ void __launch_bounds__(kFastThreads)
    denoise_fast_kernel(Rows<In> r, DenoiseParams p,
                        int64_t* x0,  // [B, L] contiguous (null: states_only)
                        float* conf,  // [B, L] contiguous (null: states_only)
                        FastIO io, int splits,
                        Epi epi) {  // NoEpilogue, or the fused selection
  __shared__ BlockSmem sh;
  extern __shared__ __align__(16) unsigned char scratch[];  // the epilogue's (fused only)
  const int split = blockIdx.y;
  const bool whole = splits == 1 && !io.states_only;
  for (int64_t pos = blockIdx.x; pos < r.B * r.L; pos += gridDim.x) {
    const int64_t b = pos / r.L, l = pos - b * r.L;
    const int64_t xv = r.x(b, l);
    bool wrote;                    // block-uniform: this block wrote x0 / conf of the position
    if (!denoised(p, xv, b, l)) {  // split 0 writes the position not denoised
      wrote = split == 0 && !io.states_only;
      if (wrote && threadIdx.x == 0) {
        x0[pos] = xv;
        conf[pos] = kNegInf;
      }
    } else {
      const int64_t src = r.src(p, l);
      const In* row = r.row(b, src);
      const In* urow = kCfg ? uncond_row<In>(p, b, src) : nullptr;
      const Ctx c = make_ctx(p, io.thr ? io.thr[pos] : kNegInf, b, l);
      RowState s = scan_states<In, kStats, kSample, kCfg>(row, urow, p.cfg_scale1, r.V, split,
                                                          splits, r.sup, r.n_sup, c);
      s = block_reduce<kStats>(s, sh);
      wrote = whole;
      if (whole)
        finish_row<In, kStats, kCfg>(s, r, row, urow, c, p, xv, x0 + pos, conf + pos, sh);
      else if (threadIdx.x == 0)
        io.partial[pos * splits + split] = s;
    }
    if constexpr (Epi::kFused) {
      if (wrote) epi.position_done(b, scratch);  // one call site: one inlined copy
    }
  }
}

// What the sums kernel reads and writes.
struct SumsIO {
  const float* thr;          // [B*L] filter threshold, or null: none
  const RowState* partial;   // [B*L, splits] pass-1 states: M = their max; or null: M = anchor
  const float* anchor;       // [B*L] the row's max of d (tensor parallelism: over every shard)
  unsigned long long* sums;  // [B*L, 2] zeroed: Sums (two's complement), added by every split
  unsigned* split_count;     // [B*L] zeroed: the last split to arrive finalises; null: none does
};

// Pass 2 of split blockIdx.y of every denoised position, after the fast kernel's pass 1 (or with
// the shards' global max, io.anchor); the last split of a position finalises it (io.split_count).
template <typename In, Stats kStats, bool kCfg, typename Epi>
__global__ void __launch_bounds__(kFastThreads)
    denoise_sums_kernel(Rows<In> r, DenoiseParams p,
                        int64_t* x0,  // [B, L] contiguous (io.split_count only)
                        float* conf,  // [B, L] contiguous (io.split_count only)
                        SumsIO io, int splits, Epi epi) {
  __shared__ BlockSmem sh;
  extern __shared__ __align__(16) unsigned char scratch[];  // the epilogue's (fused only)
  const int split = blockIdx.y;
  for (int64_t pos = blockIdx.x; pos < r.B * r.L; pos += gridDim.x) {
    const int64_t b = pos / r.L, l = pos - b * r.L;
    const int64_t xv = r.x(b, l);
    if (!denoised(p, xv, b, l)) continue;  // block-uniform; the fast kernel wrote it
    if (io.partial != nullptr) {
      if (threadIdx.x < 32) {
        const RowState s = merge_splits<kStats>(io.partial + pos * splits, splits);
        if (threadIdx.x == 0) {
          sh.merged = s;
          sh.M = s.m;
        }
      }
    } else if (threadIdx.x == 0) {
      sh.M = io.anchor[pos];
    }
    __syncthreads();
    const float M = sh.M;
    const Ctx c = make_ctx(p, io.thr ? io.thr[pos] : kNegInf, b, l);
    if (kStats != Stats::kNone && M > kNegInf) {  // block-uniform
      const int64_t src = r.src(p, l);
      const Sums q0 =
          scan_sums<In, kStats, kCfg>(r.row(b, src), kCfg ? uncond_row<In>(p, b, src) : nullptr,
                                      p.cfg_scale1, r.V, split, splits, r.sup, r.n_sup, c, M);
      const Sums q = block_reduce_sums(q0, sh);
      if (threadIdx.x == 0) {
        atomicAdd(io.sums + 2 * pos, static_cast<unsigned long long>(q.s));
        atomicAdd(io.sums + 2 * pos + 1, static_cast<unsigned long long>(q.t));
      }
    }
    bool wrote = false;
    if (io.split_count != nullptr) {
      wrote = last_to_arrive(io.split_count + pos, static_cast<unsigned>(splits));
      if (wrote && threadIdx.x == 0) {
        const Sums tot{static_cast<long long>(__ldcg(io.sums + 2 * pos)),
                       static_cast<long long>(__ldcg(io.sums + 2 * pos + 1))};
        finalize(sh.merged, tot, p, b, l, xv, x0 + pos, conf + pos);
      }
    }
    if constexpr (Epi::kFused) {
      if (wrote) epi.position_done(b, scratch);
    }
    __syncthreads();  // sh.M / sh.merged belong to the next position
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
// serialise). Integer weights: any order of the adds gives the same sums. All 32 lanes of the
// warp must call.
template <bool kMass>
__device__ __forceinline__ void hist_add(uint32_t* cnt, unsigned long long* mass, uint32_t bin,
                                         unsigned long long w, bool active) {
  const int lane = threadIdx.x & 31;
  const uint32_t act = __ballot_sync(0xFFFFFFFFu, active);
  if (act == 0) return;
  const uint32_t peers = __match_any_sync(0xFFFFFFFFu, active ? bin : 0xFFFFFFFFu);
  const int leader = __ffs(peers) - 1;
  if (active && lane == leader) atomicAdd(cnt + bin, static_cast<uint32_t>(__popc(peers)));
  if constexpr (kMass) {
    const uint32_t leaders = __ballot_sync(0xFFFFFFFFu, active && lane == leader);
    if (__popc(leaders) * 4 > __popc(act)) {  // bins mostly distinct: direct atomics
      if (active && w > 0) atomicAdd(mass + bin, w);
      return;
    }
    uint32_t todo = leaders;  // few distinct bins: one warp sum per bin
    while (todo) {
      const int lead = __ffs(todo) - 1;
      todo &= todo - 1;
      const uint32_t lb = __shfl_sync(0xFFFFFFFFu, bin, lead);
      unsigned long long v = (active && bin == lb) ? w : 0;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
      if (lane == lead && v > 0) atomicAdd(mass + lb, v);
    }
  }
}

// Warp 0: the highest bin d with cnt[d] > 0 for which reach(the cumulative weight of bins >= d)
// holds; if none, the lowest non-empty bin. Returns d; *above = weight of bins > d. Integer
// weights: the scan is exact, so tensor parallelism (dllm_kernels/tp.py, _pick_bin) picks the
// same bin from the all-reduced histogram.
template <typename W, typename Reach>
__device__ __forceinline__ int pick_bin(const uint32_t* cnt, const W* weight, Reach reach,
                                        W* above) {
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
      if (found < 0 && reach(run)) {
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
  unsigned long long mass[256];  // top-p: sums of top_p_weight
  uint32_t prefix;
  int64_t remaining;
  unsigned long long above;  // top-p: the mass of the levels' bins above the current prefix
  double need;               // top-p: top_p * the set's total mass
  float fmax[32];
};

// The k-th largest scaled logit of the row (duplicates counted), 1 <= k < V; values below `cut`
// count as -inf (tensor parallelism: an earlier filter's global threshold; else -inf).
template <typename In>
__device__ float top_k_value(const In* row, const In* urow, float s1, int V, int64_t k,
                             const int64_t* sup, int64_t n_sup, float inv_t, float cut,
                             FilterSmem& sh) {
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
        key = float_key(cut_below(scaled_at(row, urow, s1, v, cur.hit(v), inv_t), cut));
        in = (key & pmask) == prefix;
      }
      hist_add<false>(sh.cnt, nullptr, (key >> shift) & 255u, 0, in);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      uint32_t above;
      const uint32_t rem = static_cast<uint32_t>(sh.remaining);  // <= V < 2^31
      const int d =
          pick_bin<uint32_t>(sh.cnt, sh.cnt, [rem](uint32_t run) { return run >= rem; }, &above);
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

// The top-p mass of a scaled logit s, m_s = the row's max: round(e^{s - m_s} 2^40) (the exact
// confidence sums' quantum: integers add up exactly, in any order and over any shards; a value
// more than 40 below the max weighs 0).
__device__ __forceinline__ unsigned long long top_p_weight(float s, float m_s) {
  const float dm = __fsub_rn(s, m_s);
  if (!(dm >= kSumCut)) return 0;
  return static_cast<unsigned long long>(__float2ll_rn(__fmul_rn(expf(dm), kSumScaleF)));
}

// One level of the top-p radix select: sh.cnt / sh.mass = the count and top_p_weight sums of the
// tokens with key >= lo_key and (key & pmask) == prefix, by the byte (key >> shift) & 255. Ends
// with a barrier.
template <typename In>
__device__ void top_p_level(const In* row, const In* urow, float s1, int V, uint32_t lo_key,
                            float m_s, uint32_t prefix, uint32_t pmask, int shift,
                            const int64_t* sup, int64_t n_sup, float inv_t, FilterSmem& sh) {
  for (int i = threadIdx.x; i < 256; i += blockDim.x) {
    sh.cnt[i] = 0;
    sh.mass[i] = 0;
  }
  __syncthreads();
  SuppressCursor cur;
  cur.init(sup, n_sup, 0);
  for (int base = 0; base < V; base += blockDim.x) {
    const int v = base + threadIdx.x;
    uint32_t key = 0;
    bool in = false;
    unsigned long long w = 0;
    if (v < V) {
      const float s = scaled_at(row, urow, s1, v, cur.hit(v), inv_t);
      key = float_key(s);
      in = key >= lo_key && (key & pmask) == prefix;
      if (in) w = top_p_weight(s, m_s);
    }
    hist_add<true>(sh.cnt, sh.mass, (key >> shift) & 255u, w, in);
  }
  __syncthreads();
}

// tau of top-p over the tokens whose key >= lo_key: the value at which the descending cumulative
// mass (top_p_weight, integers) first reaches top_p of the set's total, compared in float64:
// double(cumulative) >= top_p * double(total). m_s: the row's max (finite). Exact and order-free
// (tensor parallelism runs the same levels on the shards' all-reduced histograms: tp.py).
template <typename In>
__device__ float top_p_value(const In* row, const In* urow, float s1, int V, double top_p,
                             uint32_t lo_key, float m_s, const int64_t* sup, int64_t n_sup,
                             float inv_t, FilterSmem& sh) {
  uint32_t prefix = 0, pmask = 0;
  if (threadIdx.x == 0) sh.above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    top_p_level(row, urow, s1, V, lo_key, m_s, prefix, pmask, shift, sup, n_sup, inv_t, sh);
    if (threadIdx.x < 32) {
      if (shift == 24) {  // the set's total mass: all of it is in this first histogram
        unsigned long long tot = 0;
        for (int j = 0; j < 8; ++j) tot += sh.mass[255 - 8 * threadIdx.x - j];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) tot += __shfl_xor_sync(0xFFFFFFFFu, tot, o);
        if (threadIdx.x == 0) sh.need = top_p * static_cast<double>(tot);
        __syncwarp();
      }
      unsigned long long above;
      const unsigned long long done = sh.above;
      const double need = sh.need;
      const int d = pick_bin<unsigned long long>(
          sh.cnt, sh.mass,
          [done, need](unsigned long long run) { return static_cast<double>(done + run) >= need; },
          &above);
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
    denoise_filtered_kernel(Rows<In> r, DenoiseParams p,
                            int64_t* x0,  // [B, L] contiguous
                            float* conf,  // [B, L] contiguous
                            Epi epi) {    // NoEpilogue, or the fused selection
  __shared__ FilterSmem fsh;
  __shared__ BlockSmem sh;
  extern __shared__ __align__(16) unsigned char scratch[];  // the epilogue's (fused only)
  const bool use_k = p.top_k > 0 && p.top_k < r.V;
  const bool use_p = p.top_p < 1.0;
  for (int64_t pos = blockIdx.x; pos < r.B * r.L; pos += gridDim.x) {
    const int64_t b = pos / r.L, l = pos - b * r.L;
    const int64_t xv = r.x(b, l);
    if (!denoised(p, xv, b, l)) {  // block-uniform
      if (threadIdx.x == 0) {
        x0[pos] = xv;
        conf[pos] = kNegInf;
      }
    } else {
      const int64_t src = r.src(p, l);
      const In* row = r.row(b, src);
      const In* urow = uncond_row<In>(p, b, src);  // CFG's unconditional row, or null
      const float s1 = p.cfg_scale1;
      const float inv_t = p.inv_temperature;
      const int V = r.V;
      // top_k_first: thr = tau(top-p over {s >= kth}) (>= kth); top_p_first: the k-th largest of
      // the top-p survivors = max(tau(full row), kth(full row)).
      const float kth =
          use_k ? top_k_value(row, urow, s1, V, p.top_k, r.sup, r.n_sup, inv_t, kNegInf, fsh)
                : kNegInf;
      float thr = kth;
      if (use_p) {
        const float m_s = row_max_scaled(row, urow, s1, V, r.sup, r.n_sup, inv_t, fsh);
        if (m_s > kNegInf) {
          const uint32_t lo_key = (use_k && !p.top_p_first) ? float_key(kth) : 0u;
          thr = fmaxf(
              thr, top_p_value(row, urow, s1, V, p.top_p, lo_key, m_s, r.sup, r.n_sup, inv_t, fsh));
        }
      }
      const Ctx c = make_ctx(p, thr, b, l);
      RowState s;
      if (urow) {
        s = scan_states<In, kStats, kSample, true>(row, urow, s1, V, 0, 1, r.sup, r.n_sup, c);
        s = block_reduce<kStats>(s, sh);
        finish_row<In, kStats, true>(s, r, row, urow, c, p, xv, x0 + pos, conf + pos, sh);
      } else {
        s = scan_states<In, kStats, kSample, false>(row, nullptr, s1, V, 0, 1, r.sup, r.n_sup, c);
        s = block_reduce<kStats>(s, sh);
        finish_row<In, kStats, false>(s, r, row, nullptr, c, p, xv, x0 + pos, conf + pos, sh);
      }
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
    denoise_argmax_kernel(Rows<In> r, DenoiseParams p,
                          float* zmax) {  // [B*L]: the max of z (-inf: none), or null
  __shared__ float sz[32];
  __shared__ int si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t pos = blockIdx.x; pos < r.B * r.L; pos += gridDim.x) {
    const int64_t b = pos / r.L, l = pos - b * r.L;
    const int64_t xv = r.x(b, l);
    int64_t* out = p.argmax + b * p.argmax_sb + l;
    if (!denoised(p, xv, b, l)) {  // block-uniform
      if (threadIdx.x == 0) {
        *out = xv;
        if (zmax) zmax[pos] = kNegInf;
      }
      continue;
    }
    const int64_t src = r.src(p, l);
    const In* row = r.row(b, src);
    const In* urow = uncond_row<In>(p, b, src);
    SuppressCursor cur;
    cur.init(r.sup, r.n_sup, 0);
    float best = kNegInf;
    int best_i = kNoToken;
    for (int v = threadIdx.x; v < r.V; v += blockDim.x) {  // increasing v: strict > keeps the first
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
      *out = best > kNegInf ? best_i + p.vocab_start : xv;
      if (zmax) zmax[pos] = best;
    }
    __syncthreads();
  }
}

inline unsigned position_blocks(int64_t P) {
  return static_cast<unsigned>(std::min<int64_t>(P, 1 << 30));
}

// Launches denoise_argmax_kernel when p.argmax is set (else nothing).
template <typename In>
cudaError_t launch_argmax(const Rows<In>& r, const DenoiseParams& p, float* zmax,
                          cudaStream_t stream) {
  if (p.argmax == nullptr) return cudaSuccess;
  denoise_argmax_kernel<In><<<position_blocks(r.B * r.L), kArgmaxThreads, 0, stream>>>(r, p, zmax);
  return cudaGetLastError();
}

// Calls go(stats_tag, sample_tag, cfg_tag) with std::integral_constant tags of p's variant (the
// confidence's statistics, T > 0, CFG; cfg_tag is false unless `cfg` is set: the filtered kernel
// branches on CFG per position instead, one instance fewer of the largest kernel).
template <typename Go>
cudaError_t with_variant(const DenoiseParams& p, bool cfg, Go&& go) {
  using SNone = std::integral_constant<Stats, Stats::kNone>;
  using SBasic = std::integral_constant<Stats, Stats::kBasic>;
  using SEnt = std::integral_constant<Stats, Stats::kEntropy>;
  const auto with_cfg = [&](auto stats_tag, auto sample_tag) {
    return cfg ? go(stats_tag, sample_tag, std::true_type{})
               : go(stats_tag, sample_tag, std::false_type{});
  };
  const auto with_stats = [&](auto sample_tag) {
    switch (p.confidence) {
      case Confidence::kRandom:
        return with_cfg(SNone{}, sample_tag);
      case Confidence::kNegEntropy:
        return with_cfg(SEnt{}, sample_tag);
      default:
        return with_cfg(SBasic{}, sample_tag);
    }
  };
  return p.sample ? with_stats(std::true_type{}) : with_stats(std::false_type{});
}

}  // namespace denoise_detail

// How a call is laid out: splits of V per position (fast path, small B*L) and the workspace the
// caller must provide: pass-1 states [B*L, splits] (32 B each), then the zeroed part: sums
// [B*L, 2] (16 B) and split counters [B*L] (4 B). Never B*L*V.
struct DenoisePlan {
  bool filtered;
  int splits;
  size_t zeroed_offset;  // bytes: sums, then split counters (splits > 1), zeroed per call
  size_t zeroed_bytes;
  size_t workspace_bytes;  // 16-byte aligned
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
  if (plan.splits > 1) {
    plan.zeroed_offset = size_t(P) * plan.splits * sizeof(denoise_detail::RowState);
    const size_t per_position = sizeof(denoise_detail::Sums) + sizeof(unsigned);
    plan.zeroed_bytes = (size_t(P) * per_position + 15) / 16 * 16;
  }
  plan.workspace_bytes = plan.zeroed_offset + plan.zeroed_bytes;
  return plan;
}

namespace denoise_detail {

// The workspace pieces of a plan (splits > 1).
struct Workspace {
  RowState* partial;         // [B*L, splits]
  unsigned long long* sums;  // [B*L, 2]
  unsigned* split_count;     // [B*L]
};

inline Workspace carve(void* workspace, const DenoisePlan& plan, int64_t P) {
  unsigned char* w = static_cast<unsigned char*>(workspace);
  auto* sums = reinterpret_cast<unsigned long long*>(w + plan.zeroed_offset);
  return Workspace{reinterpret_cast<RowState*>(w), sums, reinterpret_cast<unsigned*>(sums + 2 * P)};
}

// Launches the kernels of p's variant: the filtered kernel; or the fast kernel (whole rows), or
// with V split the fast kernel (pass 1) then the sums kernel (pass 2, merge, finalize). The
// plan's zeroed part must be zero (the caller's cudaMemsetAsync). epi_smem: dynamic shared memory
// for the epilogue.
template <typename In, typename Epi>
cudaError_t launch_denoise(const Rows<In>& r, const DenoiseParams& p, const DenoisePlan& plan,
                           int64_t* x0, float* conf, void* workspace, const Epi& epi,
                           size_t epi_smem, cudaStream_t stream) {
  const int64_t P = r.B * r.L;
  const unsigned blocks = position_blocks(P);
  const Workspace ws = plan.splits > 1 ? carve(workspace, plan, P) : Workspace{};
  return with_variant(
      p, p.cfg && !plan.filtered, [&](auto stats_tag, auto sample_tag, auto cfg_tag) {
        constexpr Stats kS = decltype(stats_tag)::value;
        constexpr bool kSample = decltype(sample_tag)::value;
        constexpr bool kCfg = decltype(cfg_tag)::value;
        if (plan.filtered) {
          denoise_filtered_kernel<In, kS, kSample, Epi>
              <<<blocks, kFilterThreads, epi_smem, stream>>>(r, p, x0, conf, epi);
          return cudaGetLastError();
        }
        const dim3 grid(blocks, static_cast<unsigned>(plan.splits));
        const FastIO fio{nullptr, ws.partial, false};
        denoise_fast_kernel<In, kS, kSample, kCfg, Epi>
            <<<grid, kFastThreads, epi_smem, stream>>>(r, p, x0, conf, fio, plan.splits, epi);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess || plan.splits == 1) return err;
        const SumsIO sio{nullptr, ws.partial, nullptr, ws.sums, ws.split_count};
        denoise_sums_kernel<In, kS, kCfg, Epi>
            <<<grid, kFastThreads, epi_smem, stream>>>(r, p, x0, conf, sio, plan.splits, epi);
        return cudaGetLastError();
      });
}

}  // namespace denoise_detail

// x0 / conf of every position (x0 = x, conf = -inf where not denoised), and p.argmax when set.
// workspace: at least plan.workspace_bytes, 16-byte aligned (its zeroed part is zeroed here).
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
  const Rows<In> r{logits, stride_b, stride_l, x, suppress, n_suppress, B, L, static_cast<int>(V)};
  cudaError_t err = launch_argmax(r, p, nullptr, stream);
  if (err == cudaSuccess && plan.zeroed_bytes > 0)
    err = cudaMemsetAsync(static_cast<unsigned char*>(workspace) + plan.zeroed_offset, 0,
                          plan.zeroed_bytes, stream);
  if (err != cudaSuccess) return err;
  return launch_denoise(r, p, plan, x0, conf, workspace, NoEpilogue{}, 0, stream);
}

}  // namespace dllm::cuda
