// csrc/cuda/denoise_step/denoise_step_f16.cu — dllm::cuda::denoise_step<dllm::f16_t>
// (the unit layout: instances.h).
#include "instances.h"

DLLM_DENOISE_STEP_INSTANCE(dllm::f16_t);
