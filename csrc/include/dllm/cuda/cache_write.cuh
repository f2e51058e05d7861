// dllm/cuda/cache_write.cuh — CUDA launcher of cache_write_ (tokens -> cache slots).
// Mapping, napkin math and the shared row copy: dllm/cuda/paged_cache.cuh.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "dllm/cuda/paged_cache.cuh"
#include "dllm/paged_cache.h"

namespace dllm::cuda {

template <typename V, typename E>
__global__ void cache_write_kernel(PagedCacheView<E> k_cache,           // [num_pages, page_size, H, D]
                                   PagedCacheView<E> v_cache,           // [num_pages, page_size, H, D]
                                   TokenView<const E> k,                // [n0, n1, H, D]
                                   TokenView<const E> v,                // [n0, n1, H, D]
                                   View2D<const int64_t> slot_mapping,  // [n0, n1]
                                   int64_t N, int64_t page_size, int64_t capacity, int H, int nvec) {
  using cache_detail::Rows;
  for (int64_t t = blockIdx.x; t < N; t += gridDim.x) {
    const int64_t slot = slot_mapping(t / k.n1, t % k.n1);
    if (slot < 0 || slot >= capacity) continue;  // padding (or unchecked out of range): skip
    const int64_t page = slot / page_size, off = slot % page_size;
    cache_detail::copy_rows<V, E>(Rows<E>{k_cache.row(page, off, 0), k_cache.stride_head, 1},
                                  Rows<E>{v_cache.row(page, off, 0), v_cache.stride_head, 1},
                                  Rows<const E>{k.row(t, 0), k.stride_head, k.stride_dim},
                                  Rows<const E>{v.row(t, 0), v.stride_head, v.stride_dim}, H, nvec);
  }
}

// Writes token t of k / v into slot slot_mapping[t] of k_cache / v_cache; slots < 0 or
// >= capacity (= num_pages * page_size) are skipped. Slots must be distinct (a repeated slot ends
// up an undefined mix of its tokens).
template <typename E>
cudaError_t cache_write(PagedCacheView<E> k_cache,           // [num_pages, page_size, H, D]
                        PagedCacheView<E> v_cache,           // [num_pages, page_size, H, D]
                        TokenView<const E> k,                // [n0, n1, H, D], any strides
                        TokenView<const E> v,                // [n0, n1, H, D], any strides
                        View2D<const int64_t> slot_mapping,  // [n0, n1]
                        int64_t N, int64_t page_size, int64_t capacity, int64_t H, int64_t D,
                        cudaStream_t stream) {
  if (N == 0 || H == 0 || D == 0) return cudaSuccess;
  using namespace cache_detail;
  const bool vec = (D * static_cast<int64_t>(sizeof(E))) % 16 == 0 && k.stride_dim == 1 &&
                   v.stride_dim == 1 && aligned16(k_cache.data) && aligned16(v_cache.data) &&
                   aligned16(k.data) && aligned16(v.data) &&
                   strides16<E>({k_cache.stride_page, k_cache.stride_slot, k_cache.stride_head,
                                 v_cache.stride_page, v_cache.stride_slot, v_cache.stride_head,
                                 k.stride0, k.stride1, k.stride_head, v.stride0, v.stride1,
                                 v.stride_head});
  const int nvec = static_cast<int>(vec ? D * static_cast<int64_t>(sizeof(E)) / 16 : D);
  const unsigned threads = threads_for(2 * H * nvec), blocks = blocks_for(N);
  if (vec) {
    cache_write_kernel<uint4, E><<<blocks, threads, 0, stream>>>(
        k_cache, v_cache, k, v, slot_mapping, N, page_size, capacity, static_cast<int>(H), nvec);
  } else {
    cache_write_kernel<E, E><<<blocks, threads, 0, stream>>>(
        k_cache, v_cache, k, v, slot_mapping, N, page_size, capacity, static_cast<int>(H), nvec);
  }
  return cudaGetLastError();
}

}  // namespace dllm::cuda
