// csrc/cuda/block_attention/instances.h — the launcher of block_attention
// (dllm/cuda/block_attention.cuh) is instantiated in units of its own, one per element type:
// csrc/cuda/block_attention/block_attention_<bf16|f16>.cu (fp32 attention is CPU only). Each
// instance holds 8 kernels (4 head dims x the attention and the split-KV merge kernel); one unit
// with both types and the torch glue took 27 s to compile for sm_90a. The glue
// csrc/cuda/block_attention.cu includes this header and calls the instances instead of
// instantiating the kernels itself; the instance units include it too, so the compiler checks each
// definition against its declaration here. Torch-free, like dllm/cuda/*.cuh.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "dllm/block_attention.h"
#include "dllm/cuda/block_attention.cuh"
#include "dllm/float16.h"

// The explicit instantiation of dllm::cuda::block_attention<T> (prefix it with `extern` to
// declare).
#define DLLM_BLOCK_ATTENTION_INSTANCE(T)                                                   \
  template cudaError_t dllm::cuda::block_attention<T>(const dllm::BlockAttentionArgs<T>&, \
                                                      void*, size_t, int, cudaStream_t)

extern DLLM_BLOCK_ATTENTION_INSTANCE(dllm::bf16_t);
extern DLLM_BLOCK_ATTENTION_INSTANCE(dllm::f16_t);
