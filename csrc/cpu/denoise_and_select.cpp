// csrc/cpu/denoise_and_select.cpp — CPU implementation of dllm_kernels::denoise_and_select:
// denoise_step, then select_transfer, then (commit=True) commit_, in one call (checks in
// csrc/torch/checks.cpp; the steps are the CPU ops of csrc/cpu/cpu_ops.h and dllm/cpu/commit.h).
#include <torch/library.h>

#include <tuple>

#include "checks.h"
#include "cpu_ops.h"
#include "dllm/cpu/commit.h"

namespace dllm_torch {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> denoise_and_select_cpu(
    const at::Tensor& logits, at::Tensor& x, int64_t mask_id, double temperature, int64_t top_k,
    double top_p, c10::string_view filter_order, c10::string_view confidence,
    c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens, c10::string_view rule,
    const std::optional<at::Tensor>& per_row, double value, bool strict, bool commit, int64_t seed,
    int64_t offset,
    const std::optional<at::Tensor>& eligible,       // [B, L] bool, or none: x == mask_id
    const std::optional<at::Tensor>& uncond_logits,  // [B, L, V] like logits (CFG), or none
    double cfg_scale, bool renoise,
    const std::optional<at::Tensor>& argmax) {  // [B, L] int64 written (return_argmax)
  // Each argument is checked once; x is only written by the commit at the end, after every
  // argument has been checked.
  constexpr const char* op = "denoise_and_select";
  const dllm::DenoiseParams p = denoise_step_check(
      logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence, confidence_source,
      shift_logits, suppress_tokens, seed, offset, op, eligible, uncond_logits, cfg_scale, argmax);
  denoise_and_select_extras_check(x, eligible, confidence, rule, commit, renoise, op);
  if (commit) check_writable(x, op, "x");
  auto [x0, conf] = denoise_step_run(logits, x, p, suppress_tokens);
  const SelectArgs a = select_transfer_check(conf, rule, per_row, value, strict, seed, offset, op);
  at::Tensor transfer = select_transfer_run(conf, a, per_row);
  if (commit) {
    const auto xv = dllm::view2d(x.data_ptr<int64_t>(), x.stride(0), x.stride(1));
    const auto x0v = dllm::view2d(x0.const_data_ptr<int64_t>(), x0.stride(0), x0.stride(1));
    const auto tv = dllm::view2d(reinterpret_cast<const uint8_t*>(transfer.const_data_ptr<bool>()),
                                 transfer.stride(0), transfer.stride(1));
    dllm::cpu::commit_rows<int64_t>(xv, x0v, tv, x.size(1), 0, x.size(0));
    if (renoise) {
      const auto* ep = reinterpret_cast<const uint8_t*>(eligible->const_data_ptr<bool>());
      const auto ev = dllm::view2d(ep, eligible->stride(0), eligible->stride(1));
      dllm::cpu::renoise_rows(xv, ev, tv, logits.size(2), static_cast<uint64_t>(seed),
                              static_cast<uint32_t>(offset), x.size(1), 0, x.size(0));
    }
  }
  return {x0, conf, transfer};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("denoise_and_select", &denoise_and_select_cpu); }

}  // namespace dllm_torch
