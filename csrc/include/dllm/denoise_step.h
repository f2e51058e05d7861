// dllm/denoise_step.h — the parameters of denoise_step (and of the denoise half of
// denoise_and_select), shared by the CPU kernel (dllm/cpu/denoise_step.h) and the CUDA launcher
// (dllm/cuda/denoise_step.cuh); dllm_kernels/reference/denoise_step.py is the specification.
#pragma once

#include <cstdint>

#include "dllm/common.h"

namespace dllm {

enum class Confidence : int32_t { kProb = 0, kMargin = 1, kNegEntropy = 2, kRandom = 3 };

struct DenoiseParams {
  int64_t mask_id;          // a position is masked iff x == mask_id (unless eligible is given)
  const uint8_t* eligible;  // [B, L] bool bytes (strides eligible_sb, eligible_sl), or null: the
  int64_t eligible_sb;      //   positions denoised instead of x == mask_id
  int64_t eligible_sl;
  float inv_temperature;  // fl32(1 / T); 1 when T == 0
  bool sample;            // T > 0: Gumbel-max sampling; else argmax
  int64_t top_k;          // 0: off
  double top_p;           // 1: off (double: compared with a float64 cumulative mass)
  bool top_p_first;       // filter order
  Confidence confidence;
  bool source_sampling;  // p = the filtered distribution (else softmax of raw logits)
  bool shift_logits;     // position l reads the logits of l - 1 (position 0 its own)
  uint64_t seed;
  uint32_t offset;
  bool cfg;             // classifier-free guidance: z = u + cfg_scale1 * (c - u)
  float cfg_scale1;     // fl32(cfg_scale + 1)
  const void* uncond;   // [B, L, V] CFG's unconditional logits (read iff cfg): the logits'
  int64_t uncond_sb;    //   element type, V contiguous, own element strides (uncond_sb,
  int64_t uncond_sl;    //   uncond_sl)
  int64_t vocab_start;  // global id of the logits' token 0 (a vocabulary shard, tensor
                        //   parallelism; a multiple of 4, the Philox group size): keys the
                        //   Gumbel noise by the global id. 0 for the whole vocabulary.
  int64_t* argmax;      // [B, L] output (return_argmax), row stride argmax_sb, columns
  int64_t argmax_sb;    //   contiguous; or null. The first id maximising z (after CFG,
                        //   suppress and sanitising; before temperature / filters), x where
                        //   not denoised or every z is -inf.
};

// Is position (b, l), holding token xv, denoised this step?
DLLM_HOST_DEVICE bool denoised(const DenoiseParams& p, int64_t xv, int64_t b, int64_t l) {
  return p.eligible ? p.eligible[b * p.eligible_sb + l * p.eligible_sl] != 0 : xv == p.mask_id;
}

}  // namespace dllm
