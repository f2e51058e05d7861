// csrc/torch/checks.h — argument checks shared by the torch glue of every op. Every message reads
// "dllm_kernels.<op>: <argument> <problem>, got <what was passed>", so the user sees which op and
// which argument is at fault.
#pragma once

#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#define DLLM_CHECK_ARG(cond, op, arg, ...) \
  TORCH_CHECK((cond), "dllm_kernels.", op, ": ", arg, " ", __VA_ARGS__)

namespace dllm_torch {

inline void check_dim(const at::Tensor& t, int64_t dim, const char* op, const char* arg) {
  DLLM_CHECK_ARG(t.dim() == dim, op, arg, "must be ", dim, "-D, got shape ", t.sizes());
}

inline void check_dtype(const at::Tensor& t, at::ScalarType dtype, const char* op,
                        const char* arg) {
  DLLM_CHECK_ARG(t.scalar_type() == dtype, op, arg, "must have dtype ", dtype, ", got ",
                 t.scalar_type());
}

inline void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op,
                              const char* arg, const char* ref_arg) {
  DLLM_CHECK_ARG(t.device() == ref.device(), op, arg, "must be on the same device as ", ref_arg,
                 " (", ref.device(), "), got ", t.device());
}

inline void check_same_shape(const at::Tensor& t, const at::Tensor& ref, const char* op,
                             const char* arg, const char* ref_arg) {
  DLLM_CHECK_ARG(t.sizes() == ref.sizes(), op, arg, "must have the same shape as ", ref_arg, " ",
                 ref.sizes(), ", got ", t.sizes());
}

// An in-place output must not alias itself (an expanded tensor would race and lose writes).
inline void check_writable(const at::Tensor& t, const char* op, const char* arg) {
  DLLM_CHECK_ARG(at::has_internal_overlap(t) != at::MemOverlap::Yes, op, arg,
                 "is written in place and must not have internal overlap (e.g. an expanded "
                 "tensor), got strides ",
                 t.strides());
}

// Per-op checks (checks.cpp).
void commit_check(const at::Tensor& x, const at::Tensor& x0, const at::Tensor& transfer);
void num_transfer_tokens_check(const at::Tensor& mask_index, int64_t steps);

}  // namespace dllm_torch
