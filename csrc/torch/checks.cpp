// csrc/torch/checks.cpp — the argument checks of every op, called by both its CPU and CUDA
// implementations so that the two backends accept and reject exactly the same inputs. The Python
// mirror (for the reference ops and the fake kernels) is dllm_kernels/_checks.py.
#include "checks.h"

#include <cmath>
#include <limits>

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

dllm::DenoiseParams denoise_step_check(const at::Tensor& logits, const at::Tensor& x,
                                       int64_t mask_id, double temperature, int64_t top_k,
                                       double top_p, c10::string_view filter_order,
                                       c10::string_view confidence,
                                       c10::string_view confidence_source, bool shift_logits,
                                       const std::optional<at::Tensor>& suppress_tokens,
                                       int64_t seed, int64_t offset, const char* op) {
  check_dim(logits, 3, op, "logits");
  const auto dt = logits.scalar_type();
  DLLM_CHECK_ARG(dt == at::kFloat || dt == at::kBFloat16 || dt == at::kHalf, op, "logits",
                 "must have dtype Float, BFloat16 or Half, got ", dt);
  DLLM_CHECK_ARG(logits.size(2) >= 1, op, "logits", "must have a vocabulary of at least 1, got shape ",
                 logits.sizes());
  DLLM_CHECK_ARG(logits.size(2) == 1 || logits.stride(2) == 1, op, "logits",
                 "must be contiguous in the last (vocabulary) dim, got strides ", logits.strides());
  check_dim(x, 2, op, "x");
  check_dtype(x, at::kLong, op, "x");
  check_same_device(x, logits, op, "x", "logits");
  DLLM_CHECK_ARG(x.size(0) == logits.size(0) && x.size(1) == logits.size(1), op, "x",
                 "must have shape [B, L] like logits ", logits.sizes(), ", got ", x.sizes());
  DLLM_CHECK_ARG(mask_id >= 0, op, "mask_id", "must be >= 0, got ", mask_id);
  DLLM_CHECK_ARG(temperature >= 0 && temperature < std::numeric_limits<double>::infinity(), op,
                 "temperature", "must be finite and >= 0, got ", temperature);
  DLLM_CHECK_ARG(top_k >= 0, op, "top_k", "must be >= 0 (0 = off), got ", top_k);
  DLLM_CHECK_ARG(top_p > 0 && top_p <= 1, op, "top_p", "must be in (0, 1], got ", top_p);
  DLLM_CHECK_ARG(filter_order == "top_k_first" || filter_order == "top_p_first", op,
                 "filter_order", "must be 'top_k_first' or 'top_p_first', got '", filter_order, "'");
  dllm::Confidence conf_kind;
  if (confidence == "prob") conf_kind = dllm::Confidence::kProb;
  else if (confidence == "margin") conf_kind = dllm::Confidence::kMargin;
  else if (confidence == "neg_entropy") conf_kind = dllm::Confidence::kNegEntropy;
  else if (confidence == "random") conf_kind = dllm::Confidence::kRandom;
  else TORCH_CHECK(false, "dllm_kernels.", op, ": confidence must be one of 'prob', 'margin', "
                   "'neg_entropy', 'random', got '", confidence, "'");
  DLLM_CHECK_ARG(confidence_source == "raw" || confidence_source == "sampling", op,
                 "confidence_source", "must be 'raw' or 'sampling', got '", confidence_source, "'");
  if (suppress_tokens.has_value()) {
    const at::Tensor& s = *suppress_tokens;
    check_dim(s, 1, op, "suppress_tokens");
    check_dtype(s, at::kLong, op, "suppress_tokens");
    check_same_device(s, logits, op, "suppress_tokens", "logits");
    DLLM_CHECK_ARG(s.numel() == 0 || s.stride(0) == 1, op, "suppress_tokens", "must be contiguous");
    if (s.device().is_cpu() && s.numel() > 0) {  // on CUDA the Python wrapper checked the values
      const auto mn = s.min().item<int64_t>(), mx = s.max().item<int64_t>();
      DLLM_CHECK_ARG(mn >= 0 && mx < logits.size(2), op, "suppress_tokens",
                     "must be token ids in [0, ", logits.size(2), "), got ", mn, "..", mx);
    }
  }
  DLLM_CHECK_ARG(offset >= 0 && offset < (int64_t(1) << 32), op, "offset",
                 "must be in [0, 2^32), got ", offset);
  dllm::DenoiseParams p{};
  p.mask_id = mask_id;
  p.sample = temperature > 0;
  p.inv_temperature = p.sample ? static_cast<float>(1.0 / temperature) : 1.0f;
  p.top_k = top_k;
  p.top_p = top_p;
  p.top_p_first = filter_order == "top_p_first";
  p.confidence = conf_kind;
  p.source_sampling = confidence_source == "sampling";
  p.shift_logits = shift_logits;
  p.seed = static_cast<uint64_t>(seed);
  p.offset = static_cast<uint32_t>(offset);
  return p;
}

SelectArgs select_transfer_check(const at::Tensor& conf, c10::string_view rule,
                                 const std::optional<at::Tensor>& per_row, double value,
                                 bool strict, int64_t seed, int64_t offset, const char* op) {
  check_dim(conf, 2, op, "conf");
  check_dtype(conf, at::kFloat, op, "conf");
  SelectArgs a{};
  if (rule == "num_transfer") a.rule = dllm::SelectRule::kNumTransfer;
  else if (rule == "threshold") a.rule = dllm::SelectRule::kThreshold;
  else if (rule == "factor") a.rule = dllm::SelectRule::kFactor;
  else if (rule == "probability") a.rule = dllm::SelectRule::kProbability;
  else TORCH_CHECK(false, "dllm_kernels.", op, ": rule must be one of 'num_transfer', "
                   "'threshold', 'factor', 'probability', got '", rule, "'");
  const bool needs_rows = a.rule == dllm::SelectRule::kNumTransfer ||
                          a.rule == dllm::SelectRule::kProbability;
  const char* row_arg = a.rule == dllm::SelectRule::kNumTransfer ? "num_transfer" : "probability";
  if (needs_rows) {
    DLLM_CHECK_ARG(per_row.has_value(), op, row_arg, "must be given for rule '", rule, "'");
    const at::Tensor& r = *per_row;
    check_dim(r, 1, op, row_arg);
    check_dtype(r, a.rule == dllm::SelectRule::kNumTransfer ? at::kLong : at::kFloat, op, row_arg);
    check_same_device(r, conf, op, row_arg, "conf");
    DLLM_CHECK_ARG(r.size(0) == conf.size(0), op, row_arg, "must have shape [B] = [",
                   conf.size(0), "], got ", r.sizes());
  } else {
    DLLM_CHECK_ARG(!std::isnan(value), op, rule == "threshold" ? "threshold" : "factor",
                   "must not be NaN");
    DLLM_CHECK_ARG(a.rule != dllm::SelectRule::kFactor || value > 0, op, "factor",
                   "must be > 0, got ", value);
  }
  DLLM_CHECK_ARG(offset >= 0 && offset < (int64_t(1) << 32), op, "offset",
                 "must be in [0, 2^32), got ", offset);
  a.value = value;
  a.strict = strict;
  a.seed = static_cast<uint64_t>(seed);
  a.offset = static_cast<uint32_t>(offset);
  return a;
}

}  // namespace dllm_torch
