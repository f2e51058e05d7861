// csrc/cuda/denoise_step/denoise_step_f32.cu — dllm::cuda::denoise_step<float>
// and the shard stages of dllm/cuda/denoise_shard.cuh
// (the unit layout: instances.h).
#include "instances.h"

DLLM_DENOISE_STEP_INSTANCE(float);
DLLM_DENOISE_SHARD_INSTANCES(, float);
