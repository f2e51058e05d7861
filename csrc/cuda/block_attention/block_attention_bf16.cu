// csrc/cuda/block_attention/block_attention_bf16.cu — dllm::cuda::block_attention<dllm::bf16_t>
// (the unit layout: instances.h).
#include "instances.h"

DLLM_BLOCK_ATTENTION_INSTANCE(dllm::bf16_t);
