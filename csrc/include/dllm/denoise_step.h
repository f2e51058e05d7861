// dllm/denoise_step.h — the parameters of denoise_step (and of the denoise half of
// denoise_and_select), shared by the CPU kernel (dllm/cpu/denoise_step.h) and the CUDA launcher
// (dllm/cuda/denoise_step.cuh); dllm_kernels/reference/denoise_step.py is the specification.
#pragma once

#include <cstdint>

namespace dllm {

enum class Confidence : int32_t { kProb = 0, kMargin = 1, kNegEntropy = 2, kRandom = 3 };

struct DenoiseParams {
  int64_t mask_id;         // a position is masked iff x == mask_id
  float inv_temperature;   // fl32(1 / T); 1 when T == 0
  bool sample;             // T > 0: Gumbel-max sampling; else argmax
  int64_t top_k;           // 0: off
  double top_p;            // 1: off (double: compared with a float64 cumulative mass)
  bool top_p_first;        // filter order
  Confidence confidence;
  bool source_sampling;    // p = the filtered distribution (else softmax of raw logits)
  bool shift_logits;       // position l reads the logits of l - 1 (position 0 its own)
  uint64_t seed;
  uint32_t offset;
};

}  // namespace dllm
