// csrc/cuda/block_attention/block_attention_f16.cu — dllm::cuda::block_attention<dllm::f16_t>
// (the unit layout: instances.h).
#include "instances.h"

DLLM_BLOCK_ATTENTION_INSTANCE(dllm::f16_t);
