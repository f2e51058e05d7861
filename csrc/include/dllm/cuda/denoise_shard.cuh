// dllm/cuda/denoise_shard.cuh — CUDA launchers of the vocabulary-parallel pieces of denoise_step
// (the CPU ones: dllm/cpu/denoise_shard.h; dllm_kernels/tp.py runs them around torch.distributed
// collectives, NCCL on GPUs). Each rank holds the logits of tokens [vocab_start, vocab_start + V)
// (V = its shard) and every piece reads only its shard.
//
// Why the result is the unsharded CUDA op's bits: denoise_step's CUDA kernels
// (dllm/cuda/denoise_step.cuh) keep per position only order-free quantities in pass 1 (maxima,
// the choice with ties to the smaller id, the Gumbel noise keyed by the GLOBAL id) and exact
// integer sums in pass 2. The shard kernels are those same kernels on the shard (the same
// element code, the same rounding), so the shards' states merge (tp.py, in vocabulary order) into
// the unsharded pass 1, their sums add up to the unsharded pass 2, and the finalize below is the
// unsharded finalize on the same numbers.
//
// A step (tp.py): [top-k: each shard's k largest values -> all_gather -> the k-th largest of the
// union] [top-p: range (the max) -> all_reduce -> four levels of the radix select, each a
// [256, 2] histogram of counts and integer masses per position -> all_reduce -> the same bin
// choice as the unsharded kernel's pick_bin] -> state (pass 1, [B*L, 8] float64 in the CPU layout,
// dllm::cpu::ShardState) -> all_gather, merge -> sums (pass 2 with the global max) -> all_reduce
// -> finalize. top-p's masses are integers (denoise_detail::top_p_weight), so the all-reduced
// histograms are the unsharded kernel's to the bit.
//
// Napkin math (per denoised position and step, unfiltered): the state 64 B + the sums 16 B leave
// a rank, against V_shard * 2 B of bf16 logits for an all-gather (126 KB at V = 126,464, tp = 2);
// the kernels read the shard twice (pass 1, pass 2: from L2 for small batches) like the unsharded
// op, plus one read for z's argmax when asked (return_argmax / denoise_and_select). top-p adds
// 4 B (the max) + 4 x 4 KB (the levels' histograms) per position: 13 % of the bf16 shard at
// V = 126,464, tp = 2; top-k 4k B.
//
// NOT YET RUN ON A GPU: compiled for sm_90a in CI only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "dllm/common.h"
#include "dllm/cuda/denoise_step.cuh"
#include "dllm/denoise_step.h"

namespace dllm::cuda {
namespace shard_detail {

using denoise_detail::kNegInf;
using denoise_detail::RowState;

// The state row layout (float64), as dllm::cpu::ShardState: m, best, best id, d at best, top1,
// top2, max of z, its id (ids global; -1: none).
constexpr int kStateSize = 8;
constexpr int kExportThreads = 256;  // one warp per position

// Merges each position's split states (pass 1) and writes its state row; z's max / argmax from
// the argmax kernel (zmax non-null: with_argmax). One warp per position.
template <denoise_detail::Stats kStats>
__global__ void __launch_bounds__(kExportThreads)
    shard_export_kernel(View2D<const int64_t> x,  // [B, L]
                        int64_t B, int64_t L, DenoiseParams p,
                        const RowState* partial,  // [B*L, splits]
                        int splits,
                        const float* zmax,  // [B*L] or null
                        const int64_t* am,  // [B*L] global ids (p.argmax's output) or null
                        double* out) {      // [B*L, 8]
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t pos = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; pos < B * L;
       pos += warps) {
    const int64_t b = pos / L, l = pos - b * L;
    RowState s = denoise_detail::empty_state();
    if (denoised(p, x(b, l), b, l))
      s = denoise_detail::merge_splits<kStats>(partial + pos * splits, splits);
    if (lane != 0) continue;
    double* o = out + pos * kStateSize;
    const bool chosen = s.best > kNegInf;
    o[0] = s.m;
    o[1] = s.best;
    o[2] = chosen ? static_cast<double>(s.best_i + p.vocab_start) : -1.0;
    o[3] = s.best_d;
    o[4] = s.m;
    o[5] = s.d2;
    const float z = zmax ? zmax[pos] : kNegInf;
    o[6] = z;
    o[7] = z > kNegInf ? static_cast<double>(am[pos]) : -1.0;
  }
}

// x0 / conf / argmax from the merged state rows and the all-reduced sums: the unsharded
// finalize. One thread per position. (A template only so that the header may define it: State is
// double.)
template <typename State>
__global__ void shard_finalize_kernel(View2D<const int64_t> x,  // [B, L]
                                      int64_t B, int64_t L, DenoiseParams p,
                                      const State* state,     // [B*L, 8] float64, merged
                                      const long long* sums,  // [B*L, 2], summed over shards
                                      int64_t* x0,            // [B, L] contiguous
                                      float* conf,            // [B, L] contiguous
                                      int64_t* argmax) {      // [B, L] contiguous
  for (int64_t pos = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; pos < B * L;
       pos += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = pos / L, l = pos - b * L;
    const int64_t xv = x(b, l);
    if (!denoised(p, xv, b, l)) {
      x0[pos] = xv;
      conf[pos] = kNegInf;
      argmax[pos] = xv;
      continue;
    }
    const State* st = state + pos * kStateSize;
    RowState s = denoise_detail::empty_state();
    s.m = static_cast<float>(st[0]);
    s.best = static_cast<float>(st[1]);
    s.best_i = st[2] >= 0 ? static_cast<int>(st[2]) : denoise_detail::kNoToken;  // global id
    s.best_d = static_cast<float>(st[3]);
    s.d2 = static_cast<float>(st[5]);
    const denoise_detail::Sums q{sums[2 * pos], sums[2 * pos + 1]};
    denoise_detail::finalize(s, q, p, b, l, xv, x0 + pos, conf + pos);
    argmax[pos] = st[7] >= 0 ? static_cast<int64_t>(st[7]) : xv;
  }
}

// The shard's k largest values (filtered by thr: values below it are -inf), in no particular
// order, -inf padded: out[pos, 0..k). One block per position. k < V: the k-th largest by radix
// select, then the values above it (fewer than k) and copies of it up to k.
template <typename In>
__global__ void __launch_bounds__(denoise_detail::kFilterThreads, 1)
    shard_top_k_kernel(denoise_detail::Rows<In> r, DenoiseParams p,
                       const float* thr,  // [B*L] or null
                       int64_t k,
                       float* out) {  // [B*L, k], -inf filled by the launcher
  __shared__ denoise_detail::FilterSmem fsh;
  __shared__ unsigned n_above;
  for (int64_t pos = blockIdx.x; pos < r.B * r.L; pos += gridDim.x) {
    const int64_t b = pos / r.L, l = pos - b * r.L;
    if (!denoised(p, r.x(b, l), b, l)) continue;  // block-uniform: stays -inf
    const int64_t src = r.src(p, l);
    const In* row = r.row(b, src);
    const In* urow = denoise_detail::uncond_row<In>(p, b, src);
    const float cut = thr ? thr[pos] : kNegInf;
    float* o = out + pos * k;
    const auto value = [&](denoise_detail::SuppressCursor& cur, int v) {
      return denoise_detail::cut_below(
          denoise_detail::scaled_at(row, urow, p.cfg_scale1, v, cur.hit(v), p.inv_temperature),
          cut);
    };
    denoise_detail::SuppressCursor cur;
    cur.init(r.sup, r.n_sup, 0);
    if (k >= r.V) {  // every value
      for (int v = threadIdx.x; v < r.V; v += blockDim.x) o[v] = value(cur, v);
      __syncthreads();
      continue;
    }
    const float kth = denoise_detail::top_k_value(row, urow, p.cfg_scale1, r.V, k, r.sup, r.n_sup,
                                                  p.inv_temperature, cut, fsh);
    if (threadIdx.x == 0) n_above = 0;
    __syncthreads();
    for (int v = threadIdx.x; v < r.V; v += blockDim.x) {
      const float s = value(cur, v);
      if (s > kth) o[atomicAdd(&n_above, 1u)] = s;  // < k of them
    }
    __syncthreads();
    for (int64_t i = n_above + threadIdx.x; i < k; i += blockDim.x) o[i] = kth;
    __syncthreads();
  }
}

// The max and the smallest finite value of each position's shard values (scaled logits cut below
// thr): out [B*L, 2] (-inf, +inf where not denoised or nothing finite). One block per position.
template <typename In>
__global__ void __launch_bounds__(denoise_detail::kFilterThreads)
    shard_range_kernel(denoise_detail::Rows<In> r, DenoiseParams p,
                       const float* thr,  // [B*L] or null
                       float* out) {      // [B*L, 2]
  __shared__ float s_hi[32], s_lo[32];
  constexpr float kInf = __builtin_inff();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t pos = blockIdx.x; pos < r.B * r.L; pos += gridDim.x) {
    const int64_t b = pos / r.L, l = pos - b * r.L;
    float hi = kNegInf, lo = kInf;
    if (denoised(p, r.x(b, l), b, l)) {  // block-uniform
      const int64_t src = r.src(p, l);
      const In* row = r.row(b, src);
      const In* urow = denoise_detail::uncond_row<In>(p, b, src);
      const float cut = thr ? thr[pos] : kNegInf;
      denoise_detail::SuppressCursor cur;
      cur.init(r.sup, r.n_sup, 0);
      for (int v = threadIdx.x; v < r.V; v += blockDim.x) {
        const float s = denoise_detail::cut_below(
            denoise_detail::scaled_at(row, urow, p.cfg_scale1, v, cur.hit(v), p.inv_temperature),
            cut);
        hi = fmaxf(hi, s);
        if (s > kNegInf) lo = fminf(lo, s);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      hi = fmaxf(hi, __shfl_xor_sync(0xFFFFFFFFu, hi, o));
      lo = fminf(lo, __shfl_xor_sync(0xFFFFFFFFu, lo, o));
    }
    if (lane == 0) {
      s_hi[warp] = hi;
      s_lo[warp] = lo;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < int(blockDim.x >> 5); ++w) {
        hi = fmaxf(hi, s_hi[w]);
        lo = fminf(lo, s_lo[w]);
      }
      out[2 * pos] = hi;
      out[2 * pos + 1] = lo;
    }
    __syncthreads();
  }
}

// One level of the unsharded top-p radix select (denoise_detail::top_p_level) on the shard:
// out[pos, bin] = (count, mass) of the shard's tokens with key >= float_key(lo[pos]) (lo null: all)
// whose key matches prefix[pos] above the byte at `shift`. Left as given (zeros) where not
// denoised or m_s[pos] = -inf. One block per position.
template <typename In>
__global__ void __launch_bounds__(denoise_detail::kFilterThreads, 1)
    shard_top_p_level_kernel(denoise_detail::Rows<In> r, DenoiseParams p,
                             const float* lo,        // [B*L] top_k_first's k-th value, or null
                             const float* m_s,       // [B*L] the row's max over every shard
                             const int64_t* prefix,  // [B*L] the key bits chosen so far
                             int shift,              // 24, 16, 8, 0
                             long long* out) {       // [B*L, 256, 2]
  __shared__ denoise_detail::FilterSmem fsh;
  const uint32_t pmask = shift >= 24 ? 0u : (0xFFFFFFFFu << (shift + 8));
  for (int64_t pos = blockIdx.x; pos < r.B * r.L; pos += gridDim.x) {
    const int64_t b = pos / r.L, l = pos - b * r.L;
    if (!denoised(p, r.x(b, l), b, l) || !(m_s[pos] > kNegInf)) continue;  // block-uniform
    const int64_t src = r.src(p, l);
    const In* row = r.row(b, src);
    const In* urow = denoise_detail::uncond_row<In>(p, b, src);
    const uint32_t lo_key = lo ? denoise_detail::float_key(lo[pos]) : 0u;
    denoise_detail::top_p_level(row, urow, p.cfg_scale1, r.V, lo_key, m_s[pos],
                                static_cast<uint32_t>(prefix[pos]), pmask, shift, r.sup, r.n_sup,
                                p.inv_temperature, fsh);
    long long* o = out + pos * 512;
    for (int i = threadIdx.x; i < 256; i += blockDim.x) {
      o[2 * i] = fsh.cnt[i];
      o[2 * i + 1] = static_cast<long long>(fsh.mass[i]);
    }
    __syncthreads();
  }
}

}  // namespace shard_detail

// Stage "state": pass 1 of every denoised position of the shard -> out [B*L, 8] float64 (the
// empty state where not denoised). p.vocab_start: the shard's first global id. p.argmax (with
// z's argmax): [B, L] int64 scratch, contiguous (argmax_sb = L), with zmax [B*L] float scratch;
// else null. thr: [B*L] the filters' global threshold, or null. workspace: B*L*splits RowStates
// (splits from denoise_step_plan of the unfiltered step).
template <typename In>
cudaError_t denoise_shard_state(const denoise_detail::Rows<In>& r, const DenoiseParams& p,
                                const float* thr, int splits, float* zmax, double* out,
                                void* workspace, cudaStream_t stream) {
  using namespace denoise_detail;
  const int64_t P = r.B * r.L;
  if (P == 0) return cudaSuccess;
  if (splits < 1 || workspace == nullptr || (p.argmax != nullptr && zmax == nullptr))
    return cudaErrorInvalidValue;
  cudaError_t err = launch_argmax(r, p, zmax, stream);
  if (err != cudaSuccess) return err;
  auto* partial = static_cast<RowState*>(workspace);
  return with_variant(p, p.cfg, [&](auto stats_tag, auto sample_tag, auto cfg_tag) {
    constexpr Stats kS = decltype(stats_tag)::value;
    constexpr bool kSample = decltype(sample_tag)::value;
    constexpr bool kCfg = decltype(cfg_tag)::value;
    const dim3 grid(position_blocks(P), static_cast<unsigned>(splits));
    denoise_fast_kernel<In, kS, kSample, kCfg, NoEpilogue><<<grid, kFastThreads, 0, stream>>>(
        r, p, nullptr, nullptr, FastIO{thr, partial, true}, splits, NoEpilogue{});
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    const int64_t blocks = ceil_div(P, shard_detail::kExportThreads / 32);
    shard_detail::shard_export_kernel<kS>
        <<<position_blocks(blocks), shard_detail::kExportThreads, 0, stream>>>(
            r.x, r.B, r.L, p, partial, splits, p.argmax ? zmax : nullptr, p.argmax, out);
    return cudaGetLastError();
  });
}

// Stage "sums": pass 2 of every denoised position of the shard with the global max anchor [B*L]
// (-inf: nothing) -> out [B*L, 2] (zeroed here). Random confidence: zeros.
template <typename In>
cudaError_t denoise_shard_sums(const denoise_detail::Rows<In>& r, const DenoiseParams& p,
                               const float* thr, const float* anchor, int splits, long long* out,
                               cudaStream_t stream) {
  using namespace denoise_detail;
  const int64_t P = r.B * r.L;
  if (P == 0) return cudaSuccess;
  if (splits < 1) return cudaErrorInvalidValue;
  cudaError_t err = cudaMemsetAsync(out, 0, size_t(P) * 2 * sizeof(long long), stream);
  if (err != cudaSuccess || p.confidence == Confidence::kRandom) return err;
  return with_variant(p, p.cfg, [&](auto stats_tag, auto, auto cfg_tag) {
    constexpr Stats kS = decltype(stats_tag)::value;
    constexpr bool kCfg = decltype(cfg_tag)::value;
    const dim3 grid(position_blocks(P), static_cast<unsigned>(splits));
    const SumsIO io{thr, nullptr, anchor, reinterpret_cast<unsigned long long*>(out), nullptr};
    denoise_sums_kernel<In, kS, kCfg, NoEpilogue>
        <<<grid, kFastThreads, 0, stream>>>(r, p, nullptr, nullptr, io, splits, NoEpilogue{});
    return cudaGetLastError();
  });
}

// Stage "top_k": the shard's k largest filtered values per position -> out [B*L, k] (-inf
// padded; -inf rows where not denoised).
template <typename In>
cudaError_t denoise_shard_top_k(const denoise_detail::Rows<In>& r, const DenoiseParams& p,
                                const float* thr, int64_t k, float* out, cudaStream_t stream) {
  const int64_t P = r.B * r.L;
  if (P == 0) return cudaSuccess;
  if (k < 1) return cudaErrorInvalidValue;
  shard_detail::shard_top_k_kernel<In>
      <<<denoise_detail::position_blocks(P), denoise_detail::kFilterThreads, 0, stream>>>(r, p, thr,
                                                                                          k, out);
  return cudaGetLastError();
}

// Stage "range": out [B*L, 2] = the max and the smallest finite shard value per position.
template <typename In>
cudaError_t denoise_shard_range(const denoise_detail::Rows<In>& r, const DenoiseParams& p,
                                const float* thr, float* out, cudaStream_t stream) {
  const int64_t P = r.B * r.L;
  if (P == 0) return cudaSuccess;
  shard_detail::shard_range_kernel<In>
      <<<denoise_detail::position_blocks(P), denoise_detail::kFilterThreads, 0, stream>>>(r, p, thr,
                                                                                          out);
  return cudaGetLastError();
}

// Stage "top_p_level": one level of the top-p radix select on the shard -> out [B*L, 256, 2]
// (count, mass) int64, zeroed here.
template <typename In>
cudaError_t denoise_shard_top_p_level(const denoise_detail::Rows<In>& r, const DenoiseParams& p,
                                      const float* lo, const float* m_s, const int64_t* prefix,
                                      int shift, long long* out, cudaStream_t stream) {
  const int64_t P = r.B * r.L;
  if (P == 0) return cudaSuccess;
  if (shift != 24 && shift != 16 && shift != 8 && shift != 0) return cudaErrorInvalidValue;
  cudaError_t err = cudaMemsetAsync(out, 0, size_t(P) * 512 * sizeof(long long), stream);
  if (err != cudaSuccess) return err;
  shard_detail::shard_top_p_level_kernel<In>
      <<<denoise_detail::position_blocks(P), denoise_detail::kFilterThreads, 0, stream>>>(
          r, p, lo, m_s, prefix, shift, out);
  return cudaGetLastError();
}

// x0 / conf / argmax [B, L] (contiguous) from the merged states [B*L, 8] and the summed sums.
inline cudaError_t denoise_shard_finalize(View2D<const int64_t> x, int64_t B, int64_t L,
                                          const DenoiseParams& p, const double* state,
                                          const long long* sums, int64_t* x0, float* conf,
                                          int64_t* argmax, cudaStream_t stream) {
  const int64_t P = B * L;
  if (P == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  shard_detail::shard_finalize_kernel<double>
      <<<denoise_detail::position_blocks(ceil_div(P, kThreads)), kThreads, 0, stream>>>(
          x, B, L, p, state, sums, x0, conf, argmax);
  return cudaGetLastError();
}

}  // namespace dllm::cuda
