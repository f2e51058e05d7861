// csrc/cuda/denoise_and_select/denoise_and_select_f16.cu —
// dllm::cuda::denoise_and_select<dllm::f16_t> (the unit layout: instances.h).
#include "instances.h"

DLLM_DENOISE_AND_SELECT_INSTANCE(dllm::f16_t);
