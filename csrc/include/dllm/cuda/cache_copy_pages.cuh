// dllm/cuda/cache_copy_pages.cuh — CUDA launcher of cache_copy_pages_ (page -> page,
// copy-on-write).
// Mapping, napkin math and the shared row copy: dllm/cuda/paged_cache.cuh.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "dllm/cuda/paged_cache.cuh"
#include "dllm/paged_cache.h"

namespace dllm::cuda {

template <typename V, typename E>
__global__ void cache_copy_pages_kernel(PagedCacheView<E> k_cache,    // [num_pages, page_size, H, D]
                                        PagedCacheView<E> v_cache,    // [num_pages, page_size, H, D]
                                        View2D<const int64_t> pairs,  // [n, 2] (src, dst)
                                        int64_t n, int64_t num_pages, int64_t page_size, int H,
                                        int nvec) {
  using cache_detail::Rows;
  for (int64_t u = blockIdx.x; u < n * page_size; u += gridDim.x) {
    const int64_t p = u / page_size, s = u % page_size;
    const int64_t src = pairs(p, 0), dst = pairs(p, 1);
    if (src < 0 || src >= num_pages || dst < 0 || dst >= num_pages) continue;  // checked by caller
    cache_detail::copy_rows<V, E>(Rows<E>{k_cache.row(dst, s, 0), k_cache.stride_head, 1},
                                  Rows<E>{v_cache.row(dst, s, 0), v_cache.stride_head, 1},
                                  Rows<const E>{k_cache.row(src, s, 0), k_cache.stride_head, 1},
                                  Rows<const E>{v_cache.row(src, s, 0), v_cache.stride_head, 1},
                                  H, nvec);
  }
}

// Page pairs[i][0] -> page pairs[i][1] in both caches. dsts distinct and never a src (checked by
// the caller), so the copies are independent and run in parallel, one block per (pair, slot).
template <typename E>
cudaError_t cache_copy_pages(PagedCacheView<E> k_cache,    // [num_pages, page_size, H, D]
                             PagedCacheView<E> v_cache,    // [num_pages, page_size, H, D]
                             View2D<const int64_t> pairs,  // [n, 2] (src, dst) page ids
                             int64_t n, int64_t num_pages, int64_t page_size, int64_t H, int64_t D,
                             cudaStream_t stream) {
  if (n == 0 || H == 0 || D == 0) return cudaSuccess;
  using namespace cache_detail;
  const bool vec = (D * static_cast<int64_t>(sizeof(E))) % 16 == 0 && aligned16(k_cache.data) &&
                   aligned16(v_cache.data) &&
                   strides16<E>({k_cache.stride_page, k_cache.stride_slot, k_cache.stride_head,
                                 v_cache.stride_page, v_cache.stride_slot, v_cache.stride_head});
  const int nvec = static_cast<int>(vec ? D * static_cast<int64_t>(sizeof(E)) / 16 : D);
  const unsigned threads = threads_for(2 * H * nvec), blocks = blocks_for(n * page_size);
  if (vec) {
    cache_copy_pages_kernel<uint4, E><<<blocks, threads, 0, stream>>>(
        k_cache, v_cache, pairs, n, num_pages, page_size, static_cast<int>(H), nvec);
  } else {
    cache_copy_pages_kernel<E, E><<<blocks, threads, 0, stream>>>(
        k_cache, v_cache, pairs, n, num_pages, page_size, static_cast<int>(H), nvec);
  }
  return cudaGetLastError();
}

}  // namespace dllm::cuda
