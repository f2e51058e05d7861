// csrc/cpu/select_transfer.cpp — CPU implementation of dllm_kernels::select_transfer
// (checks in csrc/torch/checks.cpp).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

#include "checks.h"
#include "cpu_ops.h"
#include "dllm/cpu/select_transfer.h"

namespace dllm_torch {

at::Tensor select_transfer_run(const at::Tensor& conf,                     // [B, L] float32
                               const SelectArgs& a,
                               const std::optional<at::Tensor>& per_row) {  // [B] int64 | float32
  const int64_t B = conf.size(0), L = conf.size(1);
  at::Tensor out = at::empty({B, L}, conf.options().dtype(at::kBool));  // [B, L]
  const at::Tensor rows = per_row.has_value() ? per_row->contiguous() : at::Tensor();
  const int64_t* k = a.rule == dllm::SelectRule::kNumTransfer ? rows.const_data_ptr<int64_t>() : nullptr;
  const float* prob = a.rule == dllm::SelectRule::kProbability ? rows.const_data_ptr<float>() : nullptr;
  const dllm::SelectParams p{a.rule, a.value, a.strict, a.seed, a.offset};
  const auto cv = dllm::view2d(conf.const_data_ptr<float>(), conf.stride(0), conf.stride(1));
  const auto ov = dllm::view2d(reinterpret_cast<uint8_t*>(out.data_ptr<bool>()), out.stride(0),
                               out.stride(1));
  at::parallel_for(0, B, std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)),
                   [&](int64_t begin, int64_t end) {
                     dllm::cpu::select_transfer_rows(cv, k, prob, p, L, ov, begin, end);
                   });
  return out;
}

namespace {

at::Tensor select_transfer_cpu(const at::Tensor& conf,                   // [B, L] float32
                               c10::string_view rule,
                               const std::optional<at::Tensor>& per_row,  // [B] int64 | float32
                               double value, bool strict, int64_t seed, int64_t offset) {
  const SelectArgs a = select_transfer_check(conf, rule, per_row, value, strict, seed, offset,
                                             "select_transfer");
  return select_transfer_run(conf, a, per_row);
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("select_transfer", &select_transfer_cpu); }

}  // namespace dllm_torch
