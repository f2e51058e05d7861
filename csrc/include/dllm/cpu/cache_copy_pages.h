// dllm/cpu/cache_copy_pages.h — CPU kernel of cache_copy_pages_: whole pages copied
// (copy-on-write). Views and layout: dllm/paged_cache.h.
//
// Napkin math (e = element bytes, n page pairs, H heads, D head_dim): reads and writes
// 2*n*page_size*H*D*e; one memcpy of D*e bytes per (slot, head) row.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "dllm/common.h"
#include "dllm/paged_cache.h"

namespace dllm::cpu {

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

}  // namespace dllm::cpu
