// dllm/cuda/num_transfer_tokens.cuh — CUDA launcher for LLaDA's linear transfer schedule:
//   n[b, i] = floor(M_b / steps) + (i < M_b mod steps ? 1 : 0),   M_b = sum_l mask[b, l]
//
// Napkin math: read B*L bytes, write B*steps*8 bytes. For a [64, 4096] mask that is 0.26 MB, well
// under a microsecond of HBM time: the call is launch-bound (~3-5 us). The kernel replaces the
// reference's sum + per-row Python loop (B small launches and host round trips) by one launch.
//
// Layout: one block per row (grid-stride over rows); the block counts its row with a strided loop
// and a cub::BlockReduce, then writes the row's `steps` outputs.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cub/block/block_reduce.cuh>

#include "dllm/common.h"

namespace dllm::cuda {

template <int kThreads>
__global__ void num_transfer_tokens_kernel(View2D<const uint8_t> mask,  // [B, L] nonzero: masked
                                           View2D<int64_t> out,         // [B, steps]
                                           int64_t B, int64_t L, int64_t steps) {
  using BlockReduce = cub::BlockReduce<int64_t, kThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ int64_t row_total;
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    int64_t count = 0;
    for (int64_t l = threadIdx.x; l < L; l += kThreads) count += mask(b, l) != 0 ? 1 : 0;
    const int64_t total = BlockReduce(temp).Sum(count);  // valid in thread 0 only
    if (threadIdx.x == 0) row_total = total;
    __syncthreads();
    const int64_t masked = row_total;
    const int64_t base = masked / steps;
    const int64_t remainder = masked % steps;
    for (int64_t i = threadIdx.x; i < steps; i += kThreads) out(b, i) = base + (i < remainder ? 1 : 0);
    __syncthreads();  // temp and row_total are reused by the next row
  }
}

inline cudaError_t num_transfer_tokens(View2D<const uint8_t> mask,  // [B, L] nonzero: masked
                                       View2D<int64_t> out,         // [B, steps] tokens per step
                                       int64_t B, int64_t L, int64_t steps, cudaStream_t stream) {
  if (B == 0 || steps <= 0) return steps <= 0 ? cudaErrorInvalidValue : cudaSuccess;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(B, 65535));
  num_transfer_tokens_kernel<kThreads><<<blocks, kThreads, 0, stream>>>(mask, out, B, L, steps);
  return cudaGetLastError();
}

}  // namespace dllm::cuda
