// dllm/block_attention.h — masked attention of a denoising step over a paged prefix (+ the block
// and suffix): arguments shared by the CPU kernel (below) and the CUDA launcher
// (block_attention.cuh).
//
// Keys of row b, in order: the first cache_lens[b] tokens of the paged cache (positions 0 ...),
// then the first kv_lens[b] tokens of the contiguous k / v (positions cache_lens[b] ...). The query
// i of row b sits at position q_start[b] + i. mask kFull: every key; kBlockCausal: key position t
// is visible iff t / block_size <= p / block_size. Because key positions increase along the key
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
// CPU kernel: one work unit = (b, kv head, tile of up to kRows query rows), where the rows are the
// GQA group's query heads x queries, so each K/V row loaded (and converted to fp32) serves the
// whole group. Keys stream in tiles of kKeys; scores, an online softmax (running max and sum) and
// the P.V accumulation are fp32.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dllm/common.h"
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
    const int64_t p = static_cast<int64_t>(q_start[b] < 0 ? 0 : q_start[b]) + i;
    const int64_t limit = (p / block_size + 1) * block_size;
    return limit < total ? limit : total;
  }
};

namespace cpu {

constexpr int64_t kAttnRows = 32;  // query rows (group heads x queries) per work unit
constexpr int64_t kAttnKeys = 64;  // keys per tile

DLLM_CPU_CLONES inline float attn_dot(const float* a, const float* b, int64_t D) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // 8 independent sums: vectorises without -ffast-math
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[d + j] * b[d + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; d < D; ++d) s += a[d] * b[d];
  return s;
}

DLLM_CPU_CLONES inline void attn_axpy(float* y, float a, const float* x, int64_t D) {
  for (int64_t d = 0; d < D; ++d) y[d] += a * x[d];
}

DLLM_CPU_CLONES inline void attn_scale(float* y, float a, int64_t D) {
  for (int64_t d = 0; d < D; ++d) y[d] *= a;
}

template <typename T>
inline void load_row(float* dst, const T* src, int64_t D) {
  for (int64_t d = 0; d < D; ++d) dst[d] = to_float(src[d]);
}

// Rows [row0, row1) of the (b, kv head) unit; row r is query i = r / group of head
// h = kv_head * group + r % group; row1 - row0 <= kAttnRows. scratch: attn_scratch_floats(D)
// floats, 8-byte aligned. store(const float* out_row, b, i, h) writes one output row.
template <typename T, typename StoreOut>
void block_attention_unit(const BlockAttentionArgs<T>& a, int64_t b, int64_t kv_head,
                          int64_t row0, int64_t row1, float* scratch, StoreOut&& store) {
  const int64_t D = a.D, group = a.Hq / a.Hkv, R = row1 - row0;
  float* qf = scratch;                         // [R, D] scaled queries
  float* kf = qf + kAttnRows * D;              // [kAttnKeys, D]
  float* vf = kf + kAttnKeys * D;              // [kAttnKeys, D]
  float* acc = vf + kAttnKeys * D;             // [R, D]
  float* s = acc + kAttnRows * D;              // [kAttnKeys] scores of one row
  float* m = s + kAttnKeys;                    // [R] running max
  float* l = m + kAttnRows;                    // [R] running sum
  int64_t* vis = reinterpret_cast<int64_t*>(l + kAttnRows);  // [R] visible keys (fits: 2 floats each)
  const int32_t cache_len = a.cache_len(b);
  const int32_t kv_len = a.kv_len(b);
  const int64_t total = int64_t{cache_len} + kv_len;
  int64_t max_vis = 0;
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = row0 + r, i = row / group, h = kv_head * group + row % group;
    load_row(qf + r * D, a.q + b * a.q_stride_b + i * a.q_stride_l + h * a.q_stride_h, D);
    attn_scale(qf + r * D, a.scale, D);
    std::fill(acc + r * D, acc + (r + 1) * D, 0.0f);
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.0f;
    vis[r] = a.visible(b, i, total);
    max_vis = std::max(max_vis, vis[r]);
  }
  for (int64_t j0 = 0; j0 < max_vis; j0 += kAttnKeys) {  // key tiles past every row's mask: skipped
    const int64_t nk = std::min(kAttnKeys, max_vis - j0);
    for (int64_t j = 0; j < nk; ++j) {
      load_row(kf + j * D, a.key(b, j0 + j, kv_head, cache_len), D);
      load_row(vf + j * D, a.value(b, j0 + j, kv_head, cache_len), D);
    }
    for (int64_t r = 0; r < R; ++r) {
      const int64_t n = std::min(nk, vis[r] - j0);
      if (n <= 0) continue;
      float tile_max = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        s[j] = attn_dot(qf + r * D, kf + j * D, D);
        tile_max = std::max(tile_max, s[j]);
      }
      const float m_new = std::max(m[r], tile_max);
      if (m_new == -std::numeric_limits<float>::infinity()) continue;  // scores all -inf so far
      const float corr = std::exp(m[r] - m_new);  // exp(-inf) = 0 on the first tile
      attn_scale(acc + r * D, corr, D);
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        const float p = std::exp(s[j] - m_new);
        sum += p;
        attn_axpy(acc + r * D, p, vf + j * D, D);
      }
      l[r] = l[r] * corr + sum;
      m[r] = m_new;
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = row0 + r, i = row / group, h = kv_head * group + row % group;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // a query that sees no key: zeros
    attn_scale(acc + r * D, inv, D);
    store(acc + r * D, b, i, h);
    if (a.lse != nullptr)
      a.lse[(b * a.Hq + h) * a.Lq + i] =
          l[r] > 0.0f ? m[r] + std::log(l[r]) : -std::numeric_limits<float>::infinity();
  }
}

inline int64_t attn_scratch_floats(int64_t D) {
  return (kAttnRows + 2 * kAttnKeys) * D + kAttnRows * (D + 3) + kAttnKeys + kAttnRows;
}

}  // namespace cpu
}  // namespace dllm
