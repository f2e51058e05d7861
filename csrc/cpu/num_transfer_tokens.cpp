// csrc/cpu/num_transfer_tokens.cpp — CPU implementation of dllm_kernels::num_transfer_tokens
// (checks in csrc/torch/checks.cpp).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

#include "checks.h"
#include "dllm/cpu/num_transfer_tokens.h"

namespace dllm_torch {

namespace {

at::Tensor num_transfer_tokens_cpu(const at::Tensor& mask_index,  // [B, L] bool
                                   int64_t steps) {
  num_transfer_tokens_check(mask_index, steps);
  const int64_t B = mask_index.size(0), L = mask_index.size(1);
  at::Tensor out = at::empty({B, steps}, mask_index.options().dtype(at::kLong));  // [B, steps]
  const auto mv = dllm::view2d(reinterpret_cast<const uint8_t*>(mask_index.const_data_ptr<bool>()), mask_index.stride(0),
                               mask_index.stride(1));
  const auto ov = dllm::view2d(out.data_ptr<int64_t>(), out.stride(0), out.stride(1));
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(L + steps, 1));
  at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
    dllm::cpu::num_transfer_tokens_rows(mv, ov, L, steps, begin, end);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) {
  m.impl("num_transfer_tokens", &num_transfer_tokens_cpu);
}

}  // namespace dllm_torch
