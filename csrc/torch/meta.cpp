// csrc/torch/meta.cpp — the Meta (fake) kernels of every op: torch.compile, torch.export and
// torch.library.opcheck trace with meta / fake tensors (sizes possibly symbolic), which land here.
// Each kernel calls the same *_check function as the op's CPU and CUDA glue (checks.cpp: on meta
// tensors sizes are read as SymInts and value reads are skipped) and returns empty outputs with
// the shapes, dtypes and strides (contiguous) of the real kernels' outputs. No data is touched.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "checks.h"

namespace dllm_torch {
namespace {

void commit_meta(at::Tensor& x,               // [B, L] int64/int32, written in place
                 const at::Tensor& x0,        // [B, L] same dtype
                 const at::Tensor& transfer)  // [B, L] bool
{
  commit_check(x, x0, transfer);
}

at::Tensor num_transfer_tokens_meta(const at::Tensor& mask_index,  // [B, L] bool
                                    int64_t steps) {
  num_transfer_tokens_check(mask_index, steps);
  return at::empty_symint({mask_index.sym_size(0), c10::SymInt(steps)},
                          mask_index.options().dtype(at::kLong));  // [B, steps]
}

std::tuple<at::Tensor, at::Tensor> denoise_step_meta(
    const at::Tensor& logits,  // [B, L, V] f32|bf16|f16
    const at::Tensor& x,       // [B, L] int64
    int64_t mask_id, double temperature, int64_t top_k, double top_p, c10::string_view filter_order,
    c10::string_view confidence, c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens,  // [n] int64
    int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible,       // [B, L] bool
    const std::optional<at::Tensor>& uncond_logits,  // [B, L, V] like logits
    double cfg_scale,
    const std::optional<at::Tensor>& argmax) {  // [B, L] int64 (written)
  denoise_step_check(logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence,
                     confidence_source, shift_logits, suppress_tokens, seed, offset, "denoise_step",
                     eligible, uncond_logits, cfg_scale, argmax);
  return {at::empty_symint(x.sym_sizes(), x.options()),                     // x0 [B, L]
          at::empty_symint(x.sym_sizes(), x.options().dtype(at::kFloat))};  // conf [B, L]
}

at::Tensor select_transfer_meta(const at::Tensor& conf,  // [B, L] float32
                                c10::string_view rule,
                                const std::optional<at::Tensor>& per_row,  // [B]
                                double value, bool strict, int64_t seed, int64_t offset) {
  select_transfer_check(conf, rule, per_row, value, strict, seed, offset, "select_transfer");
  return at::empty_symint(conf.sym_sizes(), conf.options().dtype(at::kBool));  // [B, L]
}

// The glue's order: denoise arguments, the fused op's extras, x writable (commit), then the
// selection on conf.
std::tuple<at::Tensor, at::Tensor, at::Tensor> denoise_and_select_meta(
    const at::Tensor& logits, at::Tensor& x, int64_t mask_id, double temperature, int64_t top_k,
    double top_p, c10::string_view filter_order, c10::string_view confidence,
    c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens, c10::string_view rule,
    const std::optional<at::Tensor>& per_row, double value, bool strict, bool commit, int64_t seed,
    int64_t offset,
    const std::optional<at::Tensor>& eligible,       // [B, L] bool
    const std::optional<at::Tensor>& uncond_logits,  // [B, L, V] like logits
    double cfg_scale, bool renoise,
    const std::optional<at::Tensor>& argmax) {  // [B, L] int64 (written)
  constexpr const char* op = "denoise_and_select";
  denoise_step_check(logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence,
                     confidence_source, shift_logits, suppress_tokens, seed, offset, op, eligible,
                     uncond_logits, cfg_scale, argmax);
  denoise_and_select_extras_check(x, eligible, confidence, rule, commit, renoise, op);
  if (commit) check_writable(x, op, "x");
  at::Tensor x0 = at::empty_symint(x.sym_sizes(), x.options());                      // [B, L]
  at::Tensor conf = at::empty_symint(x.sym_sizes(), x.options().dtype(at::kFloat));  // [B, L]
  select_transfer_check(conf, rule, per_row, value, strict, seed, offset, op);
  at::Tensor transfer = at::empty_symint(x.sym_sizes(), x.options().dtype(at::kBool));  // [B, L]
  return {x0, conf, transfer};
}

void cache_write_meta(at::Tensor& k_cache,             // [num_pages, page_size, H, D]
                      at::Tensor& v_cache,             // [num_pages, page_size, H, D]
                      const at::Tensor& k,             // [N, H, D] or [B, L, H, D]
                      const at::Tensor& v,             // same shape as k
                      const at::Tensor& slot_mapping,  // [N] or [B, L] int64
                      bool check) {
  cache_write_check(k_cache, v_cache, k, v, slot_mapping, check);
}

std::tuple<at::Tensor, at::Tensor> cache_gather_meta(
    const at::Tensor& k_cache,      // [num_pages, page_size, H, D]
    const at::Tensor& v_cache,      // [num_pages, page_size, H, D]
    const at::Tensor& block_table,  // [B, max_pages] int32
    const at::Tensor& kv_lens,      // [B] int32
    int64_t max_len) {
  cache_gather_check(k_cache, v_cache, block_table, kv_lens, max_len);
  const c10::SymInt shape[] = {block_table.sym_size(0), c10::SymInt(max_len), k_cache.sym_size(2),
                               k_cache.sym_size(3)};
  return {at::empty_symint(shape, k_cache.options()),   // k [B, max_len, H, D]
          at::empty_symint(shape, k_cache.options())};  // v [B, max_len, H, D]
}

void cache_copy_pages_meta(at::Tensor& k_cache,      // [num_pages, page_size, H, D]
                           at::Tensor& v_cache,      // [num_pages, page_size, H, D]
                           const at::Tensor& pairs)  // [n, 2] int64
{
  cache_copy_pages_check(k_cache, v_cache, pairs);
}

std::tuple<at::Tensor, at::Tensor> block_attention_meta(
    const at::Tensor& q,                           // [B, Lq, Hq, D]
    const std::optional<at::Tensor>& k,            // [B, Lk, Hkv, D]
    const std::optional<at::Tensor>& v,            // [B, Lk, Hkv, D]
    const std::optional<at::Tensor>& k_cache,      // [num_pages, page_size, Hkv, D]
    const std::optional<at::Tensor>& v_cache,      // [num_pages, page_size, Hkv, D]
    const std::optional<at::Tensor>& block_table,  // [B, max_pages] int32
    const std::optional<at::Tensor>& cache_lens,   // [B] int32
    const std::optional<at::Tensor>& kv_lens,      // [B] int32
    const std::optional<at::Tensor>& q_start,      // [B] int32
    c10::string_view mask, int64_t block_size, double softmax_scale, bool check) {
  block_attention_check(q, k, v, k_cache, v_cache, block_table, cache_lens, kv_lens, q_start, mask,
                        block_size, softmax_scale, check);
  const c10::SymInt lse_shape[] = {q.sym_size(0), q.sym_size(2), q.sym_size(1)};
  return {at::empty_symint(q.sym_sizes(), q.options()),                 // out [B, Lq, Hq, D]
          at::empty_symint(lse_shape, q.options().dtype(at::kFloat))};  // lse [B, Hq, Lq]
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, Meta, m) {
  m.impl("commit_", &commit_meta);
  m.impl("num_transfer_tokens", &num_transfer_tokens_meta);
  m.impl("denoise_step", &denoise_step_meta);
  m.impl("select_transfer", &select_transfer_meta);
  m.impl("denoise_and_select", &denoise_and_select_meta);
  m.impl("cache_write_", &cache_write_meta);
  m.impl("cache_gather", &cache_gather_meta);
  m.impl("cache_copy_pages_", &cache_copy_pages_meta);
  m.impl("block_attention", &block_attention_meta);
}

}  // namespace dllm_torch
