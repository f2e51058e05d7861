// dllm/cpu/denoise_step_simd.h — the vectorised CPU row kernel of denoise_step (x86-64 with GCC),
// AVX-512 (16 lanes) or AVX2 + FMA (8 lanes), chosen at run time; included by
// dllm/cpu/denoise_step.h, whose generic code stays the fallback (other CPUs, compilers, and
// DLLM_KERNELS_SIMD=generic).
//
// One pass over a position's V logits, straight from the input (fp32, or bf16 / fp16 widened in
// registers): no decoded copy. Per block of 4W tokens:
//   - the block's max of d (the confidence distribution's logits) against the running max m: a
//     block that raises it (~ln(V / 4W) times per row for i.i.d. logits) at T = 0 moves the
//     choice to the block's first index holding the new max;
//   - lane top-2 for margin;
//   - T > 0: Philox4x32-10 for W groups at once (the 4W words of the block), an integer-only upper
//     bound of each token's Gumbel draw, and the exact draw (dllm::gumbel_of_word, scalar, the
//     same bits as the reference and CUDA) only for tokens whose bound beats the best score so
//     far. Blocks whose largest logit + the largest possible draw cannot win skip the Philox.
// Then the confidence sums in a second pass with the row's max (exact_sums_range: exp(d - m) by the
// vector polynomial, rounded to integers, so any split of the row sums to the same bits).
// The choice (x0) is exact: ties go to the first index as in the generic code, the Gumbel scores
// are the generic code's bits. The confidence differs from the generic code only by the exp
// polynomial.
//
// Napkin math for [1, 32, 126464] fp32 at T = 0 (4M logits, 16 MB): the pass is ~8 vector ops per
// 8 logits (AVX2: load, sanitise, block max and the compares) and memory-bound: ~0.7 ms on one core
// of the 2026-12-06 EPYC VM (~24 GB/s). The sums pass is ~21 ops per 8 logits from L2 / L3 (load,
// sanitise, d - m and its clamp, 10 for exp, 6 to round and add the term) and compute-bound:
// ~1.1 ms more (the old one-pass float sums hid their ~13 ops under the memory time: 0.8 ms in
// all). AVX-512 halves the op count. T > 0 adds ~9 instructions per logit for Philox (10 rounds x
// ~18 ops per W groups), the transposes and the bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define DLLM_DENOISE_SIMD 1
#include <immintrin.h>
#endif

namespace dllm::cpu::simd {

enum Level : int { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// The best level this CPU supports (x86-64-v3: AVX2, FMA, F16C; x86-64-v4: AVX-512 F/BW/DQ/VL).
inline int cpu_level() {
#ifdef DLLM_DENOISE_SIMD
  static const int level = __builtin_cpu_supports("x86-64-v4")   ? kAvx512
                           : __builtin_cpu_supports("x86-64-v3") ? kAvx2
                                                                 : kGeneric;
  return level;
#else
  return kGeneric;
#endif
}

// The level the kernel uses: the CPU's, capped by DLLM_KERNELS_SIMD=generic|avx2|avx512 (read per
// call, so that tests can compare the paths in one process).
inline int level() {
  int cap = kAvx512;
  if (const char* env = std::getenv("DLLM_KERNELS_SIMD")) {
    if (std::strcmp(env, "generic") == 0)
      cap = kGeneric;
    else if (std::strcmp(env, "avx2") == 0)
      cap = kAvx2;
  }
  return std::min(cap, cpu_level());
}

inline const char* level_name(int level) {
  return level == kAvx512 ? "avx512" : level == kAvx2 ? "avx2" : "generic";
}

}  // namespace dllm::cpu::simd

#ifdef DLLM_DENOISE_SIMD

namespace dllm::cpu::simd {

// scaled + the Gumbel draw of w: the generic kernel's score bit for bit (baseline x86-64 code, no
// FMA contraction; see gumbel_add).
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
__attribute__((noinline)) inline float gumbel_score(float scaled, uint32_t w) {
  return scaled + gumbel_of_word(w);
}
#pragma GCC pop_options

}  // namespace dllm::cpu::simd

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define DLLM_SIMD_NS avx2
#define DLLM_SIMD_W 8
#include "dllm/cpu/denoise_step_simd_impl.h"
#undef DLLM_SIMD_NS
#undef DLLM_SIMD_W
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#define DLLM_SIMD_NS avx512
#define DLLM_SIMD_W 16
#include "dllm/cpu/denoise_step_simd_impl.h"
#undef DLLM_SIMD_NS
#undef DLLM_SIMD_W
#pragma GCC pop_options

#endif  // DLLM_DENOISE_SIMD

namespace dllm::cpu::simd {

// accumulate_range on the given level (generic: dllm::cpu::accumulate_range).
template <typename In>
void accumulate_range_level(int level, const In* row, int64_t v_begin, int64_t v_end,
                            const int64_t* suppress, int64_t n_suppress, const DenoiseParams& p,
                            int64_t b, int64_t l, bool filtered, Workspace& ws, RowState& st) {
#ifdef DLLM_DENOISE_SIMD
  if (level == kAvx512)
    return avx512::accumulate_range(row, v_begin, v_end, suppress, n_suppress, p, b, l, filtered,
                                    ws, st);
  if (level == kAvx2)
    return avx2::accumulate_range(row, v_begin, v_end, suppress, n_suppress, p, b, l, filtered, ws,
                                  st);
#endif
  (void)level;
  dllm::cpu::accumulate_range(row, v_begin, v_end, suppress, n_suppress, p, b, l, filtered, ws, st);
}

// accumulate_range_level, and with return_argmax (p.argmax) also z's argmax, interleaved piece by
// piece (see accumulate_zmax). v_begin: a multiple of kArgChunk (0 or a slice start).
template <typename In>
void accumulate_range_at(int level, const In* row, int64_t v_begin, int64_t v_end,
                         const int64_t* suppress, int64_t n_suppress, const DenoiseParams& p,
                         int64_t b, int64_t l, bool filtered, Workspace& ws, RowState& st) {
  if (p.argmax == nullptr)
    return accumulate_range_level(level, row, v_begin, v_end, suppress, n_suppress, p, b, l,
                                  filtered, ws, st);
  ws.am.resize(kArgChunk);
  for (int64_t v0 = v_begin; v0 < v_end; v0 += kArgChunk) {
    const int64_t v1 = std::min(v_end, v0 + kArgChunk);
    accumulate_range_level(level, row, v0, v1, suppress, n_suppress, p, b, l, filtered, ws, st);
    accumulate_zmax(row, v0, v1 - v0, suppress, n_suppress, ws, st);
  }
}

// exact_sums_range on the given level: one exp function for every element of the row.
template <typename In>
void exact_sums_at(int level, const In* row, int64_t v_begin, int64_t v_end,
                   const int64_t* suppress, int64_t n_suppress, const DenoiseParams& p,
                   bool filtered, Workspace& ws, float M, ExactSums& sums) {
#ifdef DLLM_DENOISE_SIMD
  if (level == kAvx512)
    return avx512::exact_sums_range(row, v_begin, v_end, suppress, n_suppress, p, filtered, ws, M,
                                    sums);
  if (level == kAvx2)
    return avx2::exact_sums_range(row, v_begin, v_end, suppress, n_suppress, p, filtered, ws, M,
                                  sums);
#endif
  (void)level;
  dllm::cpu::exact_sums_range(row, v_begin, v_end, suppress, n_suppress, p, filtered, ws, M, sums);
}

template <typename In>
void prepare_filtered_at(int level, const In* row, int64_t V, const int64_t* suppress,
                         int64_t n_suppress, const DenoiseParams& p, Workspace& ws,
                         const float* thr = nullptr) {
#ifdef DLLM_DENOISE_SIMD
  if (level == kAvx512) return avx512::prepare_filtered(row, V, suppress, n_suppress, p, ws, thr);
  if (level == kAvx2) return avx2::prepare_filtered(row, V, suppress, n_suppress, p, ws, thr);
#endif
  (void)level;
  dllm::cpu::prepare_filtered(row, V, suppress, n_suppress, p, ws, thr);
}

// top_p_histogram / top_p_members on the given level (tensor parallelism: the shards' pieces).
inline void top_p_histogram_at(int level, const float* vals, int64_t V, float m, double* hist) {
#ifdef DLLM_DENOISE_SIMD
  if (level == kAvx512) return avx512::top_p_histogram(vals, V, m, hist);
  if (level == kAvx2) return avx2::top_p_histogram(vals, V, m, hist);
#endif
  (void)level;
  dllm::cpu::top_p_histogram(vals, V, m, hist);
}

inline void top_p_members_at(int level, const float* vals, int64_t V, float m, int32_t b,
                             std::vector<float>& out) {
#ifdef DLLM_DENOISE_SIMD
  if (level == kAvx512) return avx512::top_p_members(vals, V, m, b, out);
  if (level == kAvx2) return avx2::top_p_members(vals, V, m, b, out);
#endif
  (void)level;
  dllm::cpu::top_p_members(vals, V, m, b, out);
}

}  // namespace dllm::cpu::simd
