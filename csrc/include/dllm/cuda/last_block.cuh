// dllm/cuda/last_block.cuh — the "last block done" handshake: blocks that each write one share of a
// result count their arrivals on a global counter, and the block that arrives last (and only it)
// sees every share and finishes the result in the same launch: no second kernel, no host sync.
//
// Protocol (per share): thread 0 of the writing block stores the share, __threadfence() (release:
// the share is visible device-wide before the count), atomicAdd(counter, 1). The block whose add
// returns target - 1 is the last; its thread 0 fences again (acquire) and a block barrier hands
// that on to the other threads, which read the other blocks' shares with __ldcg (through L2, never
// a stale L1 line). The counter must be zero before the launch (cudaMemsetAsync) and every share
// must arrive exactly once; no block ever waits for another, so any grid size and any block order
// are fine.
#pragma once

#include <cuda_runtime.h>

namespace dllm::cuda {

// Called by every thread of the block (block-uniform control flow) after thread 0 has written the
// block's share. Returns, to every thread, whether this block made the `target`-th arrival.
// Count: unsigned int or unsigned long long.
template <typename Count>
__device__ __forceinline__ bool last_to_arrive(Count* counter,  // [1] zeroed before the launch
                                               Count target) {
  bool last = false;
  if (threadIdx.x == 0) {
    __threadfence();  // release: thread 0's share before the arrival
    last = atomicAdd(counter, Count(1)) == target - 1;
    if (last) __threadfence();  // acquire: every other share before what this block reads next
  }
  return __syncthreads_or(last) != 0;
}

}  // namespace dllm::cuda
