// csrc/cuda/denoise_step.cu — CUDA implementations of dllm_kernels::denoise_step and
// dllm_kernels::denoise_and_select (checks in csrc/torch/checks.cpp).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "cuda_check.h"
#include "dllm/commit.cuh"
#include "dllm/denoise_step.cuh"
#include "dllm/select_transfer.cuh"
#include "checks.h"

namespace dllm_torch {
namespace {

// Runs denoise_step's kernels into x0 / conf ([B, L], contiguous) on the current stream.
void run_denoise(const at::Tensor& logits,                          // [B, L, V]
                 const at::Tensor& x,                               // [B, L] int64
                 const std::optional<at::Tensor>& suppress_tokens,  // [n] int64 sorted unique
                 const dllm::DenoiseParams& p, at::Tensor& x0, at::Tensor& conf, const char* op,
                 cudaStream_t stream) {
  const int64_t B = logits.size(0), L = logits.size(1), V = logits.size(2);
  const int num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const dllm::cuda::DenoisePlan plan = dllm::cuda::denoise_step_plan(B, L, V, p, num_sms);
  at::Tensor workspace;  // partial states [B*L, splits]: small, never B*L*V
  if (plan.workspace_bytes > 0)
    workspace = at::empty({static_cast<int64_t>(plan.workspace_bytes)},
                          logits.options().dtype(at::kByte));
  // The kernel walks the ids in ascending order: sort them on the device (asynchronous, no host
  // sync; duplicates are harmless). Out-of-range ids are ignored by the kernel.
  const int64_t* sup = nullptr;
  int64_t n_sup = 0;
  at::Tensor sup_sorted;
  if (suppress_tokens.has_value() && suppress_tokens->numel() > 0) {
    sup_sorted = std::get<0>(at::sort(*suppress_tokens));
    sup = sup_sorted.const_data_ptr<int64_t>();
    n_sup = sup_sorted.numel();
  }
  const auto xv = dllm::view2d(x.const_data_ptr<int64_t>(), x.stride(0), x.stride(1));
  void* ws = workspace.defined() ? workspace.data_ptr() : nullptr;
  const auto go = [&](const auto* ptr) {
    DLLM_CUDA_CHECK(op, dllm::cuda::denoise_step(ptr, logits.stride(0), logits.stride(1), xv, sup,
                                                 n_sup, B, L, V, p, plan,
                                                 x0.data_ptr<int64_t>(), conf.data_ptr<float>(),
                                                 ws, stream));
  };
  switch (logits.scalar_type()) {
    case at::kFloat: go(logits.const_data_ptr<float>()); break;
    case at::kBFloat16:
      go(reinterpret_cast<const dllm::bf16_t*>(logits.const_data_ptr<at::BFloat16>()));
      break;
    case at::kHalf:
      go(reinterpret_cast<const dllm::f16_t*>(logits.const_data_ptr<at::Half>()));
      break;
    default: TORCH_CHECK(false, "dllm_kernels.", op, ": unsupported logits dtype");
  }
}

std::tuple<at::Tensor, at::Tensor> denoise_step_cuda(
    const at::Tensor& logits,  // [B, L, V] f32 | bf16 | f16, V contiguous
    const at::Tensor& x,       // [B, L] int64
    int64_t mask_id, double temperature, int64_t top_k, double top_p,
    c10::string_view filter_order, c10::string_view confidence,
    c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens,  // [n] int64, sorted unique
    int64_t seed, int64_t offset) {
  constexpr const char* op = "denoise_step";
  const dllm::DenoiseParams p =
      denoise_step_check(logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence,
                         confidence_source, shift_logits, suppress_tokens, seed, offset, op);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = x.size(0), L = x.size(1);
  at::Tensor x0 = at::empty({B, L}, x.options());                           // [B, L] int64
  at::Tensor conf = at::empty({B, L}, x.options().dtype(at::kFloat));      // [B, L] float32
  run_denoise(logits, x, suppress_tokens, p, x0, conf, op, at::cuda::getCurrentCUDAStream());
  return {x0, conf};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> denoise_and_select_cuda(
    const at::Tensor& logits,  // [B, L, V] f32 | bf16 | f16, V contiguous
    at::Tensor& x,             // [B, L] int64; x[transfer] = x0[transfer] if commit
    int64_t mask_id, double temperature, int64_t top_k, double top_p,
    c10::string_view filter_order, c10::string_view confidence,
    c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens,  // [n] int64, sorted unique
    c10::string_view rule,
    const std::optional<at::Tensor>& per_row,  // [B] int64 (num_transfer) | float32 (probability)
    double value, bool strict, bool commit, int64_t seed, int64_t offset) {
  constexpr const char* op = "denoise_and_select";
  const dllm::DenoiseParams p =
      denoise_step_check(logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence,
                         confidence_source, shift_logits, suppress_tokens, seed, offset, op);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = x.size(0), L = x.size(1);
  at::Tensor x0 = at::empty({B, L}, x.options());                           // [B, L] int64
  at::Tensor conf = at::empty({B, L}, x.options().dtype(at::kFloat));      // [B, L] float32
  at::Tensor transfer = at::empty({B, L}, x.options().dtype(at::kBool));   // [B, L] bool
  const SelectArgs a = select_transfer_check(conf, rule, per_row, value, strict, seed, offset, op);
  if (commit) check_writable(x, op, "x");
  at::Tensor rows;
  if (per_row.has_value()) rows = per_row->contiguous();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  run_denoise(logits, x, suppress_tokens, p, x0, conf, op, stream);
  const int64_t* k_rows =
      a.rule == dllm::SelectRule::kNumTransfer ? rows.const_data_ptr<int64_t>() : nullptr;
  const float* p_rows =
      a.rule == dllm::SelectRule::kProbability ? rows.const_data_ptr<float>() : nullptr;
  const auto cv = dllm::view2d(conf.const_data_ptr<float>(), conf.stride(0), conf.stride(1));
  const auto tv = dllm::view2d(reinterpret_cast<uint8_t*>(transfer.data_ptr<bool>()),
                               transfer.stride(0), transfer.stride(1));
  DLLM_CUDA_CHECK(op, dllm::cuda::select_transfer(cv, a.rule, a.value, a.strict, k_rows, p_rows,
                                                  a.seed, a.offset, B, L, tv, stream));
  if (commit) {
    const auto xw = dllm::view2d(x.data_ptr<int64_t>(), x.stride(0), x.stride(1));
    const auto x0v = dllm::view2d(x0.const_data_ptr<int64_t>(), x0.stride(0), x0.stride(1));
    const auto tr = dllm::view2d(reinterpret_cast<const uint8_t*>(transfer.const_data_ptr<bool>()),
                                 transfer.stride(0), transfer.stride(1));
    DLLM_CUDA_CHECK(op, dllm::cuda::commit<int64_t>(xw, x0v, tr, B, L, stream));
  }
  return {x0, conf, transfer};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) {
  m.impl("denoise_step", &denoise_step_cuda);
  m.impl("denoise_and_select", &denoise_and_select_cuda);
}

}  // namespace dllm_torch
