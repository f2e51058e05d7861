// csrc/cuda/denoise_step/denoise_step_f32.cu — dllm::cuda::denoise_step<float>
// (the unit layout: instances.h).
#include "instances.h"

DLLM_DENOISE_STEP_INSTANCE(float);
