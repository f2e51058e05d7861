// dllm/block_attention.h — the arguments of block_attention (masked attention of a denoising
// step over a paged prefix + the block and suffix), shared by the CPU kernel
// (dllm/cpu/block_attention.h) and the CUDA launcher (dllm/cuda/block_attention.cuh);
// dllm_kernels/reference/block_attention.py is the specification.
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
#pragma once

#include <cstdint>

#include "dllm/common.h"

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
  // Keys and values j0 ... j0 + n - 1 of row b, KV head h (CPU kernels): the same pointers as
  // key() / value(), with one division for the run instead of two per key.
  void key_value_rows(int64_t b, int64_t j0, int64_t n, int64_t h, int32_t cache_len,
                      const T** kp, const T** vp) const {
    int64_t i = 0, j = j0;
    if (j < cache_len) {
      int64_t idx = j / page_size, slot = j - idx * page_size;
      int64_t page = page_of(b, j);
      for (; i < n && j < cache_len; ++i, ++j) {
        kp[i] = k_cache + page * kc_stride_page + slot * kc_stride_slot + h * kc_stride_head;
        vp[i] = v_cache + page * vc_stride_page + slot * vc_stride_slot + h * vc_stride_head;
        if (++slot == page_size && j + 1 < cache_len) {  // next page (never past the table)
          slot = 0;
          page = page_of(b, ++idx * page_size);
        }
      }
    }
    for (; i < n; ++i, ++j) {
      kp[i] = k + b * k_stride_b + (j - cache_len) * k_stride_l + h * k_stride_h;
      vp[i] = v + b * v_stride_b + (j - cache_len) * v_stride_l + h * v_stride_h;
    }
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

}  // namespace dllm
