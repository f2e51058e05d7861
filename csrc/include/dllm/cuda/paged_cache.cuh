// dllm/cuda/paged_cache.cuh — what the CUDA launchers of the paged KV cache copies share
// (cache_write_, cache_gather, cache_copy_pages_: dllm/cuda/cache_*.cuh): the block's row copy and
// the launch shape. Views and layout: dllm/paged_cache.h.
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

#include "dllm/paged_cache.h"

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

}  // namespace dllm::cuda
