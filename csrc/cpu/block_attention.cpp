// csrc/cpu/block_attention.cpp — CPU implementation of dllm_kernels::block_attention (checks in
// csrc/torch/checks.cpp, kernel in dllm/cpu/block_attention.h): parallel over (row, KV head, query
// tile), pages read in place (no gather copy), fp32 accumulation.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <atomic>
#include <tuple>
#include <type_traits>
#include <vector>

#include "block_attention_args.h"
#include "checks.h"
#include "dllm/cpu/block_attention.h"

namespace dllm_torch {

namespace {

template <typename T>
struct Native;  // the torch scalar type behind each kernel element type
template <>
struct Native<float> { using type = float; };
template <>
struct Native<dllm::bf16_t> { using type = c10::BFloat16; };
template <>
struct Native<dllm::f16_t> { using type = c10::Half; };

template <typename T>
void run(const at::Tensor& q, const std::optional<at::Tensor>& k, const std::optional<at::Tensor>& v,
         const std::optional<at::Tensor>& k_cache, const std::optional<at::Tensor>& v_cache,
         const AttentionInputs& in, at::Tensor& out, at::Tensor& lse) {
  const dllm::BlockAttentionArgs<T> a =
      block_attention_args<T>(q, k, v, k_cache, v_cache, in, out, lse);

  // Work units: (b, kv head, a run of row tiles). A unit's row tiles share each K/V tile it loads
  // (the GQA group's heads x queries), so every split of a KV head's rows reads (and converts) its
  // K/V once more: take the fewest splits whose busiest thread does at most ~10% more tiles than
  // an even share, with a unit's Q^T and accumulator (2 * rows * D floats) kept within ~1 MB (L2).
  const int64_t rows = (a.Hq / a.Hkv) * a.Lq;
  const int64_t tiles = dllm::ceil_div(rows, dllm::cpu::kAttnRows);
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t heads = a.B * a.Hkv;
  const int64_t max_tiles = std::max<int64_t>(
      1, (int64_t{1} << 20) / (2 * a.D * int64_t{sizeof(float)} * dllm::cpu::kAttnRows));
  int64_t splits = dllm::ceil_div(tiles, max_tiles);
  for (;; ++splits) {
    const int64_t busiest = dllm::ceil_div(heads * splits, threads) * dllm::ceil_div(tiles, splits);
    if (splits >= tiles || 10 * busiest * threads <= 11 * heads * tiles) break;
  }
  const int64_t rows_per_unit = dllm::ceil_div(tiles, splits) * dllm::cpu::kAttnRows;
  splits = dllm::ceil_div(rows, rows_per_unit);
  const int64_t units = a.B * a.Hkv * splits;
  using N = typename Native<T>::type;
  N* o = static_cast<N*>(out.data_ptr());
  auto store = [&](const float* row, float scale, int64_t b, int64_t i, int64_t h) {
    N* dst = o + b * a.o_stride_b + i * a.o_stride_l + h * a.o_stride_h;
    if constexpr (std::is_same_v<T, dllm::bf16_t>) {
      dllm::cpu::attn_store_row(reinterpret_cast<uint16_t*>(dst), row, scale, a.D);
    } else {
      for (int64_t d = 0; d < a.D; ++d) dst[d] = static_cast<N>(row[d] * scale);
    }
  };
  // bf16 on a CPU with AMX: both products on the tile unit (dllm/cpu/block_attention_amx.h).
  bool amx = false;
  int64_t scratch_floats = dllm::cpu::attn_scratch_floats(a.D, rows_per_unit);
#ifdef DLLM_ATTN_X86
  if constexpr (std::is_same_v<T, dllm::bf16_t>) {
    amx = dllm::cpu::attn_use_amx();
    if (amx) scratch_floats = dllm::cpu::attn_amx_scratch_floats(a.D, rows_per_unit);
  }
#endif
  // Units are handed out one at a time (an atomic counter), not in fixed chunks: a thread slowed by
  // the machine, or given the longer rows of a ragged batch, does fewer of them.
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(threads, units), 1, [&](int64_t, int64_t) {
    std::vector<float> scratch(scratch_floats);
    for (int64_t u; (u = next.fetch_add(1, std::memory_order_relaxed)) < units;) {
      const int64_t b = u / (a.Hkv * splits), h = (u / splits) % a.Hkv, t = u % splits;
      const int64_t row0 = t * rows_per_unit, row1 = std::min(rows, row0 + rows_per_unit);
#ifdef DLLM_ATTN_X86
      if constexpr (std::is_same_v<T, dllm::bf16_t>) {
        if (amx) {
          dllm::cpu::block_attention_unit_amx(a, b, h, row0, row1, scratch.data(), store);
          continue;
        }
      }
#endif
      dllm::cpu::block_attention_unit<T>(a, b, h, row0, row1, scratch.data(), store);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> block_attention_cpu(
    const at::Tensor& q,                          // [B, Lq, Hq, D]
    const std::optional<at::Tensor>& k,           // [B, Lk, Hkv, D]
    const std::optional<at::Tensor>& v,           // [B, Lk, Hkv, D]
    const std::optional<at::Tensor>& k_cache,     // [num_pages, page_size, Hkv, D]
    const std::optional<at::Tensor>& v_cache,     // [num_pages, page_size, Hkv, D]
    const std::optional<at::Tensor>& block_table, // [B, max_pages] int32
    const std::optional<at::Tensor>& cache_lens,  // [B] int32
    const std::optional<at::Tensor>& kv_lens,     // [B] int32
    const std::optional<at::Tensor>& q_start,     // [B] int32
    c10::string_view mask, int64_t block_size, double softmax_scale, bool check) {
  const AttentionInputs in = block_attention_check(q, k, v, k_cache, v_cache, block_table,
                                                   cache_lens, kv_lens, q_start, mask, block_size,
                                                   softmax_scale, check);
  at::Tensor out = at::empty_like(q, at::MemoryFormat::Contiguous);
  at::Tensor lse = at::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(at::kFloat));
  if (q.numel() == 0) return {out, lse};
  switch (q.scalar_type()) {
    case at::kFloat: run<float>(q, k, v, k_cache, v_cache, in, out, lse); break;
    case at::kBFloat16: run<dllm::bf16_t>(q, k, v, k_cache, v_cache, in, out, lse); break;
    default: run<dllm::f16_t>(q, k, v, k_cache, v_cache, in, out, lse); break;
  }
  return {out, lse};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("block_attention", &block_attention_cpu); }

}  // namespace dllm_torch
