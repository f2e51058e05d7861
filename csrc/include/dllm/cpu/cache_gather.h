// dllm/cpu/cache_gather.h — CPU kernel of cache_gather: a batch of paged sequences into a
// contiguous, zero-padded tensor. Views and layout: dllm/paged_cache.h.
//
// Napkin math (e = element bytes, H heads, D head_dim): reads 2*sum(len)*H*D*e + the table,
// writes 2*B*max_len*H*D*e; one memcpy of D*e bytes per (token, head) row (see
// dllm/cpu/cache_write.h for the bandwidth figures).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "dllm/common.h"
#include "dllm/paged_cache.h"

namespace dllm::cpu {

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

}  // namespace dllm::cpu
