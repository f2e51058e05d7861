// csrc/cpu/cpu_ops.h — CPU op implementations that other CPU ops call (denoise_and_select is
// denoise_step + select_transfer + commit_).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string_view>
#include <tuple>

namespace dllm_torch {

std::tuple<at::Tensor, at::Tensor> denoise_step_cpu(
    const at::Tensor& logits, const at::Tensor& x, int64_t mask_id, double temperature,
    int64_t top_k, double top_p, c10::string_view filter_order, c10::string_view confidence,
    c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens, int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible, const std::optional<at::Tensor>& uncond_logits,
    double cfg_scale);

at::Tensor select_transfer_cpu(const at::Tensor& conf, c10::string_view rule,
                               const std::optional<at::Tensor>& per_row, double value,
                               bool strict, int64_t seed, int64_t offset);

}  // namespace dllm_torch
