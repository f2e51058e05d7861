// dllm/cuda/denoise_and_select.cuh — CUDA launcher for denoise_and_select as one fused launch: the
// kernels of denoise_step (dllm/cuda/denoise_step.cuh: fast, fast + sums with V split over blocks,
// or filtered) with an epilogue that counts the finished positions of each row; the block that
// finishes a row runs that row's selection (select_row of dllm/cuda/select_transfer.cuh, the code
// of the select_transfer kernel) and, with commit, writes x[b, l] = x0[b, l] for the selected l.
// The specification is reference.denoise_step followed by reference.select_transfer (same seed
// and offset).
//
// Handshake (dllm/cuda/last_block.cuh, "last block done"): every position arrives exactly once on
// row_count[b] (target L): an unmasked one from the block (split 0) that wrote x0 = x, conf = -inf;
// a masked one from the block that finalised it (with V split over S blocks: the last of the S
// blocks of denoise_step's sums kernel, which merges the partial states and adds the S exact sums
// first). Writers fence before counting; the last block reads conf / x0 / partial states with
// __ldcg. No block ever waits, so any block order works; the counters (and the sums) are zeroed by
// one cudaMemsetAsync before the kernels. No host sync: graph capturable.
//
// Napkin math (what fusion saves). Separate ops: denoise (+ merge when V is split), then
// select_transfer, then commit: 3-4 launches, each ~3-5 us of launch latency plus a dependent
// gap, and a conf / x0 round trip through HBM between them (write x0 + conf, 12 B per position;
// read conf 4 B + write transfer 1 B; commit reads transfer + x0 + x, 17 B, writes x). Fused: one
// memset node + one kernel (two when V is split: pass 1, then pass 2 with the selection as its
// epilogue); conf / x0 are still written (they are outputs) but the selection reads
// its row from L2 right after the blocks wrote it, and the commit reads x0 only where selected.
// The bytes were never the cost (a [64, 32] step moves ~80 KB of them, ~30 ns of HBM time): the
// launches are. At [1, 32, 126464] bf16 (8 MB of logits, ~3 us floor at ~3 TB/s) the separate
// path is ~4 launches (~15 us or more, launch-bound); fused it is ~1 launch + memset (~5-6 us).
// The row's selection adds one block's work after the row's last position (on the kernel's tail:
// it no longer overlaps anything): a bitonic sort of N = pow2(L) words (15 barrier stages for
// L = 32, well under 1 us; 78 for L = 4096) or, for L > 4096, the O(L^2) rank count (the slow
// fallback, as in select_transfer). These are estimates: nothing here has been timed on a GPU.
//
// Shared memory: the kernel gets select_scratch_bytes(L) of dynamic shared memory for the
// selection (16 B + 8 * pow2(L) for L <= 4096, i.e. <= 32 KB; 16 KB + 16 B for longer rows) on
// top of its static ~1.6 KB (fast, sums) / ~5 KB (filtered): under the 48 KB default, no opt-in.
//
// NOT YET RUN ON A GPU: compiled for sm_90a in CI only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "dllm/common.h"
#include "dllm/cuda/denoise_step.cuh"
#include "dllm/cuda/last_block.cuh"
#include "dllm/denoise_step.h"
#include "dllm/sampling.h"
#include "dllm/select_transfer.h"
#include "dllm/cuda/select_transfer.cuh"

namespace dllm::cuda {
namespace fused_detail {

// The epilogue of the fused kernel (see NoEpilogue in dllm/cuda/denoise_step.cuh for the contract).
struct SelectEpilogue {
  static constexpr bool kFused = true;
  unsigned long long* row_count;  // [B] positions of the row with x0 / conf written, zeroed
  int64_t L;
  select_detail::RowRule rr;
  const float* conf;         // [B, L] contiguous, written by the kernel's blocks
  const int64_t* x0;         // [B, L] contiguous, written by the kernel's blocks
  View2D<uint8_t> transfer;  // [B, L] bool bytes, written
  View2D<int64_t> x;         // [B, L] token ids; x[b, l] = x0[b, l] where selected (commit)
  bool commit;
  // renoise: x[b, l] = below_of_word(Philox slot kSlotGroupRenoise of (seed, offset, b, l), V)
  // where eligible[b, l] and not selected (needs commit and eligible).
  bool renoise;
  const uint8_t* eligible;  // [B, L] bool bytes (strides esb, esl), or null
  int64_t esb, esl, V;
  uint64_t seed;
  uint32_t offset;

  // Every thread of the block, after thread 0 wrote x0 / conf of a position of row b. The block
  // that completes the row selects it. scratch: select_scratch_bytes(L) of shared memory.
  __device__ __forceinline__ void position_done(int64_t b, unsigned char* scratch) const {
    if (!last_to_arrive(row_count + b, static_cast<unsigned long long>(L))) return;
    const long long* x0_row = reinterpret_cast<const long long*>(x0 + b * L);
    select_detail::select_row(
        rr, select_detail::ConfRow{conf + b * L, 1}, b, L, scratch, [&](int64_t l, bool take) {
          transfer(b, l) = take ? 1 : 0;
          if (commit && take) {
            x(b, l) = __ldcg(x0_row + l);
          } else if (renoise && eligible[b * esb + l * esl] != 0) {
            const Philox4 w = philox_group(seed, offset, b, l, kSlotGroupRenoise);
            x(b, l) = below_of_word(w.w[0], V);
          }
        });
  }
};

}  // namespace fused_detail

// The layout of a fused call: denoise_step's workspace (partial states, sums and split counters
// when V is split), then row counters [B] (8 B). Everything from counter_offset on (counter_bytes:
// the sums, the split and the row counters) is zeroed per call.
struct DenoiseSelectPlan {
  DenoisePlan denoise;
  size_t counter_offset;  // bytes: where the zeroed part starts (16-byte aligned)
  size_t counter_bytes;
  size_t workspace_bytes;  // what the caller provides, 16-byte aligned
  size_t smem_bytes;       // dynamic shared memory of the kernels (the row's selection)
};

inline DenoiseSelectPlan denoise_and_select_plan(int64_t B, int64_t L, int64_t V,
                                                 const DenoiseParams& p, int num_sms) {
  DenoiseSelectPlan plan{};
  plan.denoise = denoise_step_plan(B, L, V, p, num_sms);
  const size_t rows_offset = plan.denoise.workspace_bytes;  // 16-byte aligned
  plan.counter_offset = plan.denoise.zeroed_bytes > 0 ? plan.denoise.zeroed_offset : rows_offset;
  plan.workspace_bytes = rows_offset + (size_t(B) * sizeof(unsigned long long) + 15) / 16 * 16;
  plan.counter_bytes = plan.workspace_bytes - plan.counter_offset;
  plan.smem_bytes = select_detail::select_scratch_bytes(L);
  return plan;
}

// x0 / conf of every position (as denoise_step), transfer of every row (as select_transfer on
// that conf, same seed / offset), and with commit x[b, l] = x0[b, l] where transfer[b, l]. Stream
// work: one cudaMemsetAsync of the counters, one kernel (two when V is split; and first the argmax
// kernel when p.argmax is set: return_argmax).
template <typename In>
cudaError_t denoise_and_select(const In* logits,                    // [B, L, V], V contiguous
                               int64_t stride_b, int64_t stride_l,  // element strides of B, L
                               View2D<int64_t> x,        // [B, L] token ids (commit: written)
                               const int64_t* suppress,  // [n_suppress] sorted ids, or null
                               int64_t n_suppress, int64_t B, int64_t L, int64_t V,
                               const DenoiseParams& p, SelectRule rule,
                               double value,           // threshold / factor
                               bool strict,            // threshold: > instead of >=
                               const int64_t* k_rows,  // [B] num_transfer, or null
                               const float* p_rows,    // [B] probability, or null
                               int64_t rows_stride,    // element stride of the one read
                               uint64_t select_seed, uint32_t select_offset, bool commit,
                               bool renoise,  // needs commit and p.eligible
                               const DenoiseSelectPlan& plan,
                               int64_t* x0,               // [B, L] contiguous, written
                               float* conf,               // [B, L] contiguous, written
                               View2D<uint8_t> transfer,  // [B, L] bool bytes, written
                               void* workspace,           // plan.workspace_bytes, 16-aligned
                               cudaStream_t stream) {
  using namespace denoise_detail;
  if (B == 0 || L == 0) return cudaSuccess;
  if (V < 1 || V > INT32_MAX - 1024) return cudaErrorInvalidValue;  // int loops step <= 512
  if (workspace == nullptr) return cudaErrorInvalidValue;
  if (rule == SelectRule::kNumTransfer && k_rows == nullptr) return cudaErrorInvalidValue;
  if (rule == SelectRule::kProbability && p_rows == nullptr) return cudaErrorInvalidValue;
  if (rule == SelectRule::kEntropyBound && L > select_detail::kSortMax)
    return cudaErrorInvalidValue;
  if (renoise && (!commit || p.eligible == nullptr)) return cudaErrorInvalidValue;
  if (suppress == nullptr) n_suppress = 0;
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  auto* row_count = reinterpret_cast<unsigned long long*>(ws + plan.denoise.workspace_bytes);
  const View2D<const int64_t> xr{x.data, x.stride_row, x.stride_col};
  const Rows<In> r{logits, stride_b, stride_l, xr, suppress, n_suppress, B, L, static_cast<int>(V)};
  // argmax (p.argmax) first: it reads x before the commit rewrites it.
  cudaError_t err = launch_argmax(r, p, nullptr, stream);
  if (err != cudaSuccess) return err;
  err = cudaMemsetAsync(ws + plan.counter_offset, 0, plan.counter_bytes, stream);
  if (err != cudaSuccess) return err;
  const fused_detail::SelectEpilogue epi{
      row_count,
      L,
      select_detail::RowRule{rule, value, strict, k_rows, p_rows, rows_stride, select_seed,
                             select_offset},
      conf,
      x0,
      transfer,
      x,
      commit,
      renoise,
      p.eligible,
      p.eligible_sb,
      p.eligible_sl,
      V,
      p.seed,
      p.offset};
  return launch_denoise(r, p, plan.denoise, x0, conf, workspace, epi, plan.smem_bytes, stream);
}

}  // namespace dllm::cuda
