// csrc/cuda/select_transfer.cu — CUDA implementation of dllm_kernels::select_transfer (checks in
// csrc/torch/checks.cpp).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda_check.h"
#include "dllm/cuda/select_transfer.cuh"
#include "checks.h"

namespace dllm_torch {
namespace {

at::Tensor select_transfer_cuda(const at::Tensor& conf,  // [B, L] float32
                                c10::string_view rule,
                                const std::optional<at::Tensor>& per_row,  // [B] int64 | float32
                                double value, bool strict, int64_t seed, int64_t offset) {
  constexpr const char* op = "select_transfer";
  const SelectArgs a = select_transfer_check(conf, rule, per_row, value, strict, seed, offset, op);
  const c10::cuda::CUDAGuard guard(conf.device());
  const int64_t B = conf.size(0), L = conf.size(1);
  DLLM_CHECK_ARG(a.rule != dllm::SelectRule::kEntropyBound || L <= 4096, op, "entropy_bound",
                 "needs L <= 4096 on CUDA, got L = ", L);
  at::Tensor out = at::empty({B, L}, conf.options().dtype(at::kBool));  // [B, L]
  // per_row is read in place with its stride (a column of a [B, steps] schedule: no copy kernel).
  const int64_t* k_rows =
      a.rule == dllm::SelectRule::kNumTransfer ? per_row->const_data_ptr<int64_t>() : nullptr;
  const float* p_rows =
      a.rule == dllm::SelectRule::kProbability ? per_row->const_data_ptr<float>() : nullptr;
  const int64_t rows_stride = per_row.has_value() ? per_row->stride(0) : 1;
  const auto cv = dllm::view2d(conf.const_data_ptr<float>(), conf.stride(0), conf.stride(1));
  const auto ov =
      dllm::view2d(reinterpret_cast<uint8_t*>(out.data_ptr<bool>()), out.stride(0), out.stride(1));
  DLLM_CUDA_CHECK(op, dllm::cuda::select_transfer(cv, a.rule, a.value, a.strict, k_rows, p_rows,
                                                  a.seed, a.offset, B, L, ov,
                                                  at::cuda::getCurrentCUDAStream(), rows_stride));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) { m.impl("select_transfer", &select_transfer_cuda); }

}  // namespace dllm_torch
