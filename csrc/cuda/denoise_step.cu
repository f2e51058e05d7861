// csrc/cuda/denoise_step.cu — CUDA implementation of dllm_kernels::denoise_step (checks in
// csrc/torch/checks.cpp). The launcher's kernels are compiled in csrc/cuda/denoise_step/*.cu, one
// unit per logits dtype: this glue only calls them (denoise_step/instances.h declares them extern).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "checks.h"
#include "cuda_check.h"
#include "cuda_ops.h"
#include "denoise_step/instances.h"
#include "dllm/cuda/denoise_step.cuh"

namespace dllm_torch {
namespace {

std::tuple<at::Tensor, at::Tensor> denoise_step_cuda(
    const at::Tensor& logits,  // [B, L, V] f32 | bf16 | f16, V contiguous
    const at::Tensor& x,       // [B, L] int64
    int64_t mask_id, double temperature, int64_t top_k, double top_p, c10::string_view filter_order,
    c10::string_view confidence, c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens,  // [n] int64
    int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible,       // [B, L] bool, or none: x == mask_id
    const std::optional<at::Tensor>& uncond_logits,  // [B, L, V] like logits (CFG), or none
    double cfg_scale,
    const std::optional<at::Tensor>& argmax) {  // [B, L] int64 written (return_argmax)
  constexpr const char* op = "denoise_step";
  const dllm::DenoiseParams p = denoise_step_check(
      logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence, confidence_source,
      shift_logits, suppress_tokens, seed, offset, op, eligible, uncond_logits, cfg_scale, argmax);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = x.size(0), L = x.size(1), V = logits.size(2);
  at::Tensor x0 = at::empty({B, L}, x.options());                      // [B, L] int64
  at::Tensor conf = at::empty({B, L}, x.options().dtype(at::kFloat));  // [B, L] float32
  const int num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const dllm::cuda::DenoisePlan plan = dllm::cuda::denoise_step_plan(B, L, V, p, num_sms);
  at::Tensor workspace;  // partial states [B*L, splits]: small, never B*L*V
  if (plan.workspace_bytes > 0)
    workspace =
        at::empty({static_cast<int64_t>(plan.workspace_bytes)}, logits.options().dtype(at::kByte));
  const at::Tensor sup = sorted_suppress(suppress_tokens);
  const auto xv = dllm::view2d(x.const_data_ptr<int64_t>(), x.stride(0), x.stride(1));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  with_logits(logits, op, [&](const auto* ptr) {
    DLLM_CUDA_CHECK(
        op, dllm::cuda::denoise_step(ptr, logits.stride(0), logits.stride(1), xv,
                                     sup.defined() ? sup.const_data_ptr<int64_t>() : nullptr,
                                     sup.defined() ? sup.numel() : 0, B, L, V, p, plan,
                                     x0.data_ptr<int64_t>(), conf.data_ptr<float>(),
                                     workspace.defined() ? workspace.data_ptr() : nullptr, stream));
  });
  return {x0, conf};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) { m.impl("denoise_step", &denoise_step_cuda); }

}  // namespace dllm_torch
