// dllm/cuda/cache_gather.cuh — CUDA launcher of cache_gather (pages -> contiguous
// [B, max_len, H, D], zero padded).
// Mapping, napkin math and the shared row copy: dllm/cuda/paged_cache.cuh.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "dllm/cuda/paged_cache.cuh"
#include "dllm/paged_cache.h"

namespace dllm::cuda {

template <typename V, typename E>
__global__ void cache_gather_kernel(PagedCacheView<const E> k_cache,    // [num_pages, page_size, H, D]
                                    PagedCacheView<const E> v_cache,    // [num_pages, page_size, H, D]
                                    View2D<const int32_t> block_table,  // [B, max_pages]
                                    const int32_t* kv_lens, int64_t kv_lens_stride,  // [B]
                                    E* k_out, E* v_out,                 // [B, max_len, H, D]
                                    int64_t B, int64_t max_len, int64_t num_pages,
                                    int64_t max_pages, int64_t page_size, int H, int nvec, int D) {
  using cache_detail::Rows;
  const int64_t row = static_cast<int64_t>(H) * D;
  for (int64_t t = blockIdx.x; t < B * max_len; t += gridDim.x) {
    const int64_t b = t / max_len, i = t % max_len;
    const int64_t len = min(static_cast<int64_t>(kv_lens[b * kv_lens_stride]), max_pages * page_size);
    const E* sk = nullptr;
    const E* sv = nullptr;
    if (i < len) {
      const int64_t page = block_table(b, i / page_size), off = i % page_size;
      if (page >= 0 && page < num_pages) {  // checked by the caller; never read out of bounds
        sk = k_cache.row(page, off, 0);
        sv = v_cache.row(page, off, 0);
      }
    }
    cache_detail::copy_rows<V, E>(Rows<E>{k_out + t * row, D, 1}, Rows<E>{v_out + t * row, D, 1},
                                  Rows<const E>{sk, k_cache.stride_head, 1},
                                  Rows<const E>{sv, v_cache.stride_head, 1}, H, nvec);
  }
}

// k_out[b, i] = k_cache[block_table[b, i / page_size], i % page_size] for i < kv_lens[b], zeros
// for kv_lens[b] <= i < max_len (same for v).
template <typename E>
cudaError_t cache_gather(PagedCacheView<const E> k_cache,    // [num_pages, page_size, H, D]
                         PagedCacheView<const E> v_cache,    // [num_pages, page_size, H, D]
                         View2D<const int32_t> block_table,  // [B, max_pages]
                         const int32_t* kv_lens, int64_t kv_lens_stride,  // [B]
                         E* k_out, E* v_out,                 // [B, max_len, H, D] contiguous
                         int64_t B, int64_t max_len, int64_t num_pages, int64_t max_pages,
                         int64_t page_size, int64_t H, int64_t D, cudaStream_t stream) {
  if (B == 0 || max_len == 0 || H == 0 || D == 0) return cudaSuccess;
  using namespace cache_detail;
  const bool vec = (D * static_cast<int64_t>(sizeof(E))) % 16 == 0 && aligned16(k_cache.data) &&
                   aligned16(v_cache.data) && aligned16(k_out) && aligned16(v_out) &&
                   strides16<E>({k_cache.stride_page, k_cache.stride_slot, k_cache.stride_head,
                                 v_cache.stride_page, v_cache.stride_slot, v_cache.stride_head});
  const int nvec = static_cast<int>(vec ? D * static_cast<int64_t>(sizeof(E)) / 16 : D);
  const unsigned threads = threads_for(2 * H * nvec), blocks = blocks_for(B * max_len);
  const int h = static_cast<int>(H), d = static_cast<int>(D);
  if (vec) {
    cache_gather_kernel<uint4, E><<<blocks, threads, 0, stream>>>(
        k_cache, v_cache, block_table, kv_lens, kv_lens_stride, k_out, v_out, B, max_len,
        num_pages, max_pages, page_size, h, nvec, d);
  } else {
    cache_gather_kernel<E, E><<<blocks, threads, 0, stream>>>(
        k_cache, v_cache, block_table, kv_lens, kv_lens_stride, k_out, v_out, B, max_len,
        num_pages, max_pages, page_size, h, nvec, d);
  }
  return cudaGetLastError();
}

}  // namespace dllm::cuda
