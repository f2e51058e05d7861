// dllm/cache.cuh — CUDA launchers for the paged KV cache copies: cache_write (tokens -> slots),
// cache_gather (pages -> contiguous [B, max_len, H, D], zero padded), cache_copy_pages (page ->
// page, copy-on-write). Views and layout: dllm/cache.h.
//
// Napkin math: pure copies, so the floor is bytes / copy bandwidth. cache_write of N = 1024 tokens,
// H_kv = 32, D = 128, bf16 moves 16.8 MB in + 16.8 MB out: ~11 us at ~3 TB/s (H100 HBM3); N = 32
// tokens (one dLLM block) moves 1 MB, ~0.4 us, so there the ~3-5 us launch dominates and the
// kernel's job is to be a single launch with no host synchronisation.
//
// Mapping: one thread block per token (grid-stride over tokens), its threads split the token's
// 2 * H rows (k and v) of D elements into 16-byte vectors (uint4) when every row is 16-byte aligned
// and head_dim is contiguous in the source; otherwise element by element (any source strides).
// Each thread issues independent 16-byte loads and stores, so a block of 256 threads keeps 4 KB in
// flight per token; many blocks per SM hide the latency.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "dllm/cache.h"

namespace dllm::cuda {

namespace cache_detail {

// H rows of D elements: row h starts at p + h * stride_head, element d at + d * stride_dim.
template <typename E>
struct Rows {
  E* p;
  int64_t stride_head;
  int64_t stride_dim;
};

// The block's threads copy H rows of k and of v (src == nullptr: write zeros). nvec = vectors of
// type V per row: D * sizeof(E) / 16 for V = uint4 (rows aligned, stride_dim 1), D for V = E.
template <typename V, typename E>
__device__ __forceinline__ void copy_rows(Rows<E> dk, Rows<E> dv, Rows<const E> sk,
                                          Rows<const E> sv, int H, int nvec) {
  const int per = H * nvec;
  for (int i = threadIdx.x; i < 2 * per; i += blockDim.x) {
    const bool second = i >= per;
    const int j = second ? i - per : i;
    const int h = j / nvec, c = j - h * nvec;
    const Rows<E> d = second ? dv : dk;  // by value: a reference would force a stack frame
    const Rows<const E> s = second ? sv : sk;
    if constexpr (sizeof(V) == sizeof(E)) {
      d.p[h * d.stride_head + c * d.stride_dim] =
          s.p == nullptr ? E(0) : s.p[h * s.stride_head + c * s.stride_dim];
    } else {
      const V val = s.p == nullptr ? V{} : reinterpret_cast<const V*>(s.p + h * s.stride_head)[c];
      reinterpret_cast<V*>(d.p + h * d.stride_head)[c] = val;
    }
  }
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename E>
inline bool strides16(std::initializer_list<int64_t> strides) {
  for (int64_t s : strides)
    if ((s * static_cast<int64_t>(sizeof(E))) % 16 != 0) return false;
  return true;
}

inline unsigned threads_for(int64_t vectors) {  // 2 * H * nvec vectors per token
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(vectors, 32) * 32, 32, 256));
}

inline unsigned blocks_for(int64_t units) {
  return static_cast<unsigned>(std::clamp<int64_t>(units, 1, int64_t{1} << 20));
}

}  // namespace cache_detail

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
