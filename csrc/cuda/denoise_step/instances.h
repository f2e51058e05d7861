// csrc/cuda/denoise_step/instances.h — the launcher of denoise_step (dllm/cuda/denoise_step.cuh)
// is instantiated in units of its own, one per logits dtype: csrc/cuda/denoise_step/
// denoise_step_<f32|bf16|f16>.cu (denoise_and_select likewise: csrc/cuda/denoise_and_select/).
// Each instance holds 12 kernels (3 confidence statistics x sampled or not x fast or filtered
// path), so one unit for both launchers' 72 kernels took 84 s to compile for sm_90a alone; split, a
// build on many cores takes as long as its slowest unit. A unit that includes this header calls
// those instances instead of instantiating the kernels itself (the torch glue
// csrc/cuda/denoise_step.cu, the native test csrc/tests/test_sampling_cuda.cu); the instance units
// include it too, so the compiler checks each definition against its declaration here.
// Torch-free, like dllm/cuda/*.cuh.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "dllm/common.h"
#include "dllm/cuda/denoise_shard.cuh"
#include "dllm/cuda/denoise_step.cuh"
#include "dllm/denoise_step.h"
#include "dllm/sampling.h"

// The explicit instantiation of dllm::cuda::denoise_step<In> (prefix it with `extern` to declare).
#define DLLM_DENOISE_STEP_INSTANCE(In)                                                            \
  template cudaError_t dllm::cuda::denoise_step<In>(                                              \
      const In*, int64_t, int64_t, dllm::View2D<const int64_t>, const int64_t*, int64_t, int64_t, \
      int64_t, int64_t, const dllm::DenoiseParams&, const dllm::cuda::DenoisePlan&, int64_t*,     \
      float*, void*, cudaStream_t)

// The vocabulary-parallel stages (dllm/cuda/denoise_shard.cuh) run denoise_step's own kernels on
// the shard: instantiated in the same units, they share those kernels' instances. `prefix`: empty
// to instantiate, `extern` to declare.
#define DLLM_DENOISE_SHARD_INSTANCES(prefix, In)                                                  \
  prefix template cudaError_t dllm::cuda::denoise_shard_state<In>(                                \
      const dllm::cuda::denoise_detail::Rows<In>&, const dllm::DenoiseParams&, const float*, int, \
      float*, double*, void*, cudaStream_t);                                                      \
  prefix template cudaError_t dllm::cuda::denoise_shard_sums<In>(                                 \
      const dllm::cuda::denoise_detail::Rows<In>&, const dllm::DenoiseParams&, const float*,      \
      const float*, int, long long*, cudaStream_t);                                               \
  prefix template cudaError_t dllm::cuda::denoise_shard_top_k<In>(                                \
      const dllm::cuda::denoise_detail::Rows<In>&, const dllm::DenoiseParams&, const float*,      \
      int64_t, float*, cudaStream_t);                                                             \
  prefix template cudaError_t dllm::cuda::denoise_shard_range<In>(                                \
      const dllm::cuda::denoise_detail::Rows<In>&, const dllm::DenoiseParams&, const float*,      \
      float*, cudaStream_t);                                                                      \
  prefix template cudaError_t dllm::cuda::denoise_shard_top_p_level<In>(                          \
      const dllm::cuda::denoise_detail::Rows<In>&, const dllm::DenoiseParams&, const float*,      \
      const float*, const int64_t*, int, long long*, cudaStream_t)

extern DLLM_DENOISE_STEP_INSTANCE(float);
extern DLLM_DENOISE_STEP_INSTANCE(dllm::bf16_t);
extern DLLM_DENOISE_STEP_INSTANCE(dllm::f16_t);
DLLM_DENOISE_SHARD_INSTANCES(extern, float);
DLLM_DENOISE_SHARD_INSTANCES(extern, dllm::bf16_t);
DLLM_DENOISE_SHARD_INSTANCES(extern, dllm::f16_t);
