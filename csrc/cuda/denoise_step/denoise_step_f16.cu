// csrc/cuda/denoise_step/denoise_step_f16.cu — dllm::cuda::denoise_step<dllm::f16_t>
// and the shard stages of dllm/cuda/denoise_shard.cuh
// (the unit layout: instances.h).
#include "instances.h"

DLLM_DENOISE_STEP_INSTANCE(dllm::f16_t);
DLLM_DENOISE_SHARD_INSTANCES(, dllm::f16_t);
