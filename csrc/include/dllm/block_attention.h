// dllm/block_attention.h — masked attention of a denoising step over a paged prefix (+ the block
// and suffix): arguments shared by the CPU kernel (below) and the CUDA launcher
// (block_attention.cuh).
//
// Keys of row b, in order: the first cache_lens[b] tokens of the paged cache (positions 0 ...),
// then the first kv_lens[b] tokens of the contiguous k / v (positions cache_lens[b] ...). The query
// i of row b sits at position q_start[b] + i. mask kFull: every key; kBlockCausal: key position t
// is visible iff t / block_size <= p / block_size, and a query at p < 0 (left padding: q_start may
// be negative) sees no key. Because key positions increase along the key
// order, each query sees a prefix of the keys: the first min(total, (p / bs + 1) * bs) of them,
// which is what lets the kernels stop at the first fully masked key tile.
//
// Napkin math (step shapes; bytes dominate): B rows, N = cache_len + kv_len keys, Hq / Hkv heads,
// D head_dim, e element bytes. FLOPs = 4 * B * Hq * Lq * N * D; bytes >= 2 * B * N * Hkv * D * e
// (K and V read once per KV head: the GQA group's query heads share each load).
// LLaDA-8B step (B = 1, Lq = 32, Hq = Hkv = 32, D = 128, N = 4096, bf16): 2.1 GFLOP and 67 MB of
// K/V -> ~22 us at 3 TB/s on an H100 versus ~3 us of tensor-core time: KV-bound, so the floor is
// the copy bandwidth. On this project's 2-core CPU (fp32 K/V: 134 MB) the same step is compute
// bound: ~2.1 GFLOP at ~30-60 GFLOP/s (AVX2 FMA, 2 cores) -> 35-70 ms.
//
// CPU kernel: one work unit = (b, kv head, tile of up to kAttnRows query rows), where the rows are
// the GQA group's query heads x queries, so each K/V row loaded (and converted to fp32) serves the
// whole group. Keys stream in tiles of kAttnKeys (K transposed on load); scores Q.K^T and P.V are
// register-blocked micro-GEMMs (AVX-512: 8 x 32 / 8 x 16 blocks; AVX2: 4 x 16; a portable loop
// otherwise, chosen at run time), the online softmax (running max and sum) uses a branch-free
// exp; everything fp32.
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
#endif

#include "dllm/common.h"
#include "dllm/cpu_math.h"
#include "dllm/sampling.h"

namespace dllm {

enum class AttnMask : int { kFull = 0, kBlockCausal = 1 };

// Every pointer / stride of one block_attention call (strides in elements; head_dim contiguous
// everywhere). T: float, bf16_t or f16_t.
template <typename T>
struct BlockAttentionArgs {
  const T* q;                          // [B, Lq, Hq, D]
  int64_t q_stride_b, q_stride_l, q_stride_h;
  const T* k;                          // [B, Lk, Hkv, D] or nullptr (no contiguous part)
  const T* v;                          // [B, Lk, Hkv, D]
  int64_t k_stride_b, k_stride_l, k_stride_h;
  int64_t v_stride_b, v_stride_l, v_stride_h;
  const int32_t* kv_lens;              // [B] contiguous: valid tokens of k / v
  const T* k_cache;                    // [num_pages, page_size, Hkv, D] or nullptr (no cache)
  const T* v_cache;                    // [num_pages, page_size, Hkv, D]
  int64_t kc_stride_page, kc_stride_slot, kc_stride_head;
  int64_t vc_stride_page, vc_stride_slot, vc_stride_head;
  const int32_t* block_table;          // [B, max_pages] contiguous
  int64_t num_pages, max_pages, page_size;
  const int32_t* cache_lens;           // [B] contiguous: cached tokens per row
  const int32_t* q_start;              // [B] contiguous: position of each row's first query
  T* out;                              // [B, Lq, Hq, D]
  int64_t o_stride_b, o_stride_l, o_stride_h;
  float* lse;                          // [B, Hq, Lq] contiguous, natural log; nullptr: not wanted
  int64_t B, Lq, Lk, Hq, Hkv, D;
  AttnMask mask;
  int64_t block_size;                  // kBlockCausal only (>= 1)
  float scale;                         // softmax scale (D^-0.5 by default)

  // Row b's cached tokens and contiguous tokens. The torch glue checks lengths and page ids
  // (unless the caller opts out for plans it built itself); the kernels still clamp them, so a
  // bad value never reads outside the tensors.
  DLLM_HOST_DEVICE int32_t cache_len(int64_t b) const {
    if (k_cache == nullptr) return 0;
    const int64_t n = cache_lens[b];
    return static_cast<int32_t>(n < 0 ? 0 : (n > max_pages * page_size ? max_pages * page_size : n));
  }
  DLLM_HOST_DEVICE int32_t kv_len(int64_t b) const {
    if (k == nullptr) return 0;
    const int64_t n = kv_lens[b];
    return static_cast<int32_t>(n < 0 ? 0 : (n > Lk ? Lk : n));
  }
  DLLM_HOST_DEVICE int64_t page_of(int64_t b, int64_t j) const {
    const int64_t page = block_table[b * max_pages + j / page_size];
    return page < 0 ? 0 : (page >= num_pages ? num_pages - 1 : page);
  }
  // Key j of row b (0 <= j < cache_len(b) + kv_len(b)) for KV head h.
  DLLM_HOST_DEVICE const T* key(int64_t b, int64_t j, int64_t h, int32_t cache_len) const {
    if (j < cache_len) {
      const int64_t page = page_of(b, j);
      return k_cache + page * kc_stride_page + (j % page_size) * kc_stride_slot + h * kc_stride_head;
    }
    return k + b * k_stride_b + (j - cache_len) * k_stride_l + h * k_stride_h;
  }
  DLLM_HOST_DEVICE const T* value(int64_t b, int64_t j, int64_t h, int32_t cache_len) const {
    if (j < cache_len) {
      const int64_t page = page_of(b, j);
      return v_cache + page * vc_stride_page + (j % page_size) * vc_stride_slot + h * vc_stride_head;
    }
    return v + b * v_stride_b + (j - cache_len) * v_stride_l + h * v_stride_h;
  }
  // Keys query i of row b sees: a prefix [0, visible) of its cache_len + kv_len keys.
  DLLM_HOST_DEVICE int64_t visible(int64_t b, int64_t i, int64_t total) const {
    if (mask == AttnMask::kFull) return total;
    const int64_t p = static_cast<int64_t>(q_start[b]) + i;
    if (p < 0) return 0;  // a query before position 0 (left padding) sees nothing
    const int64_t limit = (p / block_size + 1) * block_size;
    return limit < total ? limit : total;
  }
};

namespace cpu {

constexpr int64_t kAttnRows = 32;  // query rows (group heads x queries) per work unit, multiple of 4
constexpr int64_t kAttnKeys = 64;  // keys per tile, multiple of 16


// s[r, j] = q[r, :] . kt[:, j] and o[r, :] += p[r, :nk] . v[:nk, :] as 4 x 16 register blocks.
// q: [R4, D] (R4 a multiple of 4), kt: [D, kAttnKeys], s / p: [R4, kAttnKeys], v: [kAttnKeys, D],
// o: [R4, D], D a multiple of 16. The portable loops are the definition; on x86-64 with AVX2 + FMA
// (checked at run time) the same blocks run as 8 ymm accumulators, 2 FMAs per 16 B loaded.
inline void attn_scores_portable(const float* q, const float* kt, float* s, int64_t R4,
                                 int64_t nk16, int64_t D) {
  for (int64_t r0 = 0; r0 < R4; r0 += 4)
    for (int64_t j0 = 0; j0 < nk16; j0 += 16) {
      float acc[4][16] = {};
      for (int64_t d = 0; d < D; ++d)
        for (int rr = 0; rr < 4; ++rr)
          for (int jj = 0; jj < 16; ++jj) acc[rr][jj] += q[(r0 + rr) * D + d] * kt[d * kAttnKeys + j0 + jj];
      for (int rr = 0; rr < 4; ++rr)
        for (int jj = 0; jj < 16; ++jj) s[(r0 + rr) * kAttnKeys + j0 + jj] = acc[rr][jj];
    }
}

inline void attn_pv_portable(const float* p, const float* v, float* o, int64_t R4, int64_t nk,
                             int64_t D) {
  for (int64_t r0 = 0; r0 < R4; r0 += 4)
    for (int64_t d0 = 0; d0 < D; d0 += 16)
      for (int64_t j = 0; j < nk; ++j)
        for (int rr = 0; rr < 4; ++rr)
          for (int dd = 0; dd < 16; ++dd)
            o[(r0 + rr) * D + d0 + dd] += p[(r0 + rr) * kAttnKeys + j] * v[j * D + d0 + dd];
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#define DLLM_ATTN_AVX2 1
__attribute__((target("avx2,fma"))) inline void attn_scores_avx2(const float* q, const float* kt,
                                                                  float* s, int64_t R4,
                                                                  int64_t nk16, int64_t D) {
  for (int64_t r0 = 0; r0 < R4; r0 += 4) {
    const float* q0 = q + r0 * D;
    for (int64_t j0 = 0; j0 < nk16; j0 += 16) {
      __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
             c30 = c00, c31 = c00;
      for (int64_t d = 0; d < D; ++d) {
        const __m256 k0 = _mm256_loadu_ps(kt + d * kAttnKeys + j0);
        const __m256 k1 = _mm256_loadu_ps(kt + d * kAttnKeys + j0 + 8);
        __m256 b = _mm256_broadcast_ss(q0 + d);
        c00 = _mm256_fmadd_ps(b, k0, c00), c01 = _mm256_fmadd_ps(b, k1, c01);
        b = _mm256_broadcast_ss(q0 + D + d);
        c10 = _mm256_fmadd_ps(b, k0, c10), c11 = _mm256_fmadd_ps(b, k1, c11);
        b = _mm256_broadcast_ss(q0 + 2 * D + d);
        c20 = _mm256_fmadd_ps(b, k0, c20), c21 = _mm256_fmadd_ps(b, k1, c21);
        b = _mm256_broadcast_ss(q0 + 3 * D + d);
        c30 = _mm256_fmadd_ps(b, k0, c30), c31 = _mm256_fmadd_ps(b, k1, c31);
      }
      float* out = s + r0 * kAttnKeys + j0;
      _mm256_storeu_ps(out, c00), _mm256_storeu_ps(out + 8, c01);
      _mm256_storeu_ps(out + kAttnKeys, c10), _mm256_storeu_ps(out + kAttnKeys + 8, c11);
      _mm256_storeu_ps(out + 2 * kAttnKeys, c20), _mm256_storeu_ps(out + 2 * kAttnKeys + 8, c21);
      _mm256_storeu_ps(out + 3 * kAttnKeys, c30), _mm256_storeu_ps(out + 3 * kAttnKeys + 8, c31);
    }
  }
}

__attribute__((target("avx2,fma"))) inline void attn_pv_avx2(const float* p, const float* v,
                                                              float* o, int64_t R4, int64_t nk,
                                                              int64_t D) {
  for (int64_t r0 = 0; r0 < R4; r0 += 4) {
    const float* p0 = p + r0 * kAttnKeys;
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      float* o0 = o + r0 * D + d0;
      __m256 c00 = _mm256_loadu_ps(o0), c01 = _mm256_loadu_ps(o0 + 8);
      __m256 c10 = _mm256_loadu_ps(o0 + D), c11 = _mm256_loadu_ps(o0 + D + 8);
      __m256 c20 = _mm256_loadu_ps(o0 + 2 * D), c21 = _mm256_loadu_ps(o0 + 2 * D + 8);
      __m256 c30 = _mm256_loadu_ps(o0 + 3 * D), c31 = _mm256_loadu_ps(o0 + 3 * D + 8);
      for (int64_t j = 0; j < nk; ++j) {
        const __m256 v0 = _mm256_loadu_ps(v + j * D + d0), v1 = _mm256_loadu_ps(v + j * D + d0 + 8);
        __m256 b = _mm256_broadcast_ss(p0 + j);
        c00 = _mm256_fmadd_ps(b, v0, c00), c01 = _mm256_fmadd_ps(b, v1, c01);
        b = _mm256_broadcast_ss(p0 + kAttnKeys + j);
        c10 = _mm256_fmadd_ps(b, v0, c10), c11 = _mm256_fmadd_ps(b, v1, c11);
        b = _mm256_broadcast_ss(p0 + 2 * kAttnKeys + j);
        c20 = _mm256_fmadd_ps(b, v0, c20), c21 = _mm256_fmadd_ps(b, v1, c21);
        b = _mm256_broadcast_ss(p0 + 3 * kAttnKeys + j);
        c30 = _mm256_fmadd_ps(b, v0, c30), c31 = _mm256_fmadd_ps(b, v1, c31);
      }
      _mm256_storeu_ps(o0, c00), _mm256_storeu_ps(o0 + 8, c01);
      _mm256_storeu_ps(o0 + D, c10), _mm256_storeu_ps(o0 + D + 8, c11);
      _mm256_storeu_ps(o0 + 2 * D, c20), _mm256_storeu_ps(o0 + 2 * D + 8, c21);
      _mm256_storeu_ps(o0 + 3 * D, c30), _mm256_storeu_ps(o0 + 3 * D + 8, c31);
    }
  }
}

// AVX-512: scores as 8 rows x 32 keys (16 zmm accumulators), P.V as 8 rows x 16 columns.
__attribute__((target("avx512f"))) inline void attn_scores_avx512(const float* q, const float* kt,
                                                                   float* s, int64_t R8,
                                                                   int64_t nk16, int64_t D) {
  for (int64_t r0 = 0; r0 < R8; r0 += 8) {
    const float* q0 = q + r0 * D;
    for (int64_t j0 = 0; j0 < nk16; j0 += 32) {
      const bool two = j0 + 16 < nk16;  // a second 16-key vector in this block
      __m512 c[8][2];
      for (int rr = 0; rr < 8; ++rr) c[rr][0] = c[rr][1] = _mm512_setzero_ps();
      for (int64_t d = 0; d < D; ++d) {
        const __m512 k0 = _mm512_loadu_ps(kt + d * kAttnKeys + j0);
        const __m512 k1 = two ? _mm512_loadu_ps(kt + d * kAttnKeys + j0 + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int rr = 0; rr < 8; ++rr) {
          const __m512 b = _mm512_set1_ps(q0[rr * D + d]);
          c[rr][0] = _mm512_fmadd_ps(b, k0, c[rr][0]);
          c[rr][1] = _mm512_fmadd_ps(b, k1, c[rr][1]);
        }
      }
      for (int rr = 0; rr < 8; ++rr) {
        _mm512_storeu_ps(s + (r0 + rr) * kAttnKeys + j0, c[rr][0]);
        if (two) _mm512_storeu_ps(s + (r0 + rr) * kAttnKeys + j0 + 16, c[rr][1]);
      }
    }
  }
}

__attribute__((target("avx512f"))) inline void attn_pv_avx512(const float* p, const float* v,
                                                               float* o, int64_t R8, int64_t nk,
                                                               int64_t D) {
  for (int64_t r0 = 0; r0 < R8; r0 += 8) {
    const float* p0 = p + r0 * kAttnKeys;
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      __m512 c[8];
      for (int rr = 0; rr < 8; ++rr) c[rr] = _mm512_loadu_ps(o + (r0 + rr) * D + d0);
      for (int64_t j = 0; j < nk; ++j) {
        const __m512 vv = _mm512_loadu_ps(v + j * D + d0);
#pragma GCC unroll 8
        for (int rr = 0; rr < 8; ++rr)
          c[rr] = _mm512_fmadd_ps(_mm512_set1_ps(p0[rr * kAttnKeys + j]), vv, c[rr]);
      }
      for (int rr = 0; rr < 8; ++rr) _mm512_storeu_ps(o + (r0 + rr) * D + d0, c[rr]);
    }
  }
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

// dst[0:D] = float(src[0:D]) (D a multiple of 8); bf16 / fp16 8 at a time with AVX2 / F16C.
inline void load_row_portable(float* dst, const float* src, int64_t D) {
  std::memcpy(dst, src, static_cast<size_t>(D) * sizeof(float));
}
template <typename T>
inline void load_row_portable(float* dst, const T* src, int64_t D) {
  for (int64_t d = 0; d < D; ++d) dst[d] = to_float(src[d]);
}
#ifdef DLLM_ATTN_AVX2
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
#endif
template <typename T>
inline void load_row(float* dst, const T* src, int64_t D) {
#ifdef DLLM_ATTN_AVX2
  if constexpr (!std::is_same_v<T, float>) {
    if (attn_has_avx2()) return load_row_avx2(dst, src, D);
  }
#endif
  load_row_portable(dst, src, D);
}

inline void attn_scores(const float* q, const float* kt, float* s, int64_t R4, int64_t nk16,
                        int64_t D) {
#ifdef DLLM_ATTN_AVX2
  if (R4 % 8 == 0 && attn_has_avx512()) return attn_scores_avx512(q, kt, s, R4, nk16, D);
  if (attn_has_avx2()) return attn_scores_avx2(q, kt, s, R4, nk16, D);
#endif
  attn_scores_portable(q, kt, s, R4, nk16, D);
}

inline void attn_pv(const float* p, const float* v, float* o, int64_t R4, int64_t nk, int64_t D) {
#ifdef DLLM_ATTN_AVX2
  if (R4 % 8 == 0 && attn_has_avx512()) return attn_pv_avx512(p, v, o, R4, nk, D);
  if (attn_has_avx2()) return attn_pv_avx2(p, v, o, R4, nk, D);
#endif
  attn_pv_portable(p, v, o, R4, nk, D);
}

// Online-softmax update of one row over one tile: s[0:n] scores in, probabilities out (s[n:nk16]
// zeroed); rescales the row's accumulator. Returns nothing; m / l hold the running max and sum.
DLLM_CPU_CLONES inline void attn_softmax_row(float* s, int64_t n, int64_t nk16, float* o, int64_t D,
                                             float& m, float& l) {
  if (n <= 0) {
    std::fill(s, s + nk16, 0.0f);
    return;
  }
  float tile_max = s[0];
  for (int64_t j = 1; j < n; ++j) tile_max = std::max(tile_max, s[j]);
  const float m_new = std::max(m, tile_max);
  const float corr = exp_nonpos(m - m_new);  // m = -inf on the first tile: 0
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = exp_nonpos(s[j] - m_new);
    sum += s[j];
  }
  std::fill(s + n, s + nk16, 0.0f);
  if (corr != 1.0f)
    for (int64_t d = 0; d < D; ++d) o[d] *= corr;
  l = l * corr + sum;
  m = m_new;
}

// Rows [row0, row1) of the (b, kv head) unit, processed in sub-tiles of kAttnRows rows that share
// every K/V tile loaded; row r is query i = r / group of head h = kv_head * group + r % group.
// scratch: attn_scratch_floats(D, row1 - row0) floats. store(const float* out_row, b, i, h)
// writes one output row.
template <typename T, typename StoreOut>
void block_attention_unit(const BlockAttentionArgs<T>& a, int64_t b, int64_t kv_head,
                          int64_t row0, int64_t row1, float* scratch, StoreOut&& store) {
  const int64_t D = a.D, group = a.Hq / a.Hkv, R = row1 - row0;
  const int64_t R4 = (R + 7) / 8 * 8;      // rows padded for the 4- and 8-row register blocks
  float* qf = scratch;                      // [R4, D] scaled queries (rows >= R zero)
  float* o = qf + R4 * D;                   // [R4, D] unnormalised output
  float* kt = o + R4 * D;                   // [D, kAttnKeys] keys, transposed
  float* vf = kt + D * kAttnKeys;           // [kAttnKeys, D]
  float* s = vf + kAttnKeys * D;            // [kAttnRows, kAttnKeys] scores -> probabilities
  float* m = s + kAttnRows * kAttnKeys;     // [R4] running max
  float* l = m + R4;                        // [R4] running sum
  float* vis = l + R4;                      // [R4] keys each row sees (a prefix; exact below 2^24)
  const int32_t cache_len = a.cache_len(b);
  const int64_t total = int64_t{cache_len} + a.kv_len(b);
  int64_t max_vis = 0;
  std::fill(qf, qf + 2 * R4 * D, 0.0f);     // qf and o
  for (int64_t r = 0; r < R4; ++r) {
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
    vis[r] = 0.0f;
  }
  float qrow[256];
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = row0 + r, i = row / group, h = kv_head * group + row % group;
    load_row(qrow, a.q + b * a.q_stride_b + i * a.q_stride_l + h * a.q_stride_h, D);
    for (int64_t d = 0; d < D; ++d) qf[r * D + d] = qrow[d] * a.scale;
    const int64_t n = a.visible(b, i, total);
    vis[r] = static_cast<float>(n);
    max_vis = std::max(max_vis, n);
  }
  for (int64_t j0 = 0; j0 < max_vis; j0 += kAttnKeys) {  // key tiles past every row's mask: skipped
    const int64_t nk = std::min(kAttnKeys, max_vis - j0), nk16 = (nk + 15) / 16 * 16;
    for (int64_t j = 0; j < nk; ++j) {
      load_row(vf + j * D, a.key(b, j0 + j, kv_head, cache_len), D);  // vf as a staging row
      for (int64_t d = 0; d < D; ++d) kt[d * kAttnKeys + j] = vf[j * D + d];
    }
    for (int64_t j = nk; j < nk16; ++j)
      for (int64_t d = 0; d < D; ++d) kt[d * kAttnKeys + j] = 0.0f;
    for (int64_t j = 0; j < nk; ++j) load_row(vf + j * D, a.value(b, j0 + j, kv_head, cache_len), D);
    for (int64_t t0 = 0; t0 < R4; t0 += kAttnRows) {      // sub-tiles share the K/V tile
      const int64_t tr = std::min(kAttnRows, R4 - t0);
      attn_scores(qf + t0 * D, kt, s, tr, nk16, D);
      for (int64_t r = 0; r < tr; ++r) {
        const int64_t n = std::min(nk, static_cast<int64_t>(vis[t0 + r]) - j0);
        attn_softmax_row(s + r * kAttnKeys, n, nk16, o + (t0 + r) * D, D, m[t0 + r], l[t0 + r]);
      }
      attn_pv(s, vf, o + t0 * D, tr, nk, D);
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = row0 + r, i = row / group, h = kv_head * group + row % group;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // a query that sees no key: zeros
    for (int64_t d = 0; d < D; ++d) o[r * D + d] *= inv;
    store(o + r * D, b, i, h);
    if (a.lse != nullptr)
      a.lse[(b * a.Hq + h) * a.Lq + i] =
          l[r] > 0.0f ? m[r] + std::log(l[r]) : -std::numeric_limits<float>::infinity();
  }
}

inline int64_t attn_scratch_floats(int64_t D, int64_t rows) {
  const int64_t R4 = (rows + 7) / 8 * 8;
  return 2 * R4 * D + 2 * D * kAttnKeys + kAttnRows * kAttnKeys + 3 * R4;
}

}  // namespace cpu
}  // namespace dllm
