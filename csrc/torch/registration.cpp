// csrc/torch/registration.cpp — every schema of the dllm_kernels op library, in one place (the
// Python module init with the host objects is bindings.cpp).
// Implementations register per backend (TORCH_LIBRARY_IMPL) in csrc/cpu/<op>.cpp and
// csrc/cuda/<op>.cu, the fake (Meta) kernels for torch.compile / export in csrc/torch/meta.cpp; all
// of them check their arguments with the same functions (csrc/torch/checks.cpp).
#include <torch/library.h>

TORCH_LIBRARY(dllm_kernels, m) {
  // x[transfer] = x0[transfer], in place on x.  x, x0: [B, L] int64|int32; transfer: [B, L] bool.
  m.def("commit_(Tensor(a!) x, Tensor x0, Tensor transfer) -> ()");
  // LLaDA's linear schedule. mask_index: [B, L] bool -> [B, steps] int64.
  m.def("num_transfer_tokens(Tensor mask_index, int steps) -> Tensor");
  // One denoising step. logits: [B, L, V] f32|bf16|f16 (last dim contiguous); x: [B, L] int64
  // -> x0 [B, L] int64, conf [B, L] f32. seed is the uint64 seed as two's-complement int64.
  // eligible: [B, L] bool (replaces x == mask_id); uncond_logits: like logits (CFG, cfg_scale);
  // argmax: [B, L] int64 written with z's argmax per position (return_argmax), or none.
  m.def(
      "denoise_step(Tensor logits, Tensor x, int mask_id, float temperature, int top_k, "
      "float top_p, str filter_order, str confidence, str confidence_source, bool shift_logits, "
      "Tensor? suppress_tokens, int seed, int offset, Tensor? eligible=None, "
      "Tensor? uncond_logits=None, float cfg_scale=0., Tensor(a!)? argmax=None) -> "
      "(Tensor x0, Tensor conf)");
  // Which positions commit. conf: [B, L] f32 (-inf = not eligible) -> [B, L] bool. rule:
  // num_transfer (per_row int64 [B]) | threshold | factor | entropy_bound (value) | probability
  // (per_row f32 [B]).
  m.def(
      "select_transfer(Tensor conf, str rule, Tensor? per_row, float value, bool strict, "
      "int seed, int offset) -> Tensor");
  // denoise_step + select_transfer in one call; commit=True also writes x[transfer] = x0[transfer];
  // renoise=True also x[eligible & ~transfer] = a Philox token in [0, V).
  m.def(
      "denoise_and_select(Tensor logits, Tensor(a!) x, int mask_id, float temperature, int top_k, "
      "float top_p, str filter_order, str confidence, str confidence_source, bool shift_logits, "
      "Tensor? suppress_tokens, str rule, Tensor? per_row, float value, bool strict, bool commit, "
      "int seed, int offset, Tensor? eligible=None, Tensor? uncond_logits=None, "
      "float cfg_scale=0., bool renoise=False, Tensor(b!)? argmax=None) -> "
      "(Tensor x0, Tensor conf, Tensor transfer)");
  // Vocabulary-parallel denoise_step (dllm_kernels/tp.py runs these around the collectives).
  // logits: the shard [B, L, V_shard] of tokens [vocab_start, vocab_start + V_shard); stage:
  // top_k -> [B, L, top_k] f32 | range -> [B, L, 2] f32 | state -> [B, L, 8] f64 | sums ->
  // [B, L, 2] int64 (CPU and CUDA); CPU top-p: hist -> [B, L, 4096] f64 | members -> [B, L, K]
  // f32 (NaN padded); CUDA top-p: top_p_level -> [B, L, 256, 2] int64 (level `shift`).
  m.def(
      "denoise_shard(Tensor logits, Tensor x, int mask_id, float temperature, int top_k, "
      "float top_p, str filter_order, str confidence, str confidence_source, bool shift_logits, "
      "Tensor? suppress_tokens, int seed, int offset, Tensor? eligible, Tensor? uncond_logits, "
      "float cfg_scale, int vocab_start, str stage, Tensor? threshold, Tensor? anchor, "
      "Tensor? bucket, bool with_argmax=False, int shift=0) -> Tensor");
  // state [B, L, 8] f64 (merged), sums [B, L, 2] int64 (all-reduced) -> x0, conf, argmax.
  m.def(
      "denoise_shard_finalize(Tensor state, Tensor sums, Tensor x, int mask_id, str confidence, "
      "int seed, int offset, Tensor? eligible) -> (Tensor x0, Tensor conf, Tensor argmax)");
  // top-p over shards: hist [N, 4096] f64 summed -> crossing bucket [N], above [N], need [N].
  m.def(
      "top_p_shard_plan(Tensor hist, float top_p, Tensor start, Tensor above) -> "
      "(Tensor bucket, Tensor above_out, Tensor need)");
  // members [N, K] f32 of the crossing bucket (all shards, token order) -> tau [N], above [N].
  m.def(
      "top_p_shard_walk(Tensor members, Tensor m, Tensor need, Tensor above) -> "
      "(Tensor tau, Tensor above_out)");
  // Paged KV cache, per layer k_cache / v_cache [num_pages, page_size, H_kv, D] f32|bf16|f16.
  // Token i of k / v ([N, H_kv, D] or [B, L, H_kv, D]) -> slot slot_mapping[i] (int64, < 0 = skip).
  m.def(
      "cache_write_(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor k, Tensor v, "
      "Tensor slot_mapping, bool check) -> ()");
  // block_table int32 [B, max_pages], kv_lens int32 [B] -> k, v [B, max_len, H_kv, D], zero padded.
  m.def(
      "cache_gather(Tensor k_cache, Tensor v_cache, Tensor block_table, Tensor kv_lens, "
      "int max_len) -> (Tensor k, Tensor v)");
  // Page pairs[i, 0] -> page pairs[i, 1] in both caches. pairs: int64 [n, 2].
  m.def("cache_copy_pages_(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor pairs) -> ()");
  // Attention of a denoising step. q: [B, Lq, Hq, D]; keys of row b = its first cache_lens[b]
  // cached tokens, then its first kv_lens[b] tokens of k / v. -> out [B, Lq, Hq, D] (q's dtype),
  // lse [B, Hq, Lq] f32. mask: "full" | "block_causal" (block_size). check: read lengths / page
  // ids.
  m.def(
      "block_attention(Tensor q, Tensor? k, Tensor? v, Tensor? k_cache, Tensor? v_cache, "
      "Tensor? block_table, Tensor? cache_lens, Tensor? kv_lens, Tensor? q_start, str mask, "
      "int block_size, float softmax_scale, bool check) -> (Tensor out, Tensor lse)");
}
