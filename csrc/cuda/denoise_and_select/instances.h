// csrc/cuda/denoise_and_select/instances.h — the launcher of denoise_and_select
// (dllm/cuda/denoise_and_select.cuh) is instantiated in units of its own, one per logits dtype:
// csrc/cuda/denoise_and_select/denoise_and_select_<f32|bf16|f16>.cu. Why, and how the units use
// this header: csrc/cuda/denoise_step/instances.h. Torch-free, like dllm/cuda/*.cuh.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "dllm/common.h"
#include "dllm/cuda/denoise_and_select.cuh"
#include "dllm/denoise_step.h"
#include "dllm/sampling.h"
#include "dllm/select_transfer.h"

// The explicit instantiation of dllm::cuda::denoise_and_select<In> (prefix it with `extern` to
// declare).
#define DLLM_DENOISE_AND_SELECT_INSTANCE(In)                                                \
  template cudaError_t dllm::cuda::denoise_and_select<In>(                                  \
      const In*, int64_t, int64_t, dllm::View2D<int64_t>, const int64_t*, int64_t, int64_t, \
      int64_t, int64_t, const dllm::DenoiseParams&, dllm::SelectRule, double, bool,         \
      const int64_t*, const float*, int64_t, uint64_t, uint32_t, bool, bool,                \
      const dllm::cuda::DenoiseSelectPlan&, int64_t*, float*, dllm::View2D<uint8_t>, void*, \
      cudaStream_t)

extern DLLM_DENOISE_AND_SELECT_INSTANCE(float);
extern DLLM_DENOISE_AND_SELECT_INSTANCE(dllm::bf16_t);
extern DLLM_DENOISE_AND_SELECT_INSTANCE(dllm::f16_t);
