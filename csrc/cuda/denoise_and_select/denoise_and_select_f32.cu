// csrc/cuda/denoise_and_select/denoise_and_select_f32.cu — dllm::cuda::denoise_and_select<float>
// (the unit layout: instances.h).
#include "instances.h"

DLLM_DENOISE_AND_SELECT_INSTANCE(float);
