// csrc/cpu/cpu_ops.h — what the CPU glue files share: the work of ops that other CPU ops call
// after their own checks (denoise_and_select is denoise_step + select_transfer + commit_, checked
// once) and the cache ops' grain.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>

#include "checks.h"

namespace dllm_torch {

// Units of work per parallel chunk of the paged-cache copies: ~64 KB of copies.
inline int64_t grain_for(int64_t bytes_per_unit) {
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(bytes_per_unit, 1));
}

// denoise_step's work on checked arguments (p from denoise_step_check) -> (x0, conf) [B, L].
std::tuple<at::Tensor, at::Tensor> denoise_step_run(
    const at::Tensor& logits,  // [B, L, V] f32|bf16|f16, V contiguous
    const at::Tensor& x,       // [B, L] int64
    const dllm::DenoiseParams& p,
    const std::optional<at::Tensor>& suppress_tokens);  // [n] int64

// select_transfer's work on checked arguments (a from select_transfer_check) -> [B, L] bool.
at::Tensor select_transfer_run(const at::Tensor& conf,  // [B, L] float32
                               const SelectArgs& a,
                               const std::optional<at::Tensor>& per_row);  // [B] int64 | float32

}  // namespace dllm_torch
