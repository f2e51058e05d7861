// csrc/torch/checks.cpp — the argument checks of every op, called by its CPU and CUDA
// implementations and its Meta (fake) kernel (meta.cpp), so that every backend and torch.compile
// accept and reject exactly the same inputs. Sizes and strides are read as SymInts and value reads
// are skipped on meta tensors (see checks.h). The Python mirror, run only where the reference ops
// run, is dllm_kernels/_checks.py (same messages).
#include "checks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <vector>
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

dllm::DenoiseParams denoise_step_check(
    const at::Tensor& logits, const at::Tensor& x, int64_t mask_id, double temperature,
    int64_t top_k, double top_p, c10::string_view filter_order, c10::string_view confidence,
    c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens, int64_t seed, int64_t offset, const char* op,
    const std::optional<at::Tensor>& eligible, const std::optional<at::Tensor>& uncond_logits,
    double cfg_scale, const std::optional<at::Tensor>& argmax) {
  check_dim(logits, 3, op, "logits");
  const auto dt = logits.scalar_type();
  DLLM_CHECK_ARG(dt == at::kFloat || dt == at::kBFloat16 || dt == at::kHalf, op, "logits",
                 "must have dtype Float, BFloat16 or Half, got ", dt);
  DLLM_CHECK_ARG(logits.sym_size(2) >= 1, op, "logits",
                 "must have a vocabulary of at least 1, got shape ", logits.sym_sizes());
  DLLM_CHECK_ARG(logits.sym_size(2) == 1 || logits.sym_stride(2) == 1, op, "logits",
                 "must be contiguous in the last (vocabulary) dim, got strides ",
                 logits.sym_strides());
  check_dim(x, 2, op, "x");
  check_dtype(x, at::kLong, op, "x");
  check_same_device(x, logits, op, "x", "logits");
  DLLM_CHECK_ARG(x.sym_size(0) == logits.sym_size(0) && x.sym_size(1) == logits.sym_size(1), op,
                 "x", "must have shape [B, L] like logits ", logits.sym_sizes(), ", got ",
                 x.sym_sizes());
  if (eligible.has_value()) {  // replaces x == mask_id (mask_id unused)
    const at::Tensor& e = *eligible;
    check_dtype(e, at::kBool, op, "eligible");
    check_same_device(e, logits, op, "eligible", "logits");
    DLLM_CHECK_ARG(e.sym_sizes() == x.sym_sizes(), op, "eligible",
                   "must have shape [B, L] = ", x.sym_sizes(), " like x, got ", e.sym_sizes());
  } else {
    DLLM_CHECK_ARG(mask_id >= 0, op, "mask_id", "must be >= 0, got ", mask_id);
  }
  if (uncond_logits.has_value()) {
    const at::Tensor& u = *uncond_logits;
    check_same_device(u, logits, op, "uncond_logits", "logits");
    check_dtype(u, dt, op, "uncond_logits");
    check_same_shape(u, logits, op, "uncond_logits", "logits");
    DLLM_CHECK_ARG(u.sym_size(2) == 1 || u.sym_stride(2) == 1, op, "uncond_logits",
                   "must be contiguous in the last (vocabulary) dim, got strides ",
                   u.sym_strides());
    DLLM_CHECK_ARG(cfg_scale >= 0 && cfg_scale < std::numeric_limits<double>::infinity(), op,
                   "cfg_scale", "must be finite and >= 0, got ", cfg_scale);
  } else {
    DLLM_CHECK_ARG(cfg_scale == 0.0, op, "cfg_scale", "must be 0 without uncond_logits, got ",
                   cfg_scale);
  }
  if (argmax.has_value()) {  // return_argmax's output, written by the op
    const at::Tensor& a = *argmax;
    check_dtype(a, at::kLong, op, "argmax");
    check_same_device(a, logits, op, "argmax", "logits");
    DLLM_CHECK_ARG(a.sym_sizes() == x.sym_sizes(), op, "argmax",
                   "must have shape [B, L] = ", x.sym_sizes(), " like x, got ", a.sym_sizes());
    DLLM_CHECK_ARG(a.sym_size(1) <= 1 || a.sym_stride(1) == 1, op, "argmax",
                   "must be contiguous in its last dim, got strides ", a.sym_strides());
    check_writable(a, op, "argmax");
    check_disjoint(a, x, op, "x", "argmax");
    if (eligible.has_value()) check_disjoint(a, *eligible, op, "eligible", "argmax");
  }
  DLLM_CHECK_ARG(temperature >= 0 && temperature < std::numeric_limits<double>::infinity(), op,
                 "temperature", "must be finite and >= 0, got ", temperature);
  DLLM_CHECK_ARG(top_k >= 0, op, "top_k", "must be >= 0 (0 = off), got ", top_k);
  DLLM_CHECK_ARG(top_p > 0 && top_p <= 1, op, "top_p", "must be in (0, 1], got ", top_p);
  DLLM_CHECK_ARG(filter_order == "top_k_first" || filter_order == "top_p_first", op, "filter_order",
                 "must be 'top_k_first' or 'top_p_first', got '", filter_order, "'");
  dllm::Confidence conf_kind;
  if (confidence == "prob")
    conf_kind = dllm::Confidence::kProb;
  else if (confidence == "margin")
    conf_kind = dllm::Confidence::kMargin;
  else if (confidence == "neg_entropy")
    conf_kind = dllm::Confidence::kNegEntropy;
  else if (confidence == "random")
    conf_kind = dllm::Confidence::kRandom;
  else
    TORCH_CHECK(false, "dllm_kernels.", op,
                ": confidence must be one of 'prob', 'margin', "
                "'neg_entropy', 'random', got '",
                confidence, "'");
  DLLM_CHECK_ARG(confidence_source == "raw" || confidence_source == "sampling", op,
                 "confidence_source", "must be 'raw' or 'sampling', got '", confidence_source, "'");
  // The kernels' exact confidence sums (multiples of 2^-40 in int64) hold up to 2^23 terms.
  DLLM_CHECK_ARG(logits.is_meta() || logits.size(2) < (int64_t(1) << 23), op, "logits",
                 "must have a vocabulary (last dim) of < 2^23 tokens (the exact confidence sums "
                 "are int64), got ",
                 logits.size(2));
  if (suppress_tokens.has_value()) {
    const at::Tensor& s = *suppress_tokens;
    check_dim(s, 1, op, "suppress_tokens");
    check_dtype(s, at::kLong, op, "suppress_tokens");
    check_same_device(s, logits, op, "suppress_tokens", "logits");
    DLLM_CHECK_ARG(s.sym_numel() == 0 || s.sym_stride(0) == 1, op, "suppress_tokens",
                   "must be contiguous");
    // The ids are read on CPU only: on CUDA that would be a device sync per step (ops.py checks a
    // list while converting it; a CUDA tensor is used as given), on meta there is no data.
    if (s.device().is_cpu() && s.numel() > 0) {
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
  p.cfg = uncond_logits.has_value() && cfg_scale != 0.0;  // s = 0: the conditional logits
  p.cfg_scale1 = static_cast<float>(cfg_scale + 1.0);
  if (x.is_meta()) return p;  // the Meta kernel: no data, (possibly symbolic) strides unread
  if (eligible.has_value()) {
    p.eligible = reinterpret_cast<const uint8_t*>(eligible->const_data_ptr<bool>());
    p.eligible_sb = eligible->stride(0);
    p.eligible_sl = eligible->stride(1);
  }
  if (argmax.has_value()) {
    p.argmax = argmax->data_ptr<int64_t>();
    p.argmax_sb = argmax->stride(0);
  }
  if (p.cfg) {
    p.uncond = uncond_logits->const_data_ptr();
    p.uncond_sb = uncond_logits->stride(0);
    p.uncond_sl = uncond_logits->stride(1);
  }
  return p;
}

namespace {
// A small tensor of the shard pieces: dtype, shape, device, contiguous.
void check_rows(const at::Tensor& t, at::ScalarType dtype, at::IntArrayRef shape,
                const at::Device& device, const char* op, const char* arg) {
  check_dtype(t, dtype, op, arg);
  DLLM_CHECK_ARG(t.device() == device, op, arg, "must be on ", device, ", got ", t.device());
  DLLM_CHECK_ARG(t.sizes() == shape, op, arg, "must have shape ", shape, ", got ", t.sizes());
  DLLM_CHECK_ARG(t.is_contiguous(), op, arg, "must be contiguous");
}
const at::Device kCpu{at::kCPU};
}  // namespace

ShardStage denoise_shard_stage(c10::string_view s) {
  if (s == "top_k") return ShardStage::kTopK;
  if (s == "range") return ShardStage::kRange;
  if (s == "hist") return ShardStage::kHist;
  if (s == "members") return ShardStage::kMembers;
  if (s == "state") return ShardStage::kState;
  if (s == "top_p_level") return ShardStage::kTopPLevel;
  DLLM_CHECK_ARG(s == "sums", "denoise_shard", "stage",
                 "must be one of top_k, range, hist, members, state, sums, top_p_level; got '", s,
                 "'");
  return ShardStage::kSums;
}

ShardStage denoise_shard_check(const at::Tensor& x, int64_t vocab_start, c10::string_view stage,
                               const std::optional<at::Tensor>& threshold,
                               const std::optional<at::Tensor>& anchor,
                               const std::optional<at::Tensor>& bucket, int64_t shift) {
  const char* op = "denoise_shard";
  const ShardStage st = denoise_shard_stage(stage);
  DLLM_CHECK_ARG(vocab_start >= 0 && vocab_start % 4 == 0, op, "vocab_start",
                 "must be >= 0 and a multiple of 4 (the Gumbel noise comes in groups of 4 token "
                 "ids), got ",
                 vocab_start);
  const bool cpu_only = st == ShardStage::kHist || st == ShardStage::kMembers;
  DLLM_CHECK_ARG(!x.is_cuda() || !cpu_only, op, "stage", "'", stage,
                 "' has no CUDA kernel (top-p over CUDA shards: the top_p_level stage)");
  DLLM_CHECK_ARG(x.is_cuda() || st != ShardStage::kTopPLevel, op, "stage",
                 "'top_p_level' is CUDA's (top-p over CPU shards: the hist and members stages)");
  DLLM_CHECK_ARG(
      st != ShardStage::kTopPLevel || shift == 24 || shift == 16 || shift == 8 || shift == 0, op,
      "shift", "must be 24, 16, 8 or 0, got ", shift);
  const std::vector<int64_t> bl{x.size(0), x.size(1)};
  if (threshold.has_value()) check_rows(*threshold, at::kFloat, bl, x.device(), op, "threshold");
  const bool needs_anchor = st == ShardStage::kHist || st == ShardStage::kMembers ||
                            st == ShardStage::kSums || st == ShardStage::kTopPLevel;
  DLLM_CHECK_ARG(!needs_anchor || anchor.has_value(), op, "anchor", "is needed by this stage");
  if (anchor.has_value()) check_rows(*anchor, at::kFloat, bl, x.device(), op, "anchor");
  const bool needs_bucket = st == ShardStage::kMembers || st == ShardStage::kTopPLevel;
  DLLM_CHECK_ARG(!needs_bucket || bucket.has_value(), op, "bucket", "is needed by this stage");
  if (bucket.has_value()) check_rows(*bucket, at::kLong, bl, x.device(), op, "bucket");
  return st;
}

dllm::DenoiseParams denoise_shard_finalize_check(const at::Tensor& state, const at::Tensor& sums,
                                                 const at::Tensor& x, int64_t mask_id,
                                                 c10::string_view confidence, int64_t seed,
                                                 int64_t offset,
                                                 const std::optional<at::Tensor>& eligible) {
  const char* op = "denoise_shard_finalize";
  check_dim(x, 2, op, "x");
  check_dtype(x, at::kLong, op, "x");
  check_rows(state, at::kDouble, {x.size(0), x.size(1), 8}, x.device(), op, "state");
  check_rows(sums, at::kLong, {x.size(0), x.size(1), 2}, x.device(), op, "sums");
  // The rest as denoise_step checks it (a one-token logits stand-in: no value is read).
  const at::Tensor stand_in = at::empty({x.size(0), x.size(1), 1}, x.options().dtype(at::kFloat));
  return denoise_step_check(stand_in, x, mask_id, 0.0, 0, 1.0, "top_k_first", confidence, "raw",
                            false, std::nullopt, seed, offset, op, eligible);
}

void top_p_shard_plan_check(const at::Tensor& hist, double top_p, const at::Tensor& start,
                            const at::Tensor& above) {
  const char* op = "top_p_shard_plan";
  check_dim(hist, 2, op, "hist");
  check_rows(hist, at::kDouble, {hist.size(0), 4096}, kCpu, op, "hist");
  DLLM_CHECK_ARG(top_p > 0 && top_p < 1, op, "top_p", "must be in (0, 1), got ", top_p);
  check_rows(start, at::kLong, {hist.size(0)}, kCpu, op, "start");
  check_rows(above, at::kDouble, {hist.size(0)}, kCpu, op, "above");
}

void top_p_shard_walk_check(const at::Tensor& members, const at::Tensor& m, const at::Tensor& need,
                            const at::Tensor& above) {
  const char* op = "top_p_shard_walk";
  check_dim(members, 2, op, "members");
  const int64_t N = members.size(0);
  check_rows(members, at::kFloat, {N, members.size(1)}, kCpu, op, "members");
  check_rows(m, at::kFloat, {N}, kCpu, op, "m");
  check_rows(need, at::kDouble, {N}, kCpu, op, "need");
  check_rows(above, at::kDouble, {N}, kCpu, op, "above");
}

void denoise_and_select_extras_check(const at::Tensor& x, const std::optional<at::Tensor>& eligible,
                                     c10::string_view confidence, c10::string_view rule,
                                     bool commit, bool renoise, const char* op) {
  DLLM_CHECK_ARG(rule != "entropy_bound" || confidence == "neg_entropy", op, "entropy_bound",
                 "needs confidence='neg_entropy', got '", confidence, "'");
  DLLM_CHECK_ARG(!renoise || commit, op, "renoise", "needs commit=True (it writes x)");
  DLLM_CHECK_ARG(!renoise || eligible.has_value(), op, "renoise",
                 "needs eligible (the positions renoised when not transferred)");
  if (commit && eligible.has_value()) check_no_overlap(x, *eligible, op, "eligible", "x");
}

SelectArgs select_transfer_check(const at::Tensor& conf, c10::string_view rule,
                                 const std::optional<at::Tensor>& per_row, double value,
                                 bool strict, int64_t seed, int64_t offset, const char* op) {
  check_dim(conf, 2, op, "conf");
  check_dtype(conf, at::kFloat, op, "conf");
  SelectArgs a{};
  if (rule == "num_transfer")
    a.rule = dllm::SelectRule::kNumTransfer;
  else if (rule == "threshold")
    a.rule = dllm::SelectRule::kThreshold;
  else if (rule == "factor")
    a.rule = dllm::SelectRule::kFactor;
  else if (rule == "probability")
    a.rule = dllm::SelectRule::kProbability;
  else if (rule == "entropy_bound")
    a.rule = dllm::SelectRule::kEntropyBound;
  else
    TORCH_CHECK(false, "dllm_kernels.", op,
                ": rule must be one of 'num_transfer', "
                "'threshold', 'factor', 'probability', 'entropy_bound', got '",
                rule, "'");
  const bool needs_rows =
      a.rule == dllm::SelectRule::kNumTransfer || a.rule == dllm::SelectRule::kProbability;
  const char* row_arg = a.rule == dllm::SelectRule::kNumTransfer ? "num_transfer" : "probability";
  if (needs_rows) {
    DLLM_CHECK_ARG(per_row.has_value(), op, row_arg, "must be given for rule '", rule, "'");
    const at::Tensor& r = *per_row;
    check_dim(r, 1, op, row_arg);
    check_dtype(r, a.rule == dllm::SelectRule::kNumTransfer ? at::kLong : at::kFloat, op, row_arg);
    check_same_device(r, conf, op, row_arg, "conf");
    DLLM_CHECK_ARG(r.sym_size(0) == conf.sym_size(0), op, row_arg, "must have shape [B] = [",
                   conf.sym_size(0), "], got ", r.sym_sizes());
    // k >= 0 is read on CPU only (on CUDA a negative k selects nothing, like k = 0).
    if (a.rule == dllm::SelectRule::kNumTransfer && r.device().is_cpu() && r.numel() > 0) {
      const auto mn = r.min().item<int64_t>();
      DLLM_CHECK_ARG(mn >= 0, op, "num_transfer", "must be >= 0, got ", mn);
    }
  } else {
    const char* arg = rule == "threshold" ? "threshold"
                      : rule == "factor"  ? "factor"
                                          : "entropy_bound";
    DLLM_CHECK_ARG(!std::isnan(value), op, arg, "must not be NaN");
    DLLM_CHECK_ARG(a.rule == dllm::SelectRule::kThreshold || value > 0, op, arg,
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

namespace dllm_torch {

namespace {

// A size as an int, -1 when it is symbolic (meta tensors under torch.compile: only checks run).
int64_t as_int_or(const c10::SymInt& s) { return s.maybe_as_int().value_or(-1); }

// The index tensor's values on the host (a device sync for CUDA tensors), as a flat int64 vector.
std::vector<int64_t> host_values(const at::Tensor& t) {
  const at::Tensor h = t.to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(h.const_data_ptr<int64_t>(), h.const_data_ptr<int64_t>() + h.numel());
}

// k_cache and v_cache share memory? Never says no when they do. Exact for separate tensors, the
// two halves of one [P, 2, S, H, D] allocation (interleaved page by page) and layers of a bigger
// one; other interleavings (e.g. halves of [P, S, 2, H, D]) are rejected conservatively.
bool cache_pair_overlaps(const at::Tensor& a, const at::Tensor& b) {
  if (a.is_meta() || b.is_meta()) return false;  // no memory: checked when the op runs
  if (a.numel() == 0 || b.numel() == 0 || !a.has_storage() || !b.has_storage()) return false;
  if (!a.storage().is_alias_of(b.storage())) return false;
  auto extent = [](const at::Tensor& t, int64_t first_dim) {  // elements spanned by dims >= first
    int64_t e = 1;
    for (int64_t d = first_dim; d < t.dim(); ++d) e += (t.size(d) - 1) * t.stride(d);
    return e;
  };
  const int64_t oa = a.storage_offset(), ob = b.storage_offset();
  if (oa + extent(a, 0) <= ob || ob + extent(b, 0) <= oa) return false;  // disjoint spans
  const int64_t period = a.stride(0), page = extent(a, 1);
  if (a.strides() != b.strides() || a.sizes() != b.sizes() || period <= 0 || page > period)
    return true;
  // Both repeat every `period` elements with one page of `page` elements: compare on the circle.
  const int64_t da = ((oa - ob) % period + period) % period;
  return da < page || period - da < page;
}

// Row by row: 0 <= lens[b] <= max_pages * page_size, then the page ids row b uses are in
// [0, num_pages) (reads both tensors: a device sync on CUDA). lens_arg names lens in messages.
void check_table_values(const at::Tensor& lens_t, const at::Tensor& table_t, const CacheDims& d,
                        const char* op, const char* lens_arg) {
  const std::vector<int64_t> lens = host_values(lens_t), table = host_values(table_t);
  const int64_t max_pages = table_t.size(1), cap = max_pages * d.page_size;
  for (size_t b = 0; b < lens.size(); ++b) {
    TORCH_CHECK(lens[b] >= 0 && lens[b] <= cap, "dllm_kernels.", op, ": ", lens_arg, "[", b,
                "] = ", lens[b], " must be in [0, max_pages ", max_pages, " x page_size ",
                d.page_size, " = ", cap, "]");
    const int64_t used = (lens[b] + d.page_size - 1) / d.page_size;
    for (int64_t j = 0; j < used; ++j) {
      const int64_t page = table[b * max_pages + j];
      TORCH_CHECK(page >= 0 && page < d.num_pages, "dllm_kernels.", op, ": block_table[", b, ", ",
                  j, "] = ", page, " is not a page id in [0, ", d.num_pages, ") (row ", b,
                  " uses its first ", used, " entries)");
    }
  }
}

}  // namespace

CacheDims cache_pair_check(const at::Tensor& k_cache, const at::Tensor& v_cache, const char* op,
                           bool written) {
  check_dim(k_cache, 4, op, "k_cache");
  const auto dt = k_cache.scalar_type();
  DLLM_CHECK_ARG(dt == at::kFloat || dt == at::kBFloat16 || dt == at::kHalf, op, "k_cache",
                 "must have dtype Float, BFloat16 or Half, got ", dt);
  check_same_device(v_cache, k_cache, op, "v_cache", "k_cache");
  check_dtype(v_cache, dt, op, "v_cache");
  check_same_shape(v_cache, k_cache, op, "v_cache", "k_cache");
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"k_cache", k_cache},
                                std::pair<const char*, const at::Tensor&>{"v_cache", v_cache}}) {
    DLLM_CHECK_ARG(t.sym_size(3) <= 1 || t.sym_stride(3) == 1, op, name,
                   "must be contiguous in the last (head_dim) dim, got strides ", t.sym_strides());
    if (written) check_writable(t, op, name);
  }
  DLLM_CHECK_ARG(!written || !cache_pair_overlaps(k_cache, v_cache), op, "v_cache",
                 "must not share memory with k_cache, which is written in place (pass a copy)");
  const c10::SymIntArrayRef s = k_cache.sym_sizes();
  DLLM_CHECK_ARG(s[0] >= 1 && s[1] >= 1 && s[2] >= 1 && s[3] >= 1, op, "k_cache",
                 "must have num_pages, page_size, H_kv and D >= 1, got shape ", s);
  DLLM_CHECK_ARG(s[2] * s[3] <= (int64_t{1} << 24), op, "k_cache",
                 "must have H_kv * D <= 2^24 elements per token, got shape ", s);
  return {as_int_or(s[0]), as_int_or(s[1]), as_int_or(s[2]), as_int_or(s[3])};
}

CacheDims cache_write_check(const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& slot_mapping, bool check) {
  constexpr const char* op = "cache_write_";
  const CacheDims d = cache_pair_check(k_cache, v_cache, op, true);
  DLLM_CHECK_ARG(k.dim() == 3 || k.dim() == 4, op, "k",
                 "must be [N, H_kv, D] or [B, L, H_kv, D], got shape ", k.sym_sizes());
  DLLM_CHECK_ARG(k.sym_size(-2) == k_cache.sym_size(2) && k.sym_size(-1) == k_cache.sym_size(3), op,
                 "k", "must end in [H_kv, D] = [", k_cache.sym_size(2), ", ", k_cache.sym_size(3),
                 "] like k_cache, got shape ", k.sym_sizes());
  check_same_device(k, k_cache, op, "k", "k_cache");
  check_dtype(k, k_cache.scalar_type(), op, "k");
  check_same_device(v, k_cache, op, "v", "k_cache");
  check_dtype(v, k_cache.scalar_type(), op, "v");
  check_same_shape(v, k, op, "v", "k");
  check_dtype(slot_mapping, at::kLong, op, "slot_mapping");
  check_same_device(slot_mapping, k_cache, op, "slot_mapping", "k_cache");
  const c10::SymIntArrayRef tokens = k.sym_sizes().slice(0, k.dim() - 2);
  DLLM_CHECK_ARG(slot_mapping.sym_sizes() == tokens, op, "slot_mapping",
                 "must have the shape of k without [H_kv, D], ", tokens, ", got ",
                 slot_mapping.sym_sizes());
  for (const auto& [cache_name, cache] :
       {std::pair<const char*, const at::Tensor&>{"k_cache", k_cache},
        std::pair<const char*, const at::Tensor&>{"v_cache", v_cache}}) {
    check_disjoint(cache, k, op, "k", cache_name);
    check_disjoint(cache, v, op, "v", cache_name);
    check_disjoint(cache, slot_mapping, op, "slot_mapping", cache_name);
  }
  if (check && !slot_mapping.is_meta() && slot_mapping.numel() > 0) {
    const int64_t capacity = d.num_pages * d.page_size;
    std::vector<int64_t> slots = host_values(slot_mapping);
    for (size_t i = 0; i < slots.size(); ++i) {
      DLLM_CHECK_ARG(slots[i] < capacity, op, "slot_mapping", "holds slot ", slots[i],
                     " at flat index ", i, ", beyond the cache's ", capacity, " slots (num_pages ",
                     d.num_pages, " x page_size ", d.page_size, "); nothing was written");
    }
    slots.erase(std::remove_if(slots.begin(), slots.end(), [](int64_t s) { return s < 0; }),
                slots.end());
    std::sort(slots.begin(), slots.end());
    const auto dup = std::adjacent_find(slots.begin(), slots.end());
    DLLM_CHECK_ARG(dup == slots.end(), op, "slot_mapping", "holds slot ",
                   dup == slots.end() ? 0 : *dup,
                   " more than once (each slot may be written once per call); nothing was written");
  }
  return d;
}

CacheDims cache_gather_check(const at::Tensor& k_cache, const at::Tensor& v_cache,
                             const at::Tensor& block_table, const at::Tensor& kv_lens,
                             int64_t max_len) {
  constexpr const char* op = "cache_gather";
  const CacheDims d = cache_pair_check(k_cache, v_cache, op, false);
  check_same_device(block_table, k_cache, op, "block_table", "k_cache");
  check_dim(block_table, 2, op, "block_table");
  check_dtype(block_table, at::kInt, op, "block_table");
  check_dim(kv_lens, 1, op, "kv_lens");
  check_dtype(kv_lens, at::kInt, op, "kv_lens");
  check_same_device(kv_lens, block_table, op, "kv_lens", "block_table");
  DLLM_CHECK_ARG(kv_lens.sym_size(0) == block_table.sym_size(0), op, "kv_lens",
                 "must have shape [B] = [", block_table.sym_size(0), "] like block_table, got ",
                 kv_lens.sym_sizes());
  DLLM_CHECK_ARG(max_len >= 0, op, "max_len", "must be >= 0, got ", max_len);
  if (kv_lens.is_meta() || block_table.is_meta() || kv_lens.numel() == 0) return d;
  check_table_values(kv_lens, block_table, d, op, "kv_lens");
  return d;
}

CacheDims cache_copy_pages_check(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                 const at::Tensor& pairs) {
  constexpr const char* op = "cache_copy_pages_";
  const CacheDims d = cache_pair_check(k_cache, v_cache, op, true);
  check_dtype(pairs, at::kLong, op, "pairs");
  DLLM_CHECK_ARG(pairs.dim() == 2 && pairs.sym_size(1) == 2, op, "pairs",
                 "must be [n, 2] (src, dst), got shape ", pairs.sym_sizes());
  check_same_device(pairs, k_cache, op, "pairs", "k_cache");
  check_disjoint(k_cache, pairs, op, "pairs", "k_cache");
  check_disjoint(v_cache, pairs, op, "pairs", "v_cache");
  if (pairs.is_meta() || pairs.numel() == 0) return d;
  const std::vector<int64_t> p = host_values(pairs);
  for (size_t i = 0; i < p.size(); ++i) {
    TORCH_CHECK(p[i] >= 0 && p[i] < d.num_pages, "dllm_kernels.", op, ": pairs[", i / 2, ", ",
                i % 2, "] = ", p[i], " is not a page id in [0, ", d.num_pages, ")");
  }
  std::vector<int64_t> src, dst;
  for (size_t i = 0; i < p.size(); i += 2) {
    src.push_back(p[i]);
    dst.push_back(p[i + 1]);
  }
  std::sort(src.begin(), src.end());
  std::sort(dst.begin(), dst.end());
  DLLM_CHECK_ARG(std::adjacent_find(dst.begin(), dst.end()) == dst.end(), op, "pairs",
                 "must not copy to the same dst page twice");
  std::vector<int64_t> both;
  std::set_intersection(src.begin(), src.end(), dst.begin(), dst.end(), std::back_inserter(both));
  DLLM_CHECK_ARG(both.empty(), op, "pairs", "page ", both.empty() ? 0 : both.front(),
                 " is both a src and a dst (copies would depend on their order)");
  return d;
}

}  // namespace dllm_torch

namespace dllm_torch {

namespace {

void check_lens(const at::Tensor& t, const c10::SymInt& B, const at::Tensor& q, const char* op,
                const char* arg) {
  check_dim(t, 1, op, arg);
  check_dtype(t, at::kInt, op, arg);
  DLLM_CHECK_ARG(t.device() == q.device(), op, arg, "must be on the same device as q (", q.device(),
                 "), got ", t.device());
  DLLM_CHECK_ARG(t.sym_size(0) == B, op, arg, "must have shape [B] = [", B, "], got ",
                 t.sym_sizes());
}

}  // namespace

AttentionInputs block_attention_check(
    const at::Tensor& q, const std::optional<at::Tensor>& k, const std::optional<at::Tensor>& v,
    const std::optional<at::Tensor>& k_cache, const std::optional<at::Tensor>& v_cache,
    const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cache_lens,
    const std::optional<at::Tensor>& kv_lens, const std::optional<at::Tensor>& q_start,
    c10::string_view mask, int64_t block_size, double softmax_scale, bool check) {
  constexpr const char* op = "block_attention";
  check_dim(q, 4, op, "q");
  const auto dt = q.scalar_type();
  DLLM_CHECK_ARG(dt == at::kFloat || dt == at::kBFloat16 || dt == at::kHalf, op, "q",
                 "must have dtype Float, BFloat16 or Half, got ", dt);
  DLLM_CHECK_ARG(!(q.is_cuda() && dt == at::kFloat), op, "q",
                 "must be BFloat16 or Half on CUDA (Float attention is CPU only), got Float");
  const c10::SymInt B = q.sym_size(0), Hq = q.sym_size(2), D = q.sym_size(3);
  DLLM_CHECK_ARG(D == 64 || D == 96 || D == 128 || D == 256, op, "q",
                 "head_dim must be one of [64, 96, 128, 256], got ", D);
  DLLM_CHECK_ARG(q.sym_stride(3) == 1, op, "q",
                 "must be contiguous in the last (head_dim) dim, got strides ", q.sym_strides());
  DLLM_CHECK_ARG(Hq >= 1, op, "q", "must have at least one head, got shape ", q.sym_sizes());
  DLLM_CHECK_ARG(k.has_value() == v.has_value(), op, "k/v", "must be given together");
  std::optional<c10::SymInt> Hkv;  // unset: no keys yet
  if (k.has_value()) {
    for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"k", *k},
                                  std::pair<const char*, const at::Tensor&>{"v", *v}}) {
      check_dim(t, 4, op, name);
      check_same_device(t, q, op, name, "q");
      check_dtype(t, dt, op, name);
      DLLM_CHECK_ARG(t.sym_size(3) <= 1 || t.sym_stride(3) == 1, op, name,
                     "must be contiguous in the last (head_dim) dim, got strides ",
                     t.sym_strides());
    }
    DLLM_CHECK_ARG(k->sym_size(0) == B && k->sym_size(3) == D, op, "k",
                   "must be [B, Lk, Hkv, D] with B = ", B, ", D = ", D, ", got shape ",
                   k->sym_sizes());
    check_same_shape(*v, *k, op, "v", "k");
    Hkv = k->sym_size(2);
  }
  const bool has_cache = k_cache.has_value() || v_cache.has_value() || block_table.has_value();
  AttentionInputs r;
  if (has_cache) {
    DLLM_CHECK_ARG(k_cache.has_value() && v_cache.has_value() && block_table.has_value(), op,
                   "k_cache/v_cache/block_table", "must be given together");
    check_same_device(*k_cache, q, op, "k_cache", "q");
    cache_pair_check(*k_cache, *v_cache, op, false);
    check_dtype(*k_cache, dt, op, "k_cache");
    DLLM_CHECK_ARG(k_cache->sym_size(3) == D, op, "k_cache", "must have head_dim D = ", D,
                   " like q, got shape ", k_cache->sym_sizes());
    DLLM_CHECK_ARG(!Hkv || k_cache->sym_size(2) == *Hkv, op, "k_cache",
                   "must have Hkv = ", Hkv.value_or(-1), " heads like k, got shape ",
                   k_cache->sym_sizes());
    Hkv = k_cache->sym_size(2);
    check_same_device(*block_table, q, op, "block_table", "q");
    check_dim(*block_table, 2, op, "block_table");
    check_dtype(*block_table, at::kInt, op, "block_table");
    DLLM_CHECK_ARG(block_table->sym_size(0) == B, op, "block_table", "must have B = ", B,
                   " rows, got shape ", block_table->sym_sizes());
    r.block_table = block_table->contiguous();
  } else {
    DLLM_CHECK_ARG(!cache_lens.has_value(), op, "cache_lens",
                   "needs k_cache / v_cache / block_table");
  }
  if (!Hkv) Hkv = Hq;  // no keys at all: every query sees nothing
  DLLM_CHECK_ARG(*Hkv >= 1 && Hq % *Hkv == 0, op, "q", "heads Hq = ", Hq,
                 " must be a multiple of the key/value heads Hkv = ", *Hkv);
  r.Hkv = as_int_or(*Hkv);
  const c10::SymInt Lk = k.has_value() ? k->sym_size(1) : c10::SymInt(0);
  const c10::SymInt keys =
      (has_cache ? block_table->sym_size(1) * k_cache->sym_size(1) : c10::SymInt(0)) + Lk;
  DLLM_CHECK_ARG(keys < (int64_t{1} << 31), op, "k/k_cache",
                 "at most 2^31 - 1 keys per row (max_pages x page_size + Lk), got ", keys);
  const auto int_opts = q.options().dtype(at::kInt);
  if (cache_lens.has_value()) {
    check_lens(*cache_lens, B, q, op, "cache_lens");
    r.cache_lens = cache_lens->contiguous();
  } else {
    r.cache_lens = at::zeros_symint({B}, int_opts);
  }
  if (kv_lens.has_value()) {
    DLLM_CHECK_ARG(k.has_value(), op, "kv_lens", "needs k / v");
    check_lens(*kv_lens, B, q, op, "kv_lens");
    r.kv_lens = kv_lens->contiguous();
  } else {
    r.kv_lens = at::zeros_symint({B}, int_opts);  // the default Lk (meta tensors: no data)
    if (!r.kv_lens.is_meta()) r.kv_lens.fill_(Lk.expect_int());
  }
  if (q_start.has_value()) {
    check_lens(*q_start, B, q, op, "q_start");
    r.q_start = q_start->contiguous();
  } else {
    r.q_start = r.cache_lens;
  }
  DLLM_CHECK_ARG(mask == "full" || mask == "block_causal", op, "mask",
                 "must be one of ['full', 'block_causal'], got '", mask, "'");
  r.mask = mask == "block_causal" ? dllm::AttnMask::kBlockCausal : dllm::AttnMask::kFull;
  DLLM_CHECK_ARG(
      r.mask == dllm::AttnMask::kFull || (block_size >= 1 && block_size <= (int64_t{1} << 62)), op,
      "block_size", "must be in [1, 2^62], got ", block_size);
  r.block_size = r.mask == dllm::AttnMask::kBlockCausal ? block_size : 1;
  DLLM_CHECK_ARG(
      std::isfinite(softmax_scale) && std::abs(softmax_scale) <= std::numeric_limits<float>::max(),
      op, "softmax_scale", "must be finite (as float32), got ", softmax_scale);
  r.scale = softmax_scale;

  if (check && !q.is_meta() && B > 0) {  // value reads: tensors with data only
    if (has_cache) {
      check_table_values(
          r.cache_lens, r.block_table,
          CacheDims{k_cache->size(0), k_cache->size(1), k_cache->size(2), k_cache->size(3)}, op,
          "cache_lens");
    }
    if (kv_lens.has_value()) {
      const std::vector<int64_t> lens = host_values(r.kv_lens);
      for (size_t b = 0; b < lens.size(); ++b)
        TORCH_CHECK(lens[b] >= 0 && lens[b] <= k->size(1), "dllm_kernels.", op, ": kv_lens[", b,
                    "] = ", lens[b], " must be in [0, Lk = ", k->size(1), "]");
    }
  }
  return r;
}

}  // namespace dllm_torch
