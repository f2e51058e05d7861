// dllm/cache.h — paged KV cache copies on the CPU: write tokens into slots, gather a batch into a
// contiguous tensor, copy whole pages (copy-on-write). Shared views for the CUDA launchers too.
//
// Layout: the cache of one layer is k / v [num_pages, page_size, H_kv, D] (FlashInfer / vLLM "NHD"),
// head_dim contiguous, any page / slot / head strides (so k and v may be the two halves of one
// [num_pages, 2, page_size, H_kv, D] allocation). Token slot s lives at page s / page_size, offset
// s % page_size. Token sources are [n0, n1, H_kv, D] with arbitrary strides (n0 = 1 for [N, H, D]):
// k / v may be views of a fused qkv projection without a copy.
//
// The copies move bytes, never look at values: kernels are templated on the element's size only
// (uint16_t for bf16 / fp16, uint32_t for fp32), so the same code serves every dtype.
//
// Napkin math (per call, e = element bytes, N tokens, H heads, D head_dim):
//   cache_write_:      reads 2*N*H*D*e (k, v) + 8N (slots), writes 2*N*H*D*e.
//   cache_gather:      reads 2*sum(len)*H*D*e + the table, writes 2*B*max_len*H*D*e.
//   cache_copy_pages_: reads and writes 2*n*page_size*H*D*e.
// Example: N = 1024 tokens, H = 32, D = 128, bf16 -> 16.8 MB read + 16.8 MB written. On a CPU with
// ~10 GB/s of copy bandwidth per core that is ~3 ms on one core; each (token, head) row is one
// memcpy of D*e bytes (256 B here) and tokens are split across threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "dllm/common.h"

namespace dllm {

// One layer's cache, [num_pages, page_size, heads, head_dim], head_dim contiguous (strides in
// elements).
template <typename E>
struct PagedCacheView {
  E* data;
  int64_t stride_page, stride_slot, stride_head;

  DLLM_HOST_DEVICE E* row(int64_t page, int64_t slot, int64_t head) const {
    return data + page * stride_page + slot * stride_slot + head * stride_head;
  }
};

// Tokens [n0, n1, heads, head_dim] with arbitrary strides; token t is (t / n1, t % n1).
template <typename E>
struct TokenView {
  E* data;
  int64_t n1;
  int64_t stride0, stride1, stride_head, stride_dim;

  DLLM_HOST_DEVICE E* row(int64_t t, int64_t head) const {
    return data + (t / n1) * stride0 + (t % n1) * stride1 + head * stride_head;
  }
};

namespace cpu {

// dst[0:D] = src[0:D:src_stride] (dst contiguous).
template <typename E>
inline void copy_row(E* dst, const E* src, int64_t D, int64_t src_stride) {
  if (src_stride == 1 || D == 1) {
    std::memcpy(dst, src, static_cast<size_t>(D) * sizeof(E));
  } else {
    for (int64_t d = 0; d < D; ++d) dst[d] = src[d * src_stride];
  }
}

// Tokens [begin, end) of k / v into their slots. slot < 0 or >= capacity: skipped.
template <typename E>
void cache_write_tokens(PagedCacheView<E> k_cache,         // [num_pages, page_size, H, D]
                        PagedCacheView<E> v_cache,         // [num_pages, page_size, H, D]
                        TokenView<const E> k,              // [n0, n1, H, D]
                        TokenView<const E> v,              // [n0, n1, H, D]
                        View2D<const int64_t> slot_mapping,  // [n0, n1]
                        int64_t page_size, int64_t capacity, int64_t H, int64_t D,
                        int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; ++t) {
    const int64_t slot = slot_mapping(t / k.n1, t % k.n1);
    if (slot < 0 || slot >= capacity) continue;
    const int64_t page = slot / page_size, off = slot % page_size;
    for (int64_t h = 0; h < H; ++h) {
      copy_row(k_cache.row(page, off, h), k.row(t, h), D, k.stride_dim);
      copy_row(v_cache.row(page, off, h), v.row(t, h), D, v.stride_dim);
    }
  }
}

// Output tokens [begin, end) of the flat [B * max_len] gather: token t = (b, i) copies cache slot
// (block_table[b, i / page_size], i % page_size) when i < kv_lens[b], else writes zeros.
// Lengths beyond the table and page ids outside [0, num_pages) give zeros (like the CUDA kernel);
// the torch glue rejects them before calling.
template <typename E>
void cache_gather_tokens(PagedCacheView<const E> k_cache,    // [num_pages, page_size, H, D]
                         PagedCacheView<const E> v_cache,    // [num_pages, page_size, H, D]
                         View2D<const int32_t> block_table,  // [B, max_pages]
                         const int32_t* kv_lens, int64_t kv_lens_stride,  // [B]
                         E* k_out, E* v_out,                 // [B, max_len, H, D] contiguous
                         int64_t max_len, int64_t num_pages, int64_t max_pages, int64_t page_size,
                         int64_t H, int64_t D, int64_t begin, int64_t end) {
  const int64_t row = H * D;
  for (int64_t t = begin; t < end; ++t) {
    const int64_t b = t / max_len, i = t % max_len;
    E* ko = k_out + t * row;
    E* vo = v_out + t * row;
    const int64_t len = std::min<int64_t>(kv_lens[b * kv_lens_stride], max_pages * page_size);
    const int64_t page = i < len ? block_table(b, i / page_size) : -1, off = i % page_size;
    if (page < 0 || page >= num_pages) {
      std::memset(ko, 0, static_cast<size_t>(row) * sizeof(E));
      std::memset(vo, 0, static_cast<size_t>(row) * sizeof(E));
      continue;
    }
    for (int64_t h = 0; h < H; ++h) {
      std::memcpy(ko + h * D, k_cache.row(page, off, h), static_cast<size_t>(D) * sizeof(E));
      std::memcpy(vo + h * D, v_cache.row(page, off, h), static_cast<size_t>(D) * sizeof(E));
    }
  }
}

// Units [begin, end) of the flat [n * page_size] page copy: unit u copies slot u % page_size of
// page pairs[u / page_size][0] to the same slot of pairs[u / page_size][1], k and v.
// The caller has checked the ids (in range, dsts distinct and never a src); ids outside
// [0, num_pages) are skipped (like the CUDA kernel).
template <typename E>
void cache_copy_page_slots(PagedCacheView<E> k_cache,   // [num_pages, page_size, H, D]
                           PagedCacheView<E> v_cache,   // [num_pages, page_size, H, D]
                           View2D<const int64_t> pairs,  // [n, 2] (src, dst)
                           int64_t num_pages, int64_t page_size, int64_t H, int64_t D,
                           int64_t begin, int64_t end) {
  for (int64_t u = begin; u < end; ++u) {
    const int64_t p = u / page_size, s = u % page_size;
    const int64_t src = pairs(p, 0), dst = pairs(p, 1);
    if (src < 0 || src >= num_pages || dst < 0 || dst >= num_pages) continue;
    for (int64_t h = 0; h < H; ++h) {
      std::memcpy(k_cache.row(dst, s, h), k_cache.row(src, s, h), static_cast<size_t>(D) * sizeof(E));
      std::memcpy(v_cache.row(dst, s, h), v_cache.row(src, s, h), static_cast<size_t>(D) * sizeof(E));
    }
  }
}

}  // namespace cpu
}  // namespace dllm
