// csrc/torch/checks.h — argument checks shared by the torch glue of every op: the CPU and CUDA
// implementations and the Meta (fake) kernels in meta.cpp call the same *_check functions. Every
// message reads "dllm_kernels.<op>: <argument> <problem>, got <what was passed>", so the user sees
// which op and which argument is at fault.
//
// Meta tensors (torch.compile / export / opcheck trace with them, possibly with symbolic sizes)
// carry no data: the checks read sizes and strides through sym_sizes() / sym_strides() (a
// comparison is a guard under symbolic shapes), and skip what needs data or real storage: value
// reads (lengths, page ids, slots, token ids) and the aliasing checks (done when the op runs).
#pragma once

#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include <optional>
#include <utility>

#include "dllm/block_attention.h"
#include "dllm/denoise_step.h"
#include "dllm/sampling.h"
#include "dllm/select_transfer.h"

#define DLLM_CHECK_ARG(cond, op, arg, ...) \
  TORCH_CHECK((cond), "dllm_kernels.", op, ": ", arg, " ", __VA_ARGS__)

namespace dllm_torch {

inline void check_dim(const at::Tensor& t, int64_t dim, const char* op, const char* arg) {
  DLLM_CHECK_ARG(t.dim() == dim, op, arg, "must be ", dim, "-D, got shape ", t.sym_sizes());
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
  DLLM_CHECK_ARG(t.sym_sizes() == ref.sym_sizes(), op, arg, "must have the same shape as ", ref_arg,
                 " ", ref.sym_sizes(), ", got ", t.sym_sizes());
}

// An in-place output must not alias itself (an expanded tensor would race and lose writes).
inline void check_writable(const at::Tensor& t, const char* op, const char* arg) {
  DLLM_CHECK_ARG(at::has_internal_overlap(t) != at::MemOverlap::Yes, op, arg,
                 "is written in place and must not have internal overlap (e.g. an expanded "
                 "tensor), got strides ",
                 t.sym_strides());
}

// [first, last) byte of t within its storage (a tensor with data: not meta).
inline std::pair<int64_t, int64_t> byte_span(const at::Tensor& t) {
  int64_t last = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
  const auto item = static_cast<int64_t>(t.element_size());
  return {t.storage_offset() * item, (last + 1) * item};
}

// `out` is written while `in` is read: they must be the very same view or not share memory
// (a partial overlap would read values the op has already written: wrong on CPU, a race on GPU).
// Not checked on meta tensors (no memory).
inline void check_no_overlap(const at::Tensor& out, const at::Tensor& in, const char* op,
                             const char* arg, const char* out_arg) {
  if (out.is_meta() || in.is_meta()) return;
  if (out.numel() == 0 || in.numel() == 0 || !out.has_storage() || !in.has_storage()) return;
  if (!out.storage().is_alias_of(in.storage())) return;
  if (out.dtype() == in.dtype() && out.storage_offset() == in.storage_offset() &&
      out.sizes() == in.sizes() && out.strides() == in.strides())
    return;  // the same view: reading and writing the same element is fine
  const auto a = byte_span(out), b = byte_span(in);
  DLLM_CHECK_ARG(a.second <= b.first || b.second <= a.first, op, arg, "must not share memory with ",
                 out_arg, ", which is written in place (pass a copy)");
}

// `in` is read at other positions than `out` is written (a scatter / gather): no shared memory at
// all, not even the very same view. Not checked on meta tensors (no memory).
inline void check_disjoint(const at::Tensor& out, const at::Tensor& in, const char* op,
                           const char* arg, const char* out_arg) {
  if (out.is_meta() || in.is_meta()) return;
  if (out.numel() == 0 || in.numel() == 0 || !out.has_storage() || !in.has_storage()) return;
  if (!out.storage().is_alias_of(in.storage())) return;
  const auto a = byte_span(out), b = byte_span(in);
  DLLM_CHECK_ARG(a.second <= b.first || b.second <= a.first, op, arg, "must not share memory with ",
                 out_arg, ", which is written in place (pass a copy)");
}

// Per-op checks (checks.cpp).
void commit_check(const at::Tensor& x, const at::Tensor& x0, const at::Tensor& transfer);
void num_transfer_tokens_check(const at::Tensor& mask_index, int64_t steps);

// denoise_step: checks every argument and returns the kernel parameters.
dllm::DenoiseParams denoise_step_check(
    const at::Tensor& logits, const at::Tensor& x, int64_t mask_id, double temperature,
    int64_t top_k, double top_p, c10::string_view filter_order, c10::string_view confidence,
    c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens, int64_t seed, int64_t offset, const char* op,
    const std::optional<at::Tensor>& eligible = std::nullopt,
    const std::optional<at::Tensor>& uncond_logits = std::nullopt, double cfg_scale = 0.0,
    const std::optional<at::Tensor>& argmax = std::nullopt);

// The stages of denoise_shard (its `stage` argument): what each computes is in registration.cpp.
// Both devices: top_k, range, state, sums; CPU top-p: hist, members; CUDA top-p: top_p_level.
enum class ShardStage { kTopK, kRange, kHist, kMembers, kState, kSums, kTopPLevel };
ShardStage denoise_shard_stage(c10::string_view stage);

// denoise_shard (vocabulary-parallel pieces, dllm_kernels/tp.py) beyond denoise_step's checks:
// vocab_start >= 0 and a multiple of 4; threshold / anchor [B, L] f32 and bucket [B, L] int64 on
// x's device, contiguous; anchor needed (the hist / members / sums / top_p_level stages), bucket
// (members, top_p_level); a stage of x's device; shift in {24, 16, 8, 0} (top_p_level). Returns
// the stage.
ShardStage denoise_shard_check(const at::Tensor& x, int64_t vocab_start, c10::string_view stage,
                               const std::optional<at::Tensor>& threshold,
                               const std::optional<at::Tensor>& anchor,
                               const std::optional<at::Tensor>& bucket, int64_t shift);
// denoise_shard_finalize: state [B, L, 8] f64, sums [B, L, 2] int64 (x's device, contiguous), x
// [B, L] int64; returns the parameters finalize reads (confidence, seed, offset, mask / eligible).
dllm::DenoiseParams denoise_shard_finalize_check(const at::Tensor& state, const at::Tensor& sums,
                                                 const at::Tensor& x, int64_t mask_id,
                                                 c10::string_view confidence, int64_t seed,
                                                 int64_t offset,
                                                 const std::optional<at::Tensor>& eligible);
// top_p_shard_plan: hist [N, 4096] f64, top_p in (0, 1), start [N] int64, above [N] f64.
void top_p_shard_plan_check(const at::Tensor& hist, double top_p, const at::Tensor& start,
                            const at::Tensor& above);
// top_p_shard_walk: members [N, K] f32, m [N] f32, need / above [N] f64.
void top_p_shard_walk_check(const at::Tensor& members, const at::Tensor& m, const at::Tensor& need,
                            const at::Tensor& above);

// denoise_and_select beyond denoise_step / select_transfer: entropy_bound needs neg_entropy
// confidences; renoise needs commit and eligible; a committed x must not overlap eligible.
void denoise_and_select_extras_check(const at::Tensor& x, const std::optional<at::Tensor>& eligible,
                                     c10::string_view confidence, c10::string_view rule,
                                     bool commit, bool renoise, const char* op);

// select_transfer: rule "num_transfer" (per_row int64 [B], >= 0: read on CPU only, on CUDA a
// negative k selects nothing), "threshold" / "factor" / "entropy_bound" (value), "probability"
// (per_row float32 [B]).
struct SelectArgs {
  dllm::SelectRule rule;
  double value;  // threshold (compared as float32, like the reference) or factor (double)
  bool strict;
  uint64_t seed;
  uint32_t offset;
};
SelectArgs select_transfer_check(const at::Tensor& conf, c10::string_view rule,
                                 const std::optional<at::Tensor>& per_row, double value,
                                 bool strict, int64_t seed, int64_t offset, const char* op);

// Paged KV cache ops. k_cache / v_cache [num_pages, page_size, H_kv, D]: the checks below verify
// shapes, dtypes, devices and aliasing, and (reading the index tensors: a device sync on CUDA)
// that every id and length is in range, so that a kernel never touches memory outside the cache.
// On meta tensors a size that is symbolic reads -1 in CacheDims (only the checks run there).
struct CacheDims {
  int64_t num_pages, page_size, heads, head_dim;
};
CacheDims cache_pair_check(const at::Tensor& k_cache, const at::Tensor& v_cache, const char* op,
                           bool written);
CacheDims cache_write_check(const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& slot_mapping, bool check);
CacheDims cache_gather_check(const at::Tensor& k_cache, const at::Tensor& v_cache,
                             const at::Tensor& block_table, const at::Tensor& kv_lens,
                             int64_t max_len);
CacheDims cache_copy_pages_check(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                 const at::Tensor& pairs);

// block_attention: checks every argument and fills in the defaults (int32 [B] lengths on q's
// device). check: also read the lengths, page ids and q_start (a device sync on CUDA).
struct AttentionInputs {
  at::Tensor cache_lens, kv_lens, q_start;  // int32 [B], contiguous
  at::Tensor block_table;                   // int32 [B, max_pages] contiguous (undefined: no cache)
  int64_t Hkv;                              // -1 on meta tensors with a symbolic head count
  int64_t block_size;
  double scale;
  dllm::AttnMask mask;
};
AttentionInputs block_attention_check(
    const at::Tensor& q, const std::optional<at::Tensor>& k, const std::optional<at::Tensor>& v,
    const std::optional<at::Tensor>& k_cache, const std::optional<at::Tensor>& v_cache,
    const std::optional<at::Tensor>& block_table, const std::optional<at::Tensor>& cache_lens,
    const std::optional<at::Tensor>& kv_lens, const std::optional<at::Tensor>& q_start,
    c10::string_view mask, int64_t block_size, double softmax_scale, bool check);

}  // namespace dllm_torch
