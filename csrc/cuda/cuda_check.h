// csrc/cuda/cuda_check.h — turns a launcher's cudaError_t into a torch error naming the op.
#pragma once

#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#define DLLM_CUDA_CHECK(op, expr)                                 \
  do {                                                            \
    const cudaError_t dllm_err_ = (expr);                         \
    TORCH_CHECK(dllm_err_ == cudaSuccess, "dllm_kernels.", op,    \
                ": CUDA error: ", cudaGetErrorString(dllm_err_)); \
  } while (0)
