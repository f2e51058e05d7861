// dllm/cuda/select_transfer.cuh — CUDA launcher for select_transfer: per row of confidences, which
// eligible positions (conf > -inf) commit this step (dllm_kernels/reference/select_transfer.py is
// the specification, followed literally: positions are ranked by torch's stable descending sort,
// i.e. ties to the lower index and NaN above everything).
//
// Napkin math: read B*L*4 bytes, write B*L bytes: a [64, 4096] batch is 1.3 MB, <1 us of HBM time,
// so the call is launch-bound (~3-5 us). The work is a per-row sort: L <= 4096 is a bitonic sort of
// 64-bit (key, ~index) words in shared memory (log2(N)*(log2(N)+1)/2 = 78 barrier-separated stages
// of N/2 compare-exchanges for N = 4096, a few us per row, rows in parallel blocks). Longer rows
// use an O(L^2) rank count through shared-memory tiles: correct, slow (a fallback). No host sync.
//
// Layout: one block per row (grid-stride over rows), any block size. The row's work is select_row,
// a __device__ function that the fused denoise_and_select kernel (dllm/cuda/denoise_and_select.cuh)
// runs as its epilogue in the block that completes a row; it reads conf through L2 (__ldcg) and
// hands each decision to a callback (here: write the bool byte).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "dllm/common.h"
#include "dllm/philox.h"
#include "dllm/sampling.h"
#include "dllm/select_transfer.h"

namespace dllm::cuda {
namespace select_detail {

constexpr int kSortMax = 4096;  // rows up to this length are sorted in shared memory
constexpr int kCountThreads = 1024;
constexpr int kTile = 4096;  // keys per shared-memory tile of the rank count
constexpr float kNegInf = -__builtin_inff();

// Descending order as a uint32: +inf .. -inf, NaN ranked with -inf (never eligible); -0 == +0.
__device__ __forceinline__ uint32_t sort_key(float c) {
  if (c != c) c = kNegInf;
  const uint32_t u = __float_as_uint(c == 0.0f ? 0.0f : c);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // <= 0xFF800000 (+inf)
}

struct RowRule {
  SelectRule rule;
  double value;  // threshold (compared as float32) or factor (float64)
  bool strict;
  const int64_t* k;     // [B] num_transfer (element stride rows_stride)
  const float* prob;    // [B] probability (element stride rows_stride)
  int64_t rows_stride;  // of k / prob: a column of a [B, steps] schedule is read in place
  uint64_t seed;
  uint32_t offset;
};

// One row of confidences, conf[b, l] for l in [0, L). Loads go through L2 (__ldcg): in the fused
// denoise_and_select kernel the row was written by other blocks of the same launch.
struct ConfRow {
  const float* p;  // &conf[b, 0]
  int64_t stride;  // element stride of l
  __device__ __forceinline__ float operator()(int64_t l) const { return __ldcg(p + l * stride); }
};

// Shared memory of one row's selection: this header, then the sort words (N = sort_size(L) x 8
// bytes, L <= kSortMax) or a tile of kTile keys (4 bytes each, the rank count of longer rows).
struct SelectScratch {
  int64_t first_hit;  // factor rule: the smallest rank that is a hit (L: none)
  int64_t pad;        // keeps the words 16-byte aligned
};

// The bitonic sort's length: a power of two >= L (rows of L <= kSortMax).
DLLM_HOST_DEVICE int sort_size(int64_t L) {
  int N = 1;
  while (N < L) N <<= 1;
  return N;
}

// Bytes of shared memory select_row needs for rows of length L (<= 32 KB + 16).
inline size_t select_scratch_bytes(int64_t L) {
  return sizeof(SelectScratch) + (L <= kSortMax ? size_t(sort_size(L)) * sizeof(uint64_t)
                                                : size_t(kTile) * sizeof(uint32_t));
}

// The decision of the position of rank r (take: rows selected by rank, num_transfer / factor).
__device__ __forceinline__ bool decide(const RowRule& rr, int64_t r, float c, int64_t take) {
  if (!(c > kNegInf)) return false;  // not eligible (also NaN)
  if (rr.rule == SelectRule::kThreshold) {
    const float tau = static_cast<float>(rr.value);
    const bool above = rr.strict ? c > tau : c >= tau;
    return above || r == 0;
  }
  return r < take;
}

// Factor rule: rank r in [1, count) with c_r < fl32(1 - f / (r + 2)) is a hit (the threshold
// in float64, rounded to float32: Fast-dLLM compares a float32 tensor with a Python float).
__device__ __forceinline__ bool factor_hit(const RowRule& rr, int64_t r, float c, int64_t count) {
  return r >= 1 && r < count &&
         c < static_cast<float>(1.0 - rr.value / static_cast<double>(r + 2));  // f32, as Fast-dLLM
}

// num_transfer: k clipped to the eligible count (negative k selects nothing).
__device__ __forceinline__ int64_t take_of(const RowRule& rr, int64_t b, int64_t count,
                                           int64_t first_hit, int64_t L) {
  if (rr.rule == SelectRule::kNumTransfer) {
    const int64_t k = rr.k[b * rr.rows_stride];
    return k < count ? k : count;
  }
  if (rr.rule == SelectRule::kFactor)
    return (first_hit == L || first_hit == count - 1) ? count : first_hit;
  return 0;
}

__device__ __forceinline__ int64_t count_eligible(ConfRow conf, int64_t L) {
  int64_t count = 0;
  for (int64_t base = 0; base < L; base += blockDim.x) {
    const int64_t l = base + threadIdx.x;
    count += __syncthreads_count(l < L && conf(l) > kNegInf);
  }
  return count;
}

// Probability rule: independent coins, no ranking, no shared memory, no barrier.
template <typename Emit>
__device__ __forceinline__ void probability_row(ConfRow conf, const RowRule& rr, int64_t b,
                                                int64_t L, Emit& emit) {
  const float pb = rr.prob[b * rr.rows_stride];
  for (int64_t l = threadIdx.x; l < L; l += blockDim.x) {
    bool t = false;
    if (conf(l) > kNegInf)
      t = uniform_closed0(philox_group(rr.seed, rr.offset, b, l, kSlotGroupTransfer).w[0]) < pb;
    emit(l, t);
  }
}

// L <= kSortMax: bitonic sort of (key << 32 | ~l) descending in shared memory; the word at
// index r is the position of rank r.
template <typename Emit>
__device__ __forceinline__ void sorted_row(ConfRow conf, const RowRule& rr, int64_t b, int64_t L,
                                           int64_t count, SelectScratch& sh, uint64_t* words,
                                           Emit& emit) {
  const int N = sort_size(L);
  for (int i = threadIdx.x; i < N; i += blockDim.x)
    words[i] = i < L ? (uint64_t(sort_key(conf(i))) << 32) | (0xFFFFFFFFu - uint32_t(i))
                     : 0;  // padding sorts last (real keys >= sort_key(-inf) > 0)
  __syncthreads();
  for (int k = 2; k <= N; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < N; i += blockDim.x) {
        const int ixj = i ^ j;
        if (ixj > i) {
          const uint64_t a = words[i], c = words[ixj];
          const bool descending = (i & k) == 0;
          if (descending ? a < c : a > c) {
            words[i] = c;
            words[ixj] = a;
          }
        }
      }
      __syncthreads();
    }
  }
  if (rr.rule == SelectRule::kEntropyBound) {
    // H = -conf in ascending order (rank order); the running float64 sum S_k must be the
    // sequential one of the reference (torch.cumsum on CPU): one thread walks the row (<= 4096
    // adds, a few us; the row's other threads idle). Accept rank k iff fl32(S_k) - H_k <= gamma.
    if (threadIdx.x == 0) {
      const float gamma = static_cast<float>(rr.value);
      double sum = 0;
      for (int64_t r = 0; r < L; ++r) {
        const int64_t l = 0xFFFFFFFFu - uint32_t(words[r]);
        bool take = false;
        if (r < count) {
          const float h = -conf(l);
          sum += h;
          take = __fsub_rn(static_cast<float>(sum), h) <= gamma;
        }
        emit(l, take);
      }
    }
    return;
  }
  if (rr.rule == SelectRule::kFactor) {
    for (int r = threadIdx.x; r < L; r += blockDim.x) {
      const int64_t l = 0xFFFFFFFFu - uint32_t(words[r]);
      if (factor_hit(rr, r, conf(l), count))
        atomicMin(reinterpret_cast<long long*>(&sh.first_hit), r);
    }
    __syncthreads();
  }
  const int64_t take = take_of(rr, b, count, sh.first_hit, L);
  for (int r = threadIdx.x; r < L; r += blockDim.x) {
    const int64_t l = 0xFFFFFFFFu - uint32_t(words[r]);
    emit(l, decide(rr, r, conf(l), take));
  }
}

// L > kSortMax: rank(l) = #{i : key_i > key_l or (key_i == key_l and i < l)}, counted through
// shared-memory tiles of keys. Factor needs the first hit before deciding: two sweeps.
template <typename Emit>
__device__ __forceinline__ void counted_row(ConfRow conf, const RowRule& rr, int64_t b, int64_t L,
                                            int64_t count, SelectScratch& sh, uint32_t* tile,
                                            Emit& emit) {
  const int sweeps = rr.rule == SelectRule::kFactor ? 2 : 1;
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    const bool deciding = sweep == sweeps - 1;
    const int64_t take = deciding ? take_of(rr, b, count, sh.first_hit, L) : 0;
    for (int64_t base = 0; base < L; base += blockDim.x) {  // block-uniform trip count
      const int64_t l = base + threadIdx.x;
      const float c = l < L ? conf(l) : kNegInf;
      const uint32_t key = sort_key(c);
      int64_t rank = 0;
      for (int64_t t0 = 0; t0 < L; t0 += kTile) {
        const int n = static_cast<int>(L - t0 < kTile ? L - t0 : int64_t(kTile));
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) tile[i] = sort_key(conf(t0 + i));
        __syncthreads();
        if (l < L) {
          for (int i = 0; i < n; ++i) {
            const uint32_t ki = tile[i];
            rank += (ki > key || (ki == key && t0 + i < l)) ? 1 : 0;
          }
        }
      }
      if (l < L) {
        if (deciding)
          emit(l, decide(rr, rank, c, take));
        else if (factor_hit(rr, rank, c, count))
          atomicMin(reinterpret_cast<long long*>(&sh.first_hit), rank);
      }
    }
    __syncthreads();
  }
}

// The selection of row b, run by every thread of one block (any blockDim, a multiple of 32):
// emit(l, take) exactly once for every l in [0, L), by some thread. scratch: shared memory of
// select_scratch_bytes(L) bytes, 16-byte aligned. Ends with a barrier (or touches no shared
// memory: the probability rule), so the caller may reuse scratch and call again for another row.
template <typename Emit>
__device__ void select_row(const RowRule& rr, ConfRow conf, int64_t b, int64_t L,
                           unsigned char* scratch, Emit&& emit) {
  if (rr.rule == SelectRule::kProbability) {
    probability_row(conf, rr, b, L, emit);
    return;
  }
  SelectScratch& sh = *reinterpret_cast<SelectScratch*>(scratch);
  unsigned char* body = scratch + sizeof(SelectScratch);
  const int64_t count = count_eligible(conf, L);  // (a barrier: the previous row is done)
  if (threadIdx.x == 0) sh.first_hit = L;
  if (L <= kSortMax) {
    sorted_row(conf, rr, b, L, count, sh, reinterpret_cast<uint64_t*>(body), emit);
    __syncthreads();  // words and first_hit are reused by the next row
  } else if (rr.rule != SelectRule::kEntropyBound) {  // (entropy_bound: L <= kSortMax only)
    __syncthreads();                                  // first_hit
    counted_row(conf, rr, b, L, count, sh, reinterpret_cast<uint32_t*>(body), emit);
  }
}

// Kernels are templates (instantiated once per program) so that this header can be included by
// several translation units without duplicate definitions.

// One block per row (grid-stride over rows).
template <int kUnused = 0>
__global__ void __launch_bounds__(kCountThreads)
    select_transfer_kernel(View2D<const float> conf,  // [B, L] -inf: not eligible
                           RowRule rr, int64_t B, int64_t L,
                           View2D<uint8_t> out) {           // [B, L] bool bytes
  extern __shared__ __align__(16) unsigned char scratch[];  // [select_scratch_bytes(L)]
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    select_row(rr, ConfRow{&conf(b, 0), conf.stride_col}, b, L, scratch,
               [&](int64_t l, bool take) { out(b, l) = take ? 1 : 0; });
  }
}

}  // namespace select_detail

inline cudaError_t select_transfer(View2D<const float> conf,  // [B, L] -inf: not eligible
                                   SelectRule rule,
                                   double value,           // threshold / factor
                                   bool strict,            // threshold: > instead of >=
                                   const int64_t* k_rows,  // [B] num_transfer, or null
                                   const float* p_rows,    // [B] probability, or null
                                   uint64_t seed, uint32_t offset, int64_t B, int64_t L,
                                   View2D<uint8_t> out,  // [B, L] bool bytes, written
                                   cudaStream_t stream,
                                   int64_t rows_stride = 1) {  // element stride of k / p_rows
  using namespace select_detail;
  if (B == 0 || L == 0) return cudaSuccess;
  if (rule == SelectRule::kNumTransfer && k_rows == nullptr) return cudaErrorInvalidValue;
  if (rule == SelectRule::kProbability && p_rows == nullptr) return cudaErrorInvalidValue;
  if (rule == SelectRule::kEntropyBound && L > kSortMax) return cudaErrorInvalidValue;
  const RowRule rr{rule, value, strict, k_rows, p_rows, rows_stride, seed, offset};
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(B, 1 << 30));
  const int threads =
      L <= kSortMax ? std::clamp(sort_size(L) / 2, 32, kCountThreads) : kCountThreads;
  select_transfer_kernel<>
      <<<blocks, threads, select_scratch_bytes(L), stream>>>(conf, rr, B, L, out);
  return cudaGetLastError();
}

}  // namespace dllm::cuda
