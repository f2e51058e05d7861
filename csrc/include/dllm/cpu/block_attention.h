// dllm/cpu/block_attention.h — CPU kernel of block_attention. Arguments, semantics and napkin
// math: dllm/block_attention.h.
//
// CPU kernel: one work unit = (b, kv head, a run of query rows), where the rows are the GQA group's
// query heads x queries, so each K/V row loaded (and converted to fp32) serves the whole group.
// Keys stream in tiles of kAttnKeys, used as stored (no transpose); the scores are computed
// transposed, S^T = K Q^T (Q^T built once per unit), so the online softmax runs across rows with
// no horizontal reductions, and P.V reads P^T directly. Both products are register-blocked
// micro-GEMMs (AVX-512 8 x 32 blocks, AVX2 4 x 16; a portable loop otherwise, chosen at run
// time), the exp is branch-free; everything fp32. bf16 on a CPU with AMX uses the tile kernel of
// block_attention_amx.h instead (same units, same results up to rounding P to bf16).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#include <immintrin.h>
// GCC 12 flags the undefined pass-through operand inside its own AVX-512 intrinsics (false
// positive); silenced for this header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "dllm/block_attention.h"
#include "dllm/common.h"
#include "dllm/cpu/math.h"
#include "dllm/float16.h"

namespace dllm::cpu {

constexpr int64_t kAttnRows = 32;  // query rows per sub-tile (multiple of 16)
constexpr int64_t kAttnKeys = 64;  // keys per tile (multiple of 8)

// The two products of a tile, in "transposed scores" form so that K and V are used as stored and
// the softmax runs across rows (contiguous, vectorisable, no horizontal reductions):
//   st[j, r]  = k[j, :] . qt[:, r]          k: [nk, D], qt: [D, ldq] (Q^T), st: [nk, kAttnRows]
//   o[r, :]   = o[r, :] * corr[r] + sum_j st[j, r] * v[j, :]    v: [nk, D], o: [tr, D]
// (corr: the online softmax's rescaling of each row's accumulator, applied as o is loaded)
// tr (rows) is a multiple of 16, D a multiple of 16 (32 for the AVX-512 P.V block). The portable
// loops are the definition; AVX-512 / AVX2 + FMA versions are picked at run time.
inline void attn_scores_portable(const float* k, const float* qt, int64_t ldq, float* st,
                                 int64_t nk, int64_t tr, int64_t D) {
  for (int64_t j = 0; j < nk; ++j) {
    float* out = st + j * kAttnRows;
    for (int64_t r = 0; r < tr; ++r) out[r] = 0.0f;
    for (int64_t d = 0; d < D; ++d)
      for (int64_t r = 0; r < tr; ++r) out[r] += k[j * D + d] * qt[d * ldq + r];
  }
}

inline void attn_pv_portable(const float* pt, const float* v, float* o, int64_t nk, int64_t tr,
                             int64_t D, const float* corr) {
  for (int64_t r = 0; r < tr; ++r) {
    for (int64_t d = 0; d < D; ++d) o[r * D + d] *= corr[r];
    for (int64_t j = 0; j < nk; ++j)
      for (int64_t d = 0; d < D; ++d) o[r * D + d] += pt[j * kAttnRows + r] * v[j * D + d];
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#define DLLM_ATTN_X86 1
// AVX-512: scores as 8 keys x 32 rows (16 zmm accumulators; 2 loads + 8 broadcasts per 16 FMAs),
// P.V as 8 rows x 32 columns (the same ratio).
__attribute__((target("avx512f"))) inline void attn_scores_avx512(const float* k, const float* qt,
                                                                   int64_t ldq, float* st,
                                                                   int64_t nk, int64_t tr,
                                                                   int64_t D) {
  for (int64_t r0 = 0; r0 < tr; r0 += 32) {
    const bool two = r0 + 16 < tr;
    for (int64_t j0 = 0; j0 < nk; j0 += 8) {
      const int64_t nj = std::min<int64_t>(8, nk - j0);
      __m512 c[8][2];
      for (int jj = 0; jj < 8; ++jj) c[jj][0] = c[jj][1] = _mm512_setzero_ps();
      const float* kr = k + j0 * D;
      for (int64_t d = 0; d < D; ++d) {
        const __m512 q0 = _mm512_loadu_ps(qt + d * ldq + r0);
        const __m512 q1 = two ? _mm512_loadu_ps(qt + d * ldq + r0 + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int jj = 0; jj < 8; ++jj) {
          const __m512 b = _mm512_set1_ps(kr[(jj < nj ? jj : 0) * D + d]);
          c[jj][0] = _mm512_fmadd_ps(b, q0, c[jj][0]);
          c[jj][1] = _mm512_fmadd_ps(b, q1, c[jj][1]);
        }
      }
      for (int jj = 0; jj < nj; ++jj) {
        _mm512_storeu_ps(st + (j0 + jj) * kAttnRows + r0, c[jj][0]);
        if (two) _mm512_storeu_ps(st + (j0 + jj) * kAttnRows + r0 + 16, c[jj][1]);
      }
    }
  }
}

__attribute__((target("avx512f"))) inline void attn_pv_avx512(const float* pt, const float* v,
                                                               float* o, int64_t nk, int64_t tr,
                                                               int64_t D, const float* corr) {
  for (int64_t r0 = 0; r0 < tr; r0 += 8) {
    for (int64_t d0 = 0; d0 < D; d0 += 32) {
      __m512 c[8][2];
      for (int rr = 0; rr < 8; ++rr) {
        const __m512 f = _mm512_set1_ps(corr[r0 + rr]);
        c[rr][0] = _mm512_mul_ps(_mm512_loadu_ps(o + (r0 + rr) * D + d0), f);
        c[rr][1] = _mm512_mul_ps(_mm512_loadu_ps(o + (r0 + rr) * D + d0 + 16), f);
      }
      for (int64_t j = 0; j < nk; ++j) {
        const __m512 v0 = _mm512_loadu_ps(v + j * D + d0), v1 = _mm512_loadu_ps(v + j * D + d0 + 16);
        const float* p = pt + j * kAttnRows + r0;
#pragma GCC unroll 8
        for (int rr = 0; rr < 8; ++rr) {
          const __m512 b = _mm512_set1_ps(p[rr]);
          c[rr][0] = _mm512_fmadd_ps(b, v0, c[rr][0]);
          c[rr][1] = _mm512_fmadd_ps(b, v1, c[rr][1]);
        }
      }
      for (int rr = 0; rr < 8; ++rr) {
        _mm512_storeu_ps(o + (r0 + rr) * D + d0, c[rr][0]);
        _mm512_storeu_ps(o + (r0 + rr) * D + d0 + 16, c[rr][1]);
      }
    }
  }
}

// AVX2: scores as 4 keys x 16 rows, P.V as 4 rows x 16 columns (8 ymm accumulators each).
__attribute__((target("avx2,fma"))) inline void attn_scores_avx2(const float* k, const float* qt,
                                                                  int64_t ldq, float* st,
                                                                  int64_t nk, int64_t tr,
                                                                  int64_t D) {
  for (int64_t r0 = 0; r0 < tr; r0 += 16) {
    for (int64_t j0 = 0; j0 < nk; j0 += 4) {
      const int64_t nj = std::min<int64_t>(4, nk - j0);
      __m256 c[4][2];
      for (int jj = 0; jj < 4; ++jj) c[jj][0] = c[jj][1] = _mm256_setzero_ps();
      const float* kr = k + j0 * D;
      for (int64_t d = 0; d < D; ++d) {
        const __m256 q0 = _mm256_loadu_ps(qt + d * ldq + r0), q1 = _mm256_loadu_ps(qt + d * ldq + r0 + 8);
#pragma GCC unroll 4
        for (int jj = 0; jj < 4; ++jj) {
          const __m256 b = _mm256_broadcast_ss(kr + (jj < nj ? jj : 0) * D + d);
          c[jj][0] = _mm256_fmadd_ps(b, q0, c[jj][0]);
          c[jj][1] = _mm256_fmadd_ps(b, q1, c[jj][1]);
        }
      }
      for (int jj = 0; jj < nj; ++jj) {
        _mm256_storeu_ps(st + (j0 + jj) * kAttnRows + r0, c[jj][0]);
        _mm256_storeu_ps(st + (j0 + jj) * kAttnRows + r0 + 8, c[jj][1]);
      }
    }
  }
}

__attribute__((target("avx2,fma"))) inline void attn_pv_avx2(const float* pt, const float* v,
                                                              float* o, int64_t nk, int64_t tr,
                                                              int64_t D, const float* corr) {
  for (int64_t r0 = 0; r0 < tr; r0 += 4) {
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      __m256 c[4][2];
      for (int rr = 0; rr < 4; ++rr) {
        const __m256 f = _mm256_set1_ps(corr[r0 + rr]);
        c[rr][0] = _mm256_mul_ps(_mm256_loadu_ps(o + (r0 + rr) * D + d0), f);
        c[rr][1] = _mm256_mul_ps(_mm256_loadu_ps(o + (r0 + rr) * D + d0 + 8), f);
      }
      for (int64_t j = 0; j < nk; ++j) {
        const __m256 v0 = _mm256_loadu_ps(v + j * D + d0), v1 = _mm256_loadu_ps(v + j * D + d0 + 8);
        const float* p = pt + j * kAttnRows + r0;
#pragma GCC unroll 4
        for (int rr = 0; rr < 4; ++rr) {
          const __m256 b = _mm256_broadcast_ss(p + rr);
          c[rr][0] = _mm256_fmadd_ps(b, v0, c[rr][0]);
          c[rr][1] = _mm256_fmadd_ps(b, v1, c[rr][1]);
        }
      }
      for (int rr = 0; rr < 4; ++rr) {
        _mm256_storeu_ps(o + (r0 + rr) * D + d0, c[rr][0]);
        _mm256_storeu_ps(o + (r0 + rr) * D + d0 + 8, c[rr][1]);
      }
    }
  }
}

// 16 x 16 transpose of 32-bit words (fp32 Q rows here; bf16 pairs of Q and of P in the AMX
// kernel): word j of r[i] (or of rows[i]) -> dst[j * dst_ld + i].
__attribute__((target("avx512f"))) inline void transpose16x16_avx512(const __m512i* r,
                                                                     uint32_t* dst, int64_t dst_ld) {
  __m512i a[16], b[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of words, within 128-bit lanes
    a[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    a[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // groups of four rows: b[i + c] lane k = column 4k + c
    b[i + 0] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
    b[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
    b[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
    b[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
  }
  for (int c = 0; c < 4; ++c) {  // gather lane k of the four row groups: column 4k + c
    const __m512i e0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x88);   // lanes 0, 2
    const __m512i e1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xDD);   // lanes 1, 3
    const __m512i f0 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x88);
    const __m512i f1 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xDD);
    _mm512_storeu_si512(dst + (0 + c) * dst_ld, _mm512_shuffle_i32x4(e0, f0, 0x88));
    _mm512_storeu_si512(dst + (8 + c) * dst_ld, _mm512_shuffle_i32x4(e0, f0, 0xDD));
    _mm512_storeu_si512(dst + (4 + c) * dst_ld, _mm512_shuffle_i32x4(e1, f1, 0x88));
    _mm512_storeu_si512(dst + (12 + c) * dst_ld, _mm512_shuffle_i32x4(e1, f1, 0xDD));
  }
}

__attribute__((target("avx512f"))) inline void transpose16x16_avx512(const uint32_t* const* rows,
                                                                     uint32_t* dst, int64_t dst_ld) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(rows[i]);
  transpose16x16_avx512(r, dst, dst_ld);
}

__attribute__((target("avx2,fma,f16c"))) inline void load_row_avx2(float* dst, const bf16_t* src,
                                                                    int64_t D) {
  for (int64_t d = 0; d < D; d += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + d));
    _mm256_storeu_ps(dst + d, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
  }
}
__attribute__((target("avx2,fma,f16c"))) inline void load_row_avx2(float* dst, const f16_t* src,
                                                                    int64_t D) {
  for (int64_t d = 0; d < D; d += 8)
    _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + d))));
}

inline bool attn_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
inline bool attn_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has;
}
#endif

inline void attn_scores(const float* k, const float* qt, int64_t ldq, float* st, int64_t nk,
                        int64_t tr, int64_t D) {
#ifdef DLLM_ATTN_X86
  if (attn_has_avx512()) return attn_scores_avx512(k, qt, ldq, st, nk, tr, D);
  if (attn_has_avx2()) return attn_scores_avx2(k, qt, ldq, st, nk, tr, D);
#endif
  attn_scores_portable(k, qt, ldq, st, nk, tr, D);
}

inline void attn_pv(const float* pt, const float* v, float* o, int64_t nk, int64_t tr, int64_t D,
                    const float* corr) {
#ifdef DLLM_ATTN_X86
  if (D % 32 == 0 && attn_has_avx512()) return attn_pv_avx512(pt, v, o, nk, tr, D, corr);
  if (attn_has_avx2()) return attn_pv_avx2(pt, v, o, nk, tr, D, corr);
#endif
  attn_pv_portable(pt, v, o, nk, tr, D, corr);
}

// dst[0:D] = float(src[0:D]) (D a multiple of 8).
inline void load_row(float* dst, const float* src, int64_t D) {
  std::memcpy(dst, src, static_cast<size_t>(D) * sizeof(float));
}
template <typename T>
inline void load_row(float* dst, const T* src, int64_t D) {
#ifdef DLLM_ATTN_X86
  if (attn_has_avx2()) return load_row_avx2(dst, src, D);
#endif
  for (int64_t d = 0; d < D; ++d) dst[d] = to_float(src[d]);
}

// dst[j * dst_ld + i] = rows[i][j] for i, j < 16.
inline void transpose16x16(const float* const* rows, float* dst, int64_t dst_ld) {
#ifdef DLLM_ATTN_X86
  if (attn_has_avx512())
    return transpose16x16_avx512(reinterpret_cast<const uint32_t* const*>(rows),
                                 reinterpret_cast<uint32_t*>(dst), dst_ld);
#endif
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) dst[j * dst_ld + i] = rows[i][j];
}

// Online-softmax update of a sub-tile's rows over one key tile, vectorised across rows. st:
// [nk, kAttnRows] scores in, probabilities out; n[r]: keys row r sees in this tile (<= nk);
// m / l: running max and sum per row; corr: the factor each row's accumulator must be scaled by.
DLLM_CPU_CLONES inline void attn_softmax_tile_generic(float* st, const float* n, int64_t nk,
                                                      int64_t tr, float* m, float* l,
                                                      float* corr) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  float mx[kAttnRows];
  for (int64_t r = 0; r < tr; ++r) mx[r] = kNegInf;
  for (int64_t j = 0; j < nk; ++j) {
    float* row = st + j * kAttnRows;
    const float jf = static_cast<float>(j);
    for (int64_t r = 0; r < tr; ++r) {
      row[r] = jf < n[r] ? row[r] : kNegInf;  // masked keys
      mx[r] = std::max(mx[r], row[r]);
    }
  }
  float base[kAttnRows], sum[kAttnRows];
  for (int64_t r = 0; r < tr; ++r) {
    const float m_new = std::max(m[r], mx[r]);
    base[r] = m_new == kNegInf ? 0.0f : m_new;  // no key seen yet: every p is exp(-inf) = 0
    corr[r] = exp_nonpos(m[r] - base[r]);       // m = -inf: 0 (the accumulator is still zero)
    m[r] = m_new;
    sum[r] = 0.0f;
  }
  for (int64_t j = 0; j < nk; ++j) {
    float* row = st + j * kAttnRows;
    for (int64_t r = 0; r < tr; ++r) {
      row[r] = exp_nonpos(row[r] - base[r]);
      sum[r] += row[r];
    }
  }
  for (int64_t r = 0; r < tr; ++r) l[r] = l[r] * corr[r] + sum[r];
}

#ifdef DLLM_ATTN_X86
// exp(x) for x <= 0 on 16 lanes: exp_nonpos (cpu_math.h) written with AVX-512.
__attribute__((target("avx512f"))) inline __m512 exp_nonpos16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-80.0f);
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ);  // also -inf
  x = _mm512_max_ps(x, lo);
  const __m512 shifter = _mm512_set1_ps(12582912.0f);
  const __m512 n =
      _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter), shifter);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  const __m512i bits =
      _mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(_mm512_cvttps_epi32(n), 23));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~tiny), _mm512_castsi512_ps(bits));
}

// attn_softmax_tile_generic with AVX-512, 16 rows at a time (tr a multiple of 16); a tile every
// row sees whole skips the masking pass. The scores are first multiplied by scale (the AMX kernel's
// are unscaled products of bf16 Q and K; the fp32 kernel's Q is prescaled: scale 1).
__attribute__((target("avx512f"))) inline void attn_softmax_tile_avx512(
    float* st, const float* n, int64_t nk, int64_t tr, float* m, float* l, float* corr,
    float scale = 1.0f) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 sc = _mm512_set1_ps(scale);
  const bool scaled = scale != 1.0f;
  for (int64_t r0 = 0; r0 < tr; r0 += 16) {
    const __m512 nv = _mm512_loadu_ps(n + r0);
    const bool whole = _mm512_reduce_min_ps(nv) >= static_cast<float>(nk);
    __m512 mx = neg_inf;
    for (int64_t j = 0; j < nk; ++j) {
      float* row = st + j * kAttnRows + r0;
      __m512 x = _mm512_loadu_ps(row);
      if (scaled) x = _mm512_mul_ps(x, sc);
      if (!whole)  // masked keys
        x = _mm512_mask_mov_ps(neg_inf,
                               _mm512_cmp_ps_mask(_mm512_set1_ps(static_cast<float>(j)), nv,
                                                  _CMP_LT_OQ),
                               x);
      if (scaled || !whole) _mm512_storeu_ps(row, x);
      mx = _mm512_max_ps(x, mx);
    }
    const __m512 m_old = _mm512_loadu_ps(m + r0), m_new = _mm512_max_ps(mx, m_old);
    // no key seen yet: every p is exp(-inf) = 0 with base 0; corr = 0 (the accumulator is zero)
    const __m512 base =
        _mm512_mask_mov_ps(m_new, _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_EQ_OQ), _mm512_setzero_ps());
    const __m512 c = exp_nonpos16(_mm512_sub_ps(m_old, base));
    _mm512_storeu_ps(corr + r0, c);
    _mm512_storeu_ps(m + r0, m_new);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; ++j) {
      float* row = st + j * kAttnRows + r0;
      const __m512 p = exp_nonpos16(_mm512_sub_ps(_mm512_loadu_ps(row), base));
      _mm512_storeu_ps(row, p);
      sum = _mm512_add_ps(sum, p);
    }
    _mm512_storeu_ps(l + r0, _mm512_fmadd_ps(_mm512_loadu_ps(l + r0), c, sum));
  }
}
#endif

// Online-softmax update of a sub-tile's rows over one key tile (see attn_softmax_tile_generic).
inline void attn_softmax_tile(float* st, const float* n, int64_t nk, int64_t tr, float* m,
                              float* l, float* corr) {
#ifdef DLLM_ATTN_X86
  if (tr % 16 == 0 && attn_has_avx512()) return attn_softmax_tile_avx512(st, n, nk, tr, m, l, corr);
#endif
  attn_softmax_tile_generic(st, n, nk, tr, m, l, corr);
}

// The K / V rows of a key tile (n rows of D elements each) prefetched into L2, one 64-byte line at
// a time (both CPU kernels).
template <typename T>
inline void attn_prefetch_rows(const T* const* kp, const T* const* vp, int64_t n, int64_t D) {
  constexpr int64_t kLine = 64 / sizeof(T);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t off = 0; off < D; off += kLine) {
      __builtin_prefetch(kp[j] + off, 0, 2);
      __builtin_prefetch(vp[j] + off, 0, 2);
    }
}

// dst[0:D] = bf16(src[0:D] * scale), rounded to nearest even, NaN -> 0x7FC0 (c10::BFloat16's
// conversion bit for bit).
inline void attn_store_row_portable(uint16_t* dst, const float* src, float scale, int64_t D) {
  for (int64_t d = 0; d < D; ++d) {
    const float x = src[d] * scale;
    uint32_t u;
    std::memcpy(&u, &x, sizeof(u));
    dst[d] = x != x ? uint16_t{0x7FC0} : static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
}
#ifdef DLLM_ATTN_X86
__attribute__((target("avx512f"))) inline void attn_store_row_avx512(uint16_t* dst,
                                                                     const float* src,
                                                                     float scale, int64_t D) {
  const __m512 sc = _mm512_set1_ps(scale);
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7FFF);
  const __m512i qnan = _mm512_set1_epi32(0x7FC0);
  for (int64_t d = 0; d < D; d += 16) {
    const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(src + d), sc);
    const __m512i u = _mm512_castps_si512(x);
    __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, bias),
                                 _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
    r = _mm512_mask_mov_epi32(_mm512_srli_epi32(r, 16), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), qnan);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + d), _mm512_cvtepi32_epi16(r));
  }
}
#endif
inline void attn_store_row(uint16_t* dst, const float* src, float scale, int64_t D) {
#ifdef DLLM_ATTN_X86
  if (D % 16 == 0 && attn_has_avx512()) return attn_store_row_avx512(dst, src, scale, D);
#endif
  attn_store_row_portable(dst, src, scale, D);
}

// The end of a unit (both CPU kernels): rows r < R of o [R, D], divided by their softmax sums l
// (a row that saw no key: zeros, lse -inf), go to store(o_row, 1 / l, b, i, h), which writes
// o_row * (1 / l); lse = m + log l where requested.
template <typename T, typename StoreOut>
void attn_finish_rows(const BlockAttentionArgs<T>& a, int64_t b, int64_t kv_head, int64_t row0,
                      int64_t R, const float* o, const float* m, const float* l, StoreOut&& store) {
  const int64_t D = a.D, group = a.Hq / a.Hkv;
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = row0 + r, i = row / group, h = kv_head * group + row % group;
    store(o + r * D, l[r] > 0.0f ? 1.0f / l[r] : 0.0f, b, i, h);
    if (a.lse != nullptr)
      a.lse[(b * a.Hq + h) * a.Lq + i] =
          l[r] > 0.0f ? m[r] + std::log(l[r]) : -std::numeric_limits<float>::infinity();
  }
}

// Rows [row0, row1) of the (b, kv head) unit, processed in sub-tiles of kAttnRows rows that share
// every K/V tile loaded; row r is query i = r / group of head h = kv_head * group + r % group.
// scratch: attn_scratch_floats(D, row1 - row0) floats. store(const float* row, float scale, b, i,
// h) writes row * scale as output row (b, i, h).
template <typename T, typename StoreOut>
void block_attention_unit(const BlockAttentionArgs<T>& a, int64_t b, int64_t kv_head,
                          int64_t row0, int64_t row1, float* scratch, StoreOut&& store) {
  const int64_t D = a.D, group = a.Hq / a.Hkv, R = row1 - row0;
  const int64_t R16 = (R + 15) / 16 * 16;   // rows padded for the register blocks
  const int64_t R32 = (R + 31) / 32 * 32;
  // Q^T per sub-tile ([R32 / 32][D][kAttnRows]): each sub-tile's block is contiguous with a short
  // row stride. (One [D, R] matrix would put the d-rows R floats apart: 4 KB for R = 1024, every
  // row in the same L1 set.)
  float* qt = scratch;                       // [R32 / 32][D][kAttnRows] scaled queries (pad 0)
  float* o = qt + D * R32;                   // [R16, D] unnormalised output
  float* kf = o + R16 * D;                   // [kAttnKeys, D] K rows (fp32)
  float* vf = kf + kAttnKeys * D;            // [kAttnKeys, D] V rows (fp32)
  float* st = vf + kAttnKeys * D;            // [kAttnKeys, kAttnRows] scores -> probabilities
  float* m = st + kAttnKeys * kAttnRows;     // [R16] running max
  float* l = m + R16;                        // [R16] running sum
  float* corr = l + R16;                     // [kAttnRows]
  float* nvis = corr + kAttnRows;            // [kAttnRows]
  const int32_t cache_len = a.cache_len(b);
  const int64_t total = int64_t{cache_len} + a.kv_len(b);
  int64_t max_vis = 0;
  auto visible = [&](int64_t r) {  // keys row r of the unit sees (a prefix); padding rows: none
    return r < R ? a.visible(b, (row0 + r) / group, total) : int64_t{0};
  };
  // Q: rows staged in o (fp32, scaled, padding rows 0), then transposed 16 x 16 into qt.
  for (int64_t r = 0; r < R16; ++r) {
    float* dst = o + r * D;
    if (r < R) {
      const int64_t row = row0 + r, i = row / group, h = kv_head * group + row % group;
      load_row(dst, a.q + b * a.q_stride_b + i * a.q_stride_l + h * a.q_stride_h, D);
      for (int64_t d = 0; d < D; ++d) dst[d] *= a.scale;
      max_vis = std::max(max_vis, a.visible(b, i, total));
    } else {
      std::fill(dst, dst + D, 0.0f);
    }
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
  }
  for (int64_t r0 = 0; r0 < R16; r0 += 16) {
    const float* rows[16];
    for (int rr = 0; rr < 16; ++rr) rows[rr] = o + (r0 + rr) * D;
    float* dst = qt + (r0 / kAttnRows) * D * kAttnRows + r0 % kAttnRows;
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      transpose16x16(rows, dst + d0 * kAttnRows, kAttnRows);
      for (int rr = 0; rr < 16; ++rr) rows[rr] += 16;
    }
  }
  std::fill(o, o + R16 * D, 0.0f);
  // Row pointers of this key tile and the next. Rows of one KV head sit a whole token slot apart
  // (Hkv * D elements, often a 4 KB page or more): the hardware prefetchers do not follow them,
  // so the next tile's K / V rows are prefetched into L2, one per row of this tile copied (a
  // prefetch that misses holds a fill buffer: a burst of 2 * 64 * D / 16 of them stalls).
  const T* kp[2][kAttnKeys];
  const T* vp[2][kAttnKeys];
  int cur = 0;
  if (max_vis > 0)
    a.key_value_rows(b, 0, std::min(kAttnKeys, max_vis), kv_head, cache_len, kp[0], vp[0]);
  for (int64_t j0 = 0; j0 < max_vis; j0 += kAttnKeys, cur ^= 1) {  // later tiles: masked for all
    const int64_t nk = std::min(kAttnKeys, max_vis - j0);
    const int64_t nn = std::clamp<int64_t>(max_vis - j0 - kAttnKeys, 0, kAttnKeys);  // next tile
    if (nn > 0) a.key_value_rows(b, j0 + kAttnKeys, nn, kv_head, cache_len, kp[cur ^ 1], vp[cur ^ 1]);
    for (int64_t j = 0; j < nk; ++j) {
      if (j < nn) attn_prefetch_rows(kp[cur ^ 1] + j, vp[cur ^ 1] + j, 1, D);
      load_row(kf + j * D, kp[cur][j], D);
      load_row(vf + j * D, vp[cur][j], D);
    }
    for (int64_t t0 = 0; t0 < R16; t0 += kAttnRows) {    // sub-tiles share the K/V tile
      const int64_t tr = std::min(kAttnRows, R16 - t0);
      bool any = false;
      for (int64_t r = 0; r < tr; ++r) {
        nvis[r] = static_cast<float>(std::clamp<int64_t>(visible(t0 + r) - j0, 0, nk));  // exact
        any = any || nvis[r] > 0.0f;
      }
      if (!any) continue;                                  // no row of the sub-tile sees this tile
      attn_scores(kf, qt + t0 * D, kAttnRows, st, nk, tr, D);
      attn_softmax_tile(st, nvis, nk, tr, m + t0, l + t0, corr);
      attn_pv(st, vf, o + t0 * D, nk, tr, D, corr);
    }
  }
  attn_finish_rows(a, b, kv_head, row0, R, o, m, l, store);
}

inline int64_t attn_scratch_floats(int64_t D, int64_t rows) {
  const int64_t R16 = (rows + 15) / 16 * 16, R32 = (rows + 31) / 32 * 32;
  return D * R32 + D * R16 + 2 * kAttnKeys * D + kAttnKeys * kAttnRows + 3 * R16 + 2 * kAttnRows;
}

}  // namespace dllm::cpu

#include "dllm/cpu/block_attention_amx.h"  // bf16 on Intel AMX (x86 only)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#pragma GCC diagnostic pop
#endif
