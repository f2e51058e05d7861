// dllm/select_transfer.h — the parameters of select_transfer (and of the select half of
// denoise_and_select), shared by the CPU kernel (dllm/cpu/select_transfer.h) and the CUDA launcher
// (dllm/cuda/select_transfer.cuh); dllm_kernels/reference/select_transfer.py is the specification.
#pragma once

#include <cstdint>

namespace dllm {

enum class SelectRule : int32_t {
  kNumTransfer = 0,
  kThreshold = 1,
  kFactor = 2,
  kProbability = 3,
  kEntropyBound = 4
};

struct SelectParams {
  SelectRule rule;
  double value;  // threshold / entropy_bound (compared in float32, as the reference does)
                 // or factor
  bool strict;   // threshold: conf > value instead of >=
  uint64_t seed;
  uint32_t offset;
};

}  // namespace dllm
