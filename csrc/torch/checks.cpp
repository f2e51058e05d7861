// csrc/torch/checks.cpp — the argument checks of every op, called by both its CPU and CUDA
// implementations so that the two backends accept and reject exactly the same inputs. The Python
// mirror (for the reference ops and the fake kernels) is dllm_kernels/_checks.py.
#include "checks.h"

namespace dllm_torch {

void commit_check(const at::Tensor& x, const at::Tensor& x0, const at::Tensor& transfer) {
  constexpr const char* op = "commit_";
  check_dim(x, 2, op, "x");
  DLLM_CHECK_ARG(x.scalar_type() == at::kLong || x.scalar_type() == at::kInt, op, "x",
                 "must have dtype Long (int64) or Int (int32), got ", x.scalar_type());
  check_same_device(x0, x, op, "x0", "x");
  check_same_device(transfer, x, op, "transfer", "x");
  check_dtype(x0, x.scalar_type(), op, "x0");
  check_dtype(transfer, at::kBool, op, "transfer");
  check_same_shape(x0, x, op, "x0", "x");
  check_same_shape(transfer, x, op, "transfer", "x");
  check_writable(x, op, "x");
  check_no_overlap(x, x0, op, "x0", "x");
  check_no_overlap(x, transfer, op, "transfer", "x");
}

void num_transfer_tokens_check(const at::Tensor& mask_index, int64_t steps) {
  constexpr const char* op = "num_transfer_tokens";
  check_dim(mask_index, 2, op, "mask_index");
  check_dtype(mask_index, at::kBool, op, "mask_index");
  DLLM_CHECK_ARG(steps >= 1, op, "steps", "must be >= 1, got ", steps);
}

}  // namespace dllm_torch
