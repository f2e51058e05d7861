// csrc/cuda/denoise_and_select.cu — CUDA implementation of dllm_kernels::denoise_and_select
// (checks in csrc/torch/checks.cpp). The launcher's kernels are compiled in
// csrc/cuda/denoise_and_select/*.cu, one unit per logits dtype: this glue only calls them
// (denoise_and_select/instances.h declares them extern).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "checks.h"
#include "cuda_check.h"
#include "cuda_ops.h"
#include "denoise_and_select/instances.h"
#include "dllm/cuda/denoise_and_select.cuh"

namespace dllm_torch {
namespace {

// One kernel (dllm/cuda/denoise_and_select.cuh) after a memset of its counters; with
// suppress_tokens also the sort of the ids.
std::tuple<at::Tensor, at::Tensor, at::Tensor> denoise_and_select_cuda(
    const at::Tensor& logits,  // [B, L, V] f32 | bf16 | f16, V contiguous
    at::Tensor& x,             // [B, L] int64; x[transfer] = x0[transfer] if commit
    int64_t mask_id, double temperature, int64_t top_k, double top_p, c10::string_view filter_order,
    c10::string_view confidence, c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens,  // [n] int64
    c10::string_view rule,
    const std::optional<at::Tensor>& per_row,  // [B] int64 (num_transfer) | float32 (probability)
    double value, bool strict, bool commit, int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible,       // [B, L] bool, or none: x == mask_id
    const std::optional<at::Tensor>& uncond_logits,  // [B, L, V] like logits (CFG), or none
    double cfg_scale, bool renoise,
    const std::optional<at::Tensor>& argmax) {  // [B, L] int64 written (return_argmax)
  constexpr const char* op = "denoise_and_select";
  const dllm::DenoiseParams p = denoise_step_check(
      logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence, confidence_source,
      shift_logits, suppress_tokens, seed, offset, op, eligible, uncond_logits, cfg_scale, argmax);
  denoise_and_select_extras_check(x, eligible, confidence, rule, commit, renoise, op);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = x.size(0), L = x.size(1), V = logits.size(2);
  at::Tensor x0 = at::empty({B, L}, x.options());                         // [B, L] int64
  at::Tensor conf = at::empty({B, L}, x.options().dtype(at::kFloat));     // [B, L] float32
  at::Tensor transfer = at::empty({B, L}, x.options().dtype(at::kBool));  // [B, L] bool
  const SelectArgs a = select_transfer_check(conf, rule, per_row, value, strict, seed, offset, op);
  if (commit) check_writable(x, op, "x");
  DLLM_CHECK_ARG(a.rule != dllm::SelectRule::kEntropyBound || L <= 4096, op, "entropy_bound",
                 "needs L <= 4096 on CUDA, got L = ", L);
  // per_row is read in place with its stride (a column of a [B, steps] schedule: no copy kernel).
  const int64_t* k_rows =
      a.rule == dllm::SelectRule::kNumTransfer ? per_row->const_data_ptr<int64_t>() : nullptr;
  const float* p_rows =
      a.rule == dllm::SelectRule::kProbability ? per_row->const_data_ptr<float>() : nullptr;
  const int64_t rows_stride = per_row.has_value() ? per_row->stride(0) : 1;

  const int num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const dllm::cuda::DenoiseSelectPlan plan =
      dllm::cuda::denoise_and_select_plan(B, L, V, p, num_sms);
  // partial states + counters: small, never B*L*V
  at::Tensor workspace =
      at::empty({static_cast<int64_t>(plan.workspace_bytes)}, logits.options().dtype(at::kByte));
  const at::Tensor sup = sorted_suppress(suppress_tokens);
  const auto xw = dllm::view2d(x.data_ptr<int64_t>(), x.stride(0), x.stride(1));
  const auto tv = dllm::view2d(reinterpret_cast<uint8_t*>(transfer.data_ptr<bool>()),
                               transfer.stride(0), transfer.stride(1));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  with_logits(logits, op, [&](const auto* ptr) {
    DLLM_CUDA_CHECK(
        op, dllm::cuda::denoise_and_select(
                ptr, logits.stride(0), logits.stride(1), xw,
                sup.defined() ? sup.const_data_ptr<int64_t>() : nullptr,
                sup.defined() ? sup.numel() : 0, B, L, V, p, a.rule, a.value, a.strict, k_rows,
                p_rows, rows_stride, a.seed, a.offset, commit, renoise, plan,
                x0.data_ptr<int64_t>(), conf.data_ptr<float>(), tv, workspace.data_ptr(), stream));
  });
  return {x0, conf, transfer};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) {
  m.impl("denoise_and_select", &denoise_and_select_cuda);
}

}  // namespace dllm_torch
