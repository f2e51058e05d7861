// csrc/cpu/commit.cpp — CPU implementation of dllm_kernels::commit_
// (checks in csrc/torch/checks.cpp).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "checks.h"
#include "dllm/cpu/commit.h"

namespace dllm_torch {

namespace {

void commit_cpu(at::Tensor& x,               // [B, L] int64/int32, written in place
                const at::Tensor& x0,        // [B, L] same dtype as x
                const at::Tensor& transfer)  // [B, L] bool
{
  commit_check(x, x0, transfer);
  const int64_t B = x.size(0), L = x.size(1);
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(L, 1));
  AT_DISPATCH_INDEX_TYPES(x.scalar_type(), "commit_", [&] {
    const auto xv = dllm::view2d(x.data_ptr<index_t>(), x.stride(0), x.stride(1));
    const auto x0v = dllm::view2d(x0.const_data_ptr<index_t>(), x0.stride(0), x0.stride(1));
    const auto tv =
        dllm::view2d(reinterpret_cast<const uint8_t*>(transfer.const_data_ptr<bool>()), transfer.stride(0), transfer.stride(1));
    at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
      dllm::cpu::commit_rows<index_t>(xv, x0v, tv, L, begin, end);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("commit_", &commit_cpu); }

}  // namespace dllm_torch
