// dllm/cuda/block_attention.cuh — CUDA launcher for block_attention: masked attention of a
// denoising step over a paged prefix (+ the block and suffix). Arguments and semantics:
// dllm/block_attention.h (dllm_kernels/reference/block_attention.py is the spec; the native test
// compares with the CPU kernel, dllm/cpu/block_attention.h).
//
// Napkin math (from dllm/block_attention.h): the LLaDA-8B step B = 1, Lq = 32, Hq = Hkv = 32, D = 128,
// N = 4096 keys, bf16 is 2.1 GFLOP and 67 MB of K/V: ~22 us at ~3 TB/s (H100 HBM3) against ~3 us
// of tensor-core time, so the floor is one read of K/V per KV head. Per 32-key tile a CTA moves
// 16 KB of K/V and (64 rows) does 1 MFLOP: 64 FLOP/B, far below the ~300 FLOP/B where an H100
// turns compute bound, so WMMA tensor cores (not the most efficient MMA path) are plenty; what
// matters is keeping enough K/V bytes in flight (double-buffered cp.async tiles, 2 CTAs per SM:
// up to 4 tiles = 64 KB requested per SM against the ~25 KB Little's law asks for at 3 TB/s) and
// filling the SMs at small B (split-KV).
//
// Mapping (FlashAttention-2 style). One CTA = 4 warps = (b, kv head, tile of 64 query rows, KV
// split). A row is (query i, head h of the GQA group): row r of the (b, kv head) unit is query
// i = r / group of head h = kv_head * group + r % group, exactly like the CPU kernel, so every K/V
// tile loaded to shared memory serves the whole group (R = group * Lq rows per unit). Warp w owns
// rows [16w, 16w + 16) of the tile and keeps its output O [16, D] in fp32 WMMA accumulators.
// Per key tile of kKeys (64 for D = 64, 32 for D = 96 / 128, 16 for D = 256):
//   1. all threads copy the next tile's K / V rows into the other shared buffer (cp.async 16 B
//      chunks when every row is 16-byte aligned, else element copies; each key row's address
//      comes from the page table like BlockAttentionArgs::key / value, so any page size works;
//      keys past the CTA's visible prefix are zero-filled),
//   2. S = Q K^T (WMMA 16x16x16, bf16 / f16 in, fp32 accumulate; operands loaded from shared
//      memory with ldmatrix-backed wmma.load) -> store_matrix_sync to the warp's fp32 S buffer,
//   3. online softmax from shared memory: lane pair (2r, 2r + 1) owns row r (half the columns
//      each): masks keys >= visible(row), running max m / sum l in log2 units (exp2f of
//      scale * log2(e) * s), P = exp2(s - m) rounded to T into the warp's P buffer, per-row
//      correction exp2(m_old - m_new) into a 16-float buffer,
//   4. O = diag(corr) O + P V. The row of each accumulator element is not assumed: at start each
//      warp loads a 16x16 matrix whose element (r, c) is r into an accumulator fragment with
//      load_matrix_sync, which gives every lane the row of each of its fragment elements (the
//      layout store_matrix_sync / mma_sync also use); the per-row scale is then a register
//      multiply of O by corr[row_of_element].
// Key tiles past the CTA's longest visible prefix are never loaded; a warp whose rows all stop
// before a tile skips its math. Epilogue: O / l through shared memory (fp32 staging over the Q /
// K / V buffers) -> 16-byte stores of T (element stores for misaligned rows), lse = (m + log2 l)
// * ln 2. Rows that see no key give zeros and lse = -inf, never NaN (masked scores are -inf,
// exp2(-inf) = 0, 1 / l only when l > 0).
//
// Split-KV: when B * Hkv * ceil(R / 64) CTAs cannot fill 2 CTAs per SM (batch-1 steps over a
// long prefix), each unit's key tiles are divided among `splits` = floor(2 * num_sms / units)
// CTAs (one wave; at most 64, at least 4 key tiles each) along gridDim.y, chosen on the
// host from the shapes and num_sms only (so block_attention_workspace_bytes and block_attention
// agree); the tile ranges are cut on the device from the actual visible length. Each split writes
// its normalised partial output o_s and lse_s (fp32, workspace [splits, B * Hkv * R, D + 1]) and a
// merge kernel (one warp per row) forms out = sum_s e^{lse_s - M} o_s / sum_s e^{lse_s - M},
// lse = M + log(sum), skipping empty splits (lse_s = -inf, their o_s is never written or read).
// LLaDA example on 132 SMs: 32 units -> 8 splits (256 CTAs of 16 tiles); the partials are
// 8 * 1024 rows * 129 * 4 B = 4.2 MB written and read back, ~3 us next to the ~22 us of K/V.
//
// Shared memory (bytes, 4 warps): D = 64: 72.7 K, D = 96: 54.3 K, D = 128: 66.8 K, D = 256: 76 K
// (> 48 K: opted in per launch); registers (150-245 per thread, no spills) allow 2 CTAs per SM,
// which both H100 and A100 shared memory hold. Requires sm_80+ (bf16 WMMA, cp.async); T = float
// is not supported on CUDA (cudaErrorNotSupported), nor is a head_dim outside {64, 96, 128, 256}.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "dllm/block_attention.h"
#include "dllm/common.h"
#include "dllm/float16.h"

namespace dllm::cuda {
namespace attn_detail {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = kWarps * 16;     // query rows (group heads x queries) per CTA
constexpr int kCtasPerSm = 2;          // split-KV aims at kCtasPerSm * num_sms CTAs
constexpr int kMinTilesPerSplit = 4;   // ... each with at least this many key tiles
constexpr int kMaxSplits = 64;
constexpr int kMergeThreads = 256;     // one warp per row
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kNegInf = -__builtin_inff();

constexpr bool supported_head_dim(int64_t D) { return D == 64 || D == 96 || D == 128 || D == 256; }
constexpr int keys_per_tile(int64_t D) { return D <= 64 ? 64 : (D <= 128 ? 32 : 16); }
// 2 CTAs per SM (<= 255 registers per thread). Capping at 168 registers for 3 CTAs per SM made
// ptxas spill for D = 64 / 128 (~100 B per thread); 2 CTAs with 2 tiles each in flight keep
// ~64 KB of K/V requests per SM outstanding, above the ~25 KB Little's law asks for at 3 TB/s.
constexpr int kMinCtasPerSm = 2;
constexpr int align128(int bytes) { return (bytes + 127) / 128 * 128; }
constexpr int max_int(int x, int y) { return x > y ? x : y; }

// Shared memory of the main kernel, byte offsets. Every WMMA pointer must be 32-byte aligned and
// every leading dimension a multiple of 16 bytes; the pads of 8 (16-bit) / 4 (fp32) elements
// shift consecutive rows by 16 bytes, so 8-row ldmatrix phases hit distinct banks.
template <int D>
struct Smem {
  static constexpr int kKeys = keys_per_tile(D);
  static constexpr int kLd = D + 8;          // Q / K / V rows (16-bit elements)
  static constexpr int kLdS = kKeys + 4;     // S rows (fp32)
  static constexpr int kLdP = kKeys + 8;     // P rows (16-bit)
  static constexpr int kLdO = D + 4;         // output staging rows (fp32)
  static constexpr int kTileElems = kKeys * kLd;
  static constexpr int kQ = 0;                                  // Q  [kRows][kLd]
  static constexpr int kKV = kQ + kRows * kLd * 2;              // KV [2 stages][K, V][kKeys][kLd]
  static constexpr int kMain = kKV + 4 * kTileElems * 2;
  static constexpr int kOBytes = kWarps * 16 * kLdO * 4;        // O staging [kRows][kLdO] (end)
  static constexpr int kS = align128(max_int(kMain, kOBytes));  // S  [kWarps][16][kLdS] fp32
  static constexpr int kP = align128(kS + kWarps * 16 * kLdS * 4);  // P [kWarps][16][kLdP]
  static constexpr int kRow = align128(kP + kWarps * 16 * kLdP * 2);  // [kWarps][16] fp32
  static constexpr int kBytes = kRow + kWarps * 16 * 4;
  static_assert(D % 16 == 0 && kKeys % 16 == 0, "WMMA tiles are 16 x 16 x 16");
  static_assert(kKV % 128 == 0 && (kTileElems * 2) % 32 == 0, "32-byte aligned WMMA tiles");
};

// The WMMA element type of T and float -> T (round to nearest even).
template <typename T>
struct Elem;
template <>
struct Elem<bf16_t> {
  using type = __nv_bfloat16;
  static __device__ __forceinline__ uint16_t from_float(float x) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  }
};
template <>
struct Elem<f16_t> {
  using type = __half;
  static __device__ __forceinline__ uint16_t from_float(float x) {
    return __half_as_ushort(__float2half_rn(x));
  }
};

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  return uint32_t(Elem<T>::from_float(lo)) | (uint32_t(Elem<T>::from_float(hi)) << 16);
}

// ---- WMMA operand loads from shared memory ------------------------------------------------------
// wmma::load_matrix_sync for bf16 emits the generic-address form of wmma.load (f16 gets .shared),
// i.e. 4 generic 32-bit loads per fragment. For bf16 the same instruction is issued with .shared
// and a shared-window address: same instruction, same fragment layout, 4 registers (8 bf16).

namespace wmma = nvcuda::wmma;

template <typename Frag>
__device__ __forceinline__ uint32_t* frag_regs(Frag& f) {
  static_assert(sizeof(f.x) == 16, "a 16x16x16 bf16 operand fragment is 4 registers");
  return reinterpret_cast<uint32_t*>(&f.x[0]);
}

#define DLLM_WMMA_LOAD_BF16(OP, LAYOUT)                                                  \
  asm volatile("wmma.load." OP ".sync.aligned." LAYOUT ".m16n16k16.shared.bf16 "        \
               "{%0, %1, %2, %3}, [%4], %5;\n"                                           \
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])                          \
               : "r"(static_cast<unsigned>(__cvta_generic_to_shared(p))), "r"(ldm)       \
               : "memory")

// A [16 x 16] row-major at p (leading dimension ldm elements).
template <typename T, typename W>
__device__ __forceinline__ void load_a(
    wmma::fragment<wmma::matrix_a, 16, 16, 16, W, wmma::row_major>& f, const uint16_t* p,
    unsigned ldm) {
  if constexpr (std::is_same_v<T, bf16_t>) {
    uint32_t* r = frag_regs(f);
    DLLM_WMMA_LOAD_BF16("a", "row");
  } else {
    wmma::load_matrix_sync(f, reinterpret_cast<const W*>(p), ldm);
  }
}
// B [16 x 16]: element (k, n) at p[k * ldm + n] (row_major) or p[n * ldm + k] (col_major).
template <typename T, typename W>
__device__ __forceinline__ void load_b(
    wmma::fragment<wmma::matrix_b, 16, 16, 16, W, wmma::row_major>& f, const uint16_t* p,
    unsigned ldm) {
  if constexpr (std::is_same_v<T, bf16_t>) {
    uint32_t* r = frag_regs(f);
    DLLM_WMMA_LOAD_BF16("b", "row");
  } else {
    wmma::load_matrix_sync(f, reinterpret_cast<const W*>(p), ldm);
  }
}
template <typename T, typename W>
__device__ __forceinline__ void load_b(
    wmma::fragment<wmma::matrix_b, 16, 16, 16, W, wmma::col_major>& f, const uint16_t* p,
    unsigned ldm) {
  if constexpr (std::is_same_v<T, bf16_t>) {
    uint32_t* r = frag_regs(f);
    DLLM_WMMA_LOAD_BF16("b", "col");
  } else {
    wmma::load_matrix_sync(f, reinterpret_cast<const W*>(p), ldm);
  }
}
#undef DLLM_WMMA_LOAD_BF16

// ---- cp.async (sm_80+) --------------------------------------------------------------------------

// 16 bytes global -> shared; valid == false: writes 16 zero bytes and reads nothing (src-size 0;
// src must still be a valid global address).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- K / V / Q tiles ----------------------------------------------------------------------------

template <typename T>
struct KVRow {
  const T* k;
  const T* v;
};

// Key j (0 <= j < cache_len + kv_len) of row b, KV head h: the addresses of
// BlockAttentionArgs::key / value (page clamped like page_of), with 32-bit page arithmetic and one
// page-table read for K and V. The strides stay kernel parameters (constant bank), which keeps
// them out of the registers the accumulators need.
template <typename T>
__device__ __forceinline__ KVRow<T> kv_row(const BlockAttentionArgs<T>& a, int64_t b, int j, int h,
                                           int cache_len, int page_size) {
  if (j < cache_len) {
    const int pj = j / page_size, slot = j - pj * page_size;
    int64_t page = a.block_table[b * a.max_pages + pj];
    page = page < 0 ? 0 : (page >= a.num_pages ? a.num_pages - 1 : page);
    return {a.k_cache + page * a.kc_stride_page + slot * a.kc_stride_slot + h * a.kc_stride_head,
            a.v_cache + page * a.vc_stride_page + slot * a.vc_stride_slot + h * a.vc_stride_head};
  }
  const int64_t t = j - cache_len;
  return {a.k + b * a.k_stride_b + t * a.k_stride_l + h * a.k_stride_h,
          a.v + b * a.v_stride_b + t * a.v_stride_l + h * a.v_stride_h};
}

// Keys [j0, j0 + kKeys) of (b, kv head h) -> Ks, Vs [kKeys][kLd]; keys >= j_end are zeros (a masked
// column multiplies its V row by p = 0, which must not be a stale NaN). vec: cp.async, completed by
// the caller's cp_async_wait; else plain element copies.
template <typename T, int D>
__device__ __forceinline__ void load_kv_tile(const BlockAttentionArgs<T>& a, int64_t b, int h,
                                             int cache_len, int j0, int64_t j_end, uint16_t* Ks,
                                             uint16_t* Vs, bool vec) {
  using S = Smem<D>;
  const int page_size = static_cast<int>(a.page_size);  // used only when cache_len > 0
  if (vec) {
    constexpr int kChunks = D * 2 / 16;  // 16-byte chunks per row
    for (int idx = threadIdx.x; idx < S::kKeys * kChunks; idx += kThreads) {
      const int r = idx / kChunks, c = idx % kChunks, j = j0 + r;
      const bool ok = j < j_end;
      const void* src_k = a.q;  // any valid global address: not read when !ok (zero fill)
      const void* src_v = a.q;
      if (ok) {
        const KVRow<T> p = kv_row(a, b, j, h, cache_len, page_size);
        src_k = p.k + c * 8;
        src_v = p.v + c * 8;
      }
      cp_async16(Ks + r * S::kLd + c * 8, src_k, ok);
      cp_async16(Vs + r * S::kLd + c * 8, src_v, ok);
    }
  } else {
    for (int idx = threadIdx.x; idx < S::kKeys * D; idx += kThreads) {
      const int r = idx / D, d = idx % D, j = j0 + r;
      uint16_t kx = 0, vx = 0;
      if (j < j_end) {
        const KVRow<T> p = kv_row(a, b, j, h, cache_len, page_size);
        kx = p.k[d].bits;
        vx = p.v[d].bits;
      }
      Ks[r * S::kLd + d] = kx;
      Vs[r * S::kLd + d] = vx;
    }
  }
}

// The CTA's query rows [row0, row0 + nrows) -> Qs [kRows][kLd]; rows >= nrows are zeros.
template <typename T, int D>
__device__ __forceinline__ void load_q_tile(const BlockAttentionArgs<T>& a, int64_t b, int kvh,
                                            int group, int row0, int nrows, uint16_t* Qs,
                                            bool vec) {
  using S = Smem<D>;
  if (vec) {
    constexpr int kChunks = D * 2 / 16;
    for (int idx = threadIdx.x; idx < kRows * kChunks; idx += kThreads) {
      const int r = idx / kChunks, c = idx % kChunks;
      uint4 x = make_uint4(0u, 0u, 0u, 0u);
      if (r < nrows) {
        const int row = row0 + r, i = row / group, h = kvh * group + row % group;
        x = *reinterpret_cast<const uint4*>(a.q + b * a.q_stride_b + i * a.q_stride_l +
                                            h * a.q_stride_h + c * 8);
      }
      *reinterpret_cast<uint4*>(Qs + r * S::kLd + c * 8) = x;
    }
  } else {
    for (int idx = threadIdx.x; idx < kRows * D; idx += kThreads) {
      const int r = idx / D, d = idx % D;
      uint16_t x = 0;
      if (r < nrows) {
        const int row = row0 + r, i = row / group, h = kvh * group + row % group;
        x = a.q[b * a.q_stride_b + i * a.q_stride_l + h * a.q_stride_h + d].bits;
      }
      Qs[r * S::kLd + d] = x;
    }
  }
}

// A warp's `rows` finished rows (fp32 staging Ow [16][kLdO], row r = CTA row row_base + r) -> out.
template <typename T, int D>
__device__ __forceinline__ void store_out_rows(const BlockAttentionArgs<T>& a, int64_t b, int kvh,
                                               int group, int row_base, int rows, const float* Ow,
                                               bool vec, int lane) {
  constexpr int kLdO = Smem<D>::kLdO;
  if (vec) {
    constexpr int kVecs = D / 8;  // 8 elements = 16 bytes
    for (int idx = lane; idx < rows * kVecs; idx += 32) {
      const int r = idx / kVecs, c = idx % kVecs;
      const int row = row_base + r, i = row / group, h = kvh * group + row % group;
      const float4 x0 = *reinterpret_cast<const float4*>(Ow + r * kLdO + c * 8);
      const float4 x1 = *reinterpret_cast<const float4*>(Ow + r * kLdO + c * 8 + 4);
      const uint4 w = make_uint4(pack2<T>(x0.x, x0.y), pack2<T>(x0.z, x0.w), pack2<T>(x1.x, x1.y),
                                 pack2<T>(x1.z, x1.w));
      *reinterpret_cast<uint4*>(a.out + b * a.o_stride_b + i * a.o_stride_l + h * a.o_stride_h +
                                c * 8) = w;
    }
  } else {
    for (int idx = lane; idx < rows * D; idx += 32) {
      const int r = idx / D, d = idx % D;
      const int row = row_base + r, i = row / group, h = kvh * group + row % group;
      a.out[b * a.o_stride_b + i * a.o_stride_l + h * a.o_stride_h + d] =
          T{Elem<T>::from_float(Ow[r * kLdO + d])};
    }
  }
}

// ---- main kernel --------------------------------------------------------------------------------

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, kMinCtasPerSm)
block_attention_kernel(const BlockAttentionArgs<T> a,  // q [B, Lq, Hq, D], k / v [B, Lk, Hkv, D],
                                                       // caches [num_pages, page_size, Hkv, D],
                                                       // out [B, Lq, Hq, D], lse [B, Hq, Lq]
                       int R,                          // rows per (b, kv head): (Hq / Hkv) * Lq
                       int row_tiles,                  // ceil(R / kRows); gridDim.x: B*Hkv*that
                       bool vec_in,                    // q, k, v, caches: 16-byte aligned rows
                       bool vec_out,                   // out: 16-byte aligned rows
                       float* part_o,                  // [splits, B*Hkv*R, D] (gridDim.y > 1)
                       float* part_lse) {              // [splits, B * Hkv * R]
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using S = Smem<D>;
  using W = typename Elem<T>::type;
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, W, wmma::row_major>;
  using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, W, wmma::col_major>;  // K^T
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, W, wmma::row_major>;   // V
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  constexpr int kKeys = S::kKeys, kLd = S::kLd, kLdS = S::kLdS, kLdP = S::kLdP;
  constexpr int kDF = D / 16, kKF = kKeys / 16, kNE = FragC::num_elements;

  extern __shared__ __align__(128) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  uint16_t* Qs = reinterpret_cast<uint16_t*>(smem + S::kQ);
  uint16_t* KV = reinterpret_cast<uint16_t*>(smem + S::kKV);
  float* Sw = reinterpret_cast<float*>(smem + S::kS) + warp * 16 * kLdS;     // warp's S [16][kLdS]
  uint16_t* Pw = reinterpret_cast<uint16_t*>(smem + S::kP) + warp * 16 * kLdP;  // P [16][kLdP]
  float* roww = reinterpret_cast<float*>(smem + S::kRow) + warp * 16;        // warp's per-row scale
  float* Ow = reinterpret_cast<float*>(smem) + warp * 16 * S::kLdO;          // epilogue staging

  // This CTA: (b, kv head, row tile) from blockIdx.x (b slowest: tiles of one unit are adjacent
  // and share their K / V in L2), split from blockIdx.y.
  const int Hkv = static_cast<int>(a.Hkv), group = static_cast<int>(a.Hq / a.Hkv);
  const int tile = static_cast<int>(blockIdx.x % row_tiles);
  const int64_t bk = blockIdx.x / row_tiles;  // b * Hkv + kv head
  const int kvh = static_cast<int>(bk % Hkv);
  const int64_t b = bk / Hkv;
  const int split = blockIdx.y, splits = gridDim.y;
  const int row0 = tile * kRows, nrows = min(kRows, R - row0);
  const int64_t N = a.B * a.Hkv * R;     // partial rows
  const int64_t n0 = bk * R + row0;      // partial row of CTA row 0
  const int cache_len = a.cache_len(b), kv_len = a.kv_len(b);
  const int64_t total = int64_t{cache_len} + kv_len;

  // Key tiles: each row sees a key prefix, the CTA's last row (largest query) the longest one.
  const int64_t cta_vis = a.visible(b, (row0 + nrows - 1) / group, total);
  const int ktiles = static_cast<int>((cta_vis + kKeys - 1) / kKeys);
  const int per_split = (ktiles + splits - 1) / splits;
  const int t_begin = min(ktiles, split * per_split), t_end = min(ktiles, t_begin + per_split);
  if (splits > 1 && t_begin >= t_end) {  // an empty split: lse -inf, the merge skips its o
    for (int r = threadIdx.x; r < nrows; r += kThreads) part_lse[split * N + n0 + r] = kNegInf;
    return;
  }

  // Lane pair (2r, 2r + 1) keeps the online-softmax state of the warp's row r (identical copies).
  const int r_lane = lane / 2, half = lane % 2;
  const int wrow = warp * 16 + r_lane;  // CTA row
  const int warp_rows = max(0, min(16, nrows - warp * 16));
  const bool warp_active = warp_rows > 0;
  const int64_t vis = wrow < nrows ? a.visible(b, (row0 + wrow) / group, total) : 0;
  const int64_t warp_vis =
      warp_active ? a.visible(b, (row0 + warp * 16 + warp_rows - 1) / group, total) : 0;
  const float sl2 = a.scale * kLog2e;  // scores in log2 units
  float m2 = kNegInf, l = 0.0f;        // running max (log2 units) and sum of exp2(s - m2)

  // Row of each accumulator element: load the matrix M[r][c] = r into a fragment; element e's row
  // is kept in bits [4e, 4e + 4) of rows_of (one register instead of kNE).
  static_assert(kNE <= 8, "8 row ids of 4 bits");
  uint32_t rows_of = 0;
  if (warp_active) {
    for (int e = lane; e < 256; e += 32) Sw[(e / 16) * kLdS + e % 16] = static_cast<float>(e / 16);
    __syncwarp();
    FragC rowf;
    wmma::load_matrix_sync(rowf, Sw, kLdS, wmma::mem_row_major);
#pragma unroll
    for (int e = 0; e < kNE; ++e) rows_of |= static_cast<uint32_t>(rowf.x[e]) << (4 * e);
    __syncwarp();
  }
  FragC o[kDF];
#pragma unroll
  for (int f = 0; f < kDF; ++f) wmma::fill_fragment(o[f], 0.0f);

  load_q_tile<T, D>(a, b, kvh, group, row0, nrows, Qs, vec_in);
  // Stage s: K at KV + 2s * kTileElems, V right after.
  if (t_begin < t_end)
    load_kv_tile<T, D>(a, b, kvh, cache_len, t_begin * kKeys, cta_vis, KV, KV + S::kTileElems,
                       vec_in);
  cp_async_commit();

  for (int t = t_begin; t < t_end; ++t) {
    const int s = (t - t_begin) & 1;
    if (t + 1 < t_end) {  // prefetch the next tile into the other stage, then wait for this one
      uint16_t* Kn = KV + 2 * (s ^ 1) * S::kTileElems;
      load_kv_tile<T, D>(a, b, kvh, cache_len, (t + 1) * kKeys, cta_vis, Kn, Kn + S::kTileElems,
                         vec_in);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // tile t (and Q) visible to every warp
    const int j0 = t * kKeys;
    if (warp_active && warp_vis > j0) {  // warp-uniform
      const uint16_t* Ks = KV + 2 * s * S::kTileElems;
      const uint16_t* Vs = Ks + S::kTileElems;
      // S = Q K^T: [16, kKeys] for the warp's 16 rows.
      FragC sc[kKF];
#pragma unroll
      for (int n = 0; n < kKF; ++n) wmma::fill_fragment(sc[n], 0.0f);
#pragma unroll
      for (int kc = 0; kc < kDF; ++kc) {
        FragA qa;
        load_a<T>(qa, Qs + warp * 16 * kLd + kc * 16, kLd);
#pragma unroll
        for (int n = 0; n < kKF; ++n) {
          FragBt kb;  // element (d, key) at Ks[key * kLd + d]
          load_b<T>(kb, Ks + n * 16 * kLd + kc * 16, kLd);
          wmma::mma_sync(sc[n], qa, kb, sc[n]);
        }
      }
#pragma unroll
      for (int n = 0; n < kKF; ++n)
        wmma::store_matrix_sync(Sw + n * 16, sc[n], kLdS, wmma::mem_row_major);
      __syncwarp();

      // Online softmax of row r_lane over columns 4k + 2 * half + {0, 1}: a max pass and an exp
      // pass, both reading S from shared memory (no per-lane score array held in registers).
      const int64_t nv = vis - j0;  // visible columns of this tile for row r_lane
      const int nvalid = nv < 0 ? 0 : (nv > kKeys ? kKeys : static_cast<int>(nv));
      const float* srow = Sw + r_lane * kLdS + 2 * half;
      float mt = kNegInf;
#pragma unroll
      for (int k = 0; k < kKeys / 4; ++k) {
        const int c = 4 * k + 2 * half;
        const float2 sv = *reinterpret_cast<const float2*>(srow + 4 * k);
        const float s0 = c < nvalid ? sv.x * sl2 : kNegInf;
        const float s1 = c + 1 < nvalid ? sv.y * sl2 : kNegInf;
        mt = fmaxf(mt, fmaxf(s0, s1));
      }
      mt = fmaxf(mt, __shfl_xor_sync(0xFFFFFFFFu, mt, 1));
      const float m_new = fmaxf(m2, mt);
      const bool none = m_new == kNegInf;                  // no visible key yet: p = 0
      const float corr = none ? 1.0f : exp2f(m2 - m_new);  // m2 = -inf: 0 (o and l are 0 anyway)
      const float base = none ? 0.0f : m_new;
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < kKeys / 4; ++k) {
        const int c = 4 * k + 2 * half;
        const float2 sv = *reinterpret_cast<const float2*>(srow + 4 * k);
        const float p0 = c < nvalid ? exp2f(sv.x * sl2 - base) : 0.0f;
        const float p1 = c + 1 < nvalid ? exp2f(sv.y * sl2 - base) : 0.0f;
        sum += p0 + p1;
        *reinterpret_cast<uint32_t*>(Pw + r_lane * kLdP + c) = pack2<T>(p0, p1);
      }
      sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 1);
      l = l * corr + sum;
      m2 = m_new;
      if (half == 0) roww[r_lane] = corr;
      __syncwarp();

      // O = diag(corr) O + P V.
      float cf[kNE];
#pragma unroll
      for (int e = 0; e < kNE; ++e) cf[e] = roww[(rows_of >> (4 * e)) & 15u];
#pragma unroll
      for (int f = 0; f < kDF; ++f)
#pragma unroll
        for (int e = 0; e < kNE; ++e) o[f].x[e] *= cf[e];
#pragma unroll
      for (int kc = 0; kc < kKF; ++kc) {
        FragA pa;
        load_a<T>(pa, Pw + kc * 16, kLdP);
#pragma unroll
        for (int f = 0; f < kDF; ++f) {
          FragB vb;  // element (key, d) at Vs[key * kLd + d]
          load_b<T>(vb, Vs + kc * 16 * kLd + f * 16, kLd);
          wmma::mma_sync(o[f], pa, vb, o[f]);
        }
      }
    }
    __syncthreads();  // every warp is done with stage s before iteration t + 1 refills it
  }

  // Epilogue: O / l -> fp32 staging (over Q / K / V, no longer read) -> out or the partials.
  __syncthreads();
  if (warp_active) {
    if (half == 0) roww[r_lane] = l > 0.0f ? 1.0f / l : 0.0f;  // no visible key: zeros
    __syncwarp();
    float cf[kNE];
#pragma unroll
    for (int e = 0; e < kNE; ++e) cf[e] = roww[(rows_of >> (4 * e)) & 15u];
#pragma unroll
    for (int f = 0; f < kDF; ++f) {
#pragma unroll
      for (int e = 0; e < kNE; ++e) o[f].x[e] *= cf[e];
      wmma::store_matrix_sync(Ow + f * 16, o[f], S::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
    const float lse_row = l > 0.0f ? (m2 + log2f(l)) * kLn2 : kNegInf;
    if (splits == 1) {
      store_out_rows<T, D>(a, b, kvh, group, row0 + warp * 16, warp_rows, Ow, vec_out, lane);
      if (a.lse != nullptr && half == 0 && wrow < nrows) {
        const int row = row0 + wrow, i = row / group, h = kvh * group + row % group;
        a.lse[(b * a.Hq + h) * a.Lq + i] = lse_row;
      }
    } else {
      float* dst = part_o + (split * N + n0 + warp * 16) * D;
      constexpr int kV4 = D / 4;
      for (int idx = lane; idx < warp_rows * kV4; idx += 32) {
        const int r = idx / kV4, c = idx % kV4;
        *reinterpret_cast<float4*>(dst + r * D + c * 4) =
            *reinterpret_cast<const float4*>(Ow + r * S::kLdO + c * 4);
      }
      if (half == 0 && wrow < nrows) part_lse[split * N + n0 + wrow] = lse_row;
    }
  }
#endif
}

// ---- split-KV merge -----------------------------------------------------------------------------

template <typename T, int D>
__global__ void __launch_bounds__(kMergeThreads)
block_attention_merge_kernel(const BlockAttentionArgs<T> a,  // out [B, Lq, Hq, D], lse [B, Hq, Lq]
                             int R,                          // rows per (b, kv head)
                             bool vec_out,                   // out: 16-byte aligned rows
                             const float* part_o,            // [splits, N, D]
                             const float* part_lse,          // [splits, N], -inf: empty
                             int splits, int64_t N) {        // N = B * Hkv * R
  const int lane = threadIdx.x % 32;
  const int64_t n = (int64_t{blockIdx.x} * kMergeThreads + threadIdx.x) / 32;  // one warp per row
  if (n >= N) return;
  const int Hkv = static_cast<int>(a.Hkv), group = static_cast<int>(a.Hq / a.Hkv);
  const int64_t bk = n / R;
  const int row = static_cast<int>(n % R), kvh = static_cast<int>(bk % Hkv);
  const int64_t b = bk / Hkv;
  const int i = row / group, h = kvh * group + row % group;

  float M = kNegInf;
  for (int s = lane; s < splits; s += 32) M = fmaxf(M, part_lse[s * N + n]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xFFFFFFFFu, M, off));
  float denom = 0.0f;
  if (M != kNegInf)
    for (int s = lane; s < splits; s += 32) {
      const float x = part_lse[s * N + n];
      if (x != kNegInf) denom += expf(x - M);
    }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) denom += __shfl_xor_sync(0xFFFFFFFFu, denom, off);

  constexpr int kV4 = D / 4, kPer = (kV4 + 31) / 32;  // float4 chunks of a row, per lane
  float4 acc[kPer];
#pragma unroll
  for (int p = 0; p < kPer; ++p) acc[p] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (M != kNegInf)
    for (int s = 0; s < splits; ++s) {
      const float x = part_lse[s * N + n];
      if (x == kNegInf) continue;  // empty split: its o was never written
      const float w = expf(x - M);
      const float4* src = reinterpret_cast<const float4*>(part_o + (s * N + n) * D);
#pragma unroll
      for (int p = 0; p < kPer; ++p) {
        const int c = lane + 32 * p;
        if (c < kV4) {
          const float4 v = src[c];
          acc[p].x += w * v.x;
          acc[p].y += w * v.y;
          acc[p].z += w * v.z;
          acc[p].w += w * v.w;
        }
      }
    }
  const float inv = denom > 0.0f ? 1.0f / denom : 0.0f;
  T* dst = a.out + b * a.o_stride_b + int64_t{i} * a.o_stride_l + int64_t{h} * a.o_stride_h;
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int c = lane + 32 * p;
    if (c >= kV4) continue;
    const float4 v = make_float4(acc[p].x * inv, acc[p].y * inv, acc[p].z * inv, acc[p].w * inv);
    if (vec_out) {
      *reinterpret_cast<uint2*>(dst + c * 4) = make_uint2(pack2<T>(v.x, v.y), pack2<T>(v.z, v.w));
    } else {
      dst[c * 4 + 0] = T{Elem<T>::from_float(v.x)};
      dst[c * 4 + 1] = T{Elem<T>::from_float(v.y)};
      dst[c * 4 + 2] = T{Elem<T>::from_float(v.z)};
      dst[c * 4 + 3] = T{Elem<T>::from_float(v.w)};
    }
  }
  if (lane == 0 && a.lse != nullptr)
    a.lse[(b * a.Hq + h) * a.Lq + i] = M == kNegInf || denom <= 0.0f ? kNegInf : M + logf(denom);
}

// ---- host side ----------------------------------------------------------------------------------

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Every (size, stride) pair whose dimension has more than one index steps by a multiple of 16 B.
template <typename T>
inline bool strides16(std::initializer_list<int64_t> size_stride) {
  const int64_t* p = size_stride.begin();
  for (size_t k = 0; k + 1 < size_stride.size(); k += 2)
    if (p[k] > 1 && (p[k + 1] * static_cast<int64_t>(sizeof(T))) % 16 != 0) return false;
  return true;
}

template <typename T>
inline bool inputs_vec16(const BlockAttentionArgs<T>& a) {
  bool ok = aligned16(a.q) &&
            strides16<T>({a.B, a.q_stride_b, a.Lq, a.q_stride_l, a.Hq, a.q_stride_h});
  if (a.k != nullptr)
    ok = ok && aligned16(a.k) && aligned16(a.v) &&
         strides16<T>({a.B, a.k_stride_b, a.Lk, a.k_stride_l, a.Hkv, a.k_stride_h, a.B,
                       a.v_stride_b, a.Lk, a.v_stride_l, a.Hkv, a.v_stride_h});
  if (a.k_cache != nullptr)
    ok = ok && aligned16(a.k_cache) && aligned16(a.v_cache) &&
         strides16<T>({a.num_pages, a.kc_stride_page, a.page_size, a.kc_stride_slot, a.Hkv,
                       a.kc_stride_head, a.num_pages, a.vc_stride_page, a.page_size,
                       a.vc_stride_slot, a.Hkv, a.vc_stride_head});
  return ok;
}

template <typename T>
inline bool output_vec16(const BlockAttentionArgs<T>& a) {
  return aligned16(a.out) &&
         strides16<T>({a.B, a.o_stride_b, a.Lq, a.o_stride_l, a.Hq, a.o_stride_h});
}

template <typename T, int D>
cudaError_t launch(const BlockAttentionArgs<T>& a, int R, int64_t row_tiles, int64_t units,
                   int splits, float* part_o, float* part_lse, cudaStream_t stream) {
  using S = Smem<D>;
  auto* kernel = block_attention_kernel<T, D>;
  if (S::kBytes > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kBytes);
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(static_cast<unsigned>(units), static_cast<unsigned>(splits));
  kernel<<<grid, kThreads, S::kBytes, stream>>>(a, R, static_cast<int>(row_tiles), inputs_vec16(a),
                                                output_vec16(a), part_o, part_lse);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || splits == 1) return err;
  const int64_t N = a.B * a.Hkv * R;
  const int64_t blocks = ceil_div(N, kMergeThreads / 32);
  block_attention_merge_kernel<T, D><<<static_cast<unsigned>(blocks), kMergeThreads, 0, stream>>>(
      a, R, output_vec16(a), part_o, part_lse, splits, N);
  return cudaGetLastError();
}

}  // namespace attn_detail

// How a call is laid out: CTAs per (b, kv head) row tiles, KV splits, and the fp32 workspace the
// split partials need. A pure function of the shapes (never of device lengths) and num_sms.
struct BlockAttentionPlan {
  bool supported;          // T = bf16 / f16, head_dim in {64, 96, 128, 256}, Hq % Hkv == 0
  int64_t rows;            // R = (Hq / Hkv) * Lq rows per (b, kv head)
  int64_t row_tiles;       // ceil(R / 64)
  int64_t units;           // B * Hkv * row_tiles CTAs per split
  int splits;              // KV splits (gridDim.y); 1: no workspace, no merge
  size_t workspace_bytes;  // splits > 1: splits * B * Hkv * R * (D + 1) * 4
};

template <typename T>
inline BlockAttentionPlan block_attention_plan(const BlockAttentionArgs<T>& a, int num_sms) {
  using namespace attn_detail;
  BlockAttentionPlan p{};
  p.splits = 1;
  p.supported = !std::is_same_v<T, float> && supported_head_dim(a.D) && a.Hkv > 0 &&
                a.Hq >= a.Hkv && a.Hq % a.Hkv == 0;
  if (!p.supported || a.B <= 0 || a.Lq <= 0) return p;
  p.rows = (a.Hq / a.Hkv) * a.Lq;
  p.row_tiles = ceil_div(p.rows, kRows);
  p.units = a.B * a.Hkv * p.row_tiles;
  const bool cache = a.k_cache != nullptr && a.num_pages >= 1 && a.max_pages >= 1;
  const int64_t max_keys = (cache ? a.max_pages * a.page_size : 0) + (a.k != nullptr ? a.Lk : 0);
  const int64_t target = int64_t{std::max(num_sms, 1)} * kCtasPerSm;
  if (p.units < target && max_keys > 0) {
    const int64_t by_keys = ceil_div(ceil_div(max_keys, keys_per_tile(a.D)), kMinTilesPerSplit);
    p.splits = static_cast<int>(  // one wave: splits * units <= target
        std::clamp<int64_t>(std::min(target / p.units, by_keys), 1, kMaxSplits));
  }
  if (p.splits > 1)
    p.workspace_bytes =
        size_t(p.splits) * size_t(a.B * a.Hkv * p.rows) * size_t(a.D + 1) * sizeof(float);
  return p;
}

// Bytes of the workspace block_attention needs for these shapes on a device with num_sms SMs
// (0: none, workspace may be nullptr).
template <typename T>
inline size_t block_attention_workspace_bytes(const BlockAttentionArgs<T>& a, int num_sms) {
  return block_attention_plan(a, num_sms).workspace_bytes;
}

// out (and lse when a.lse != nullptr) of every (b, query, head); semantics in block_attention.h.
// All pointers in `a` are device pointers. workspace: >= block_attention_workspace_bytes(a,
// num_sms), 16-byte aligned (nullptr when that is 0); num_sms must be the value given to the size
// function. Errors: cudaErrorNotSupported for T = float, a head_dim outside {64, 96, 128, 256} or
// a device below sm_80; cudaErrorInvalidValue for inconsistent shapes or a missing workspace.
template <typename T>
cudaError_t block_attention(const BlockAttentionArgs<T>& args, void* workspace,
                            size_t workspace_bytes, int num_sms, cudaStream_t stream) {
  using namespace attn_detail;
  if constexpr (std::is_same_v<T, float>) {
    return cudaErrorNotSupported;
  } else {
    if (args.B == 0 || args.Lq == 0 || args.Hq == 0) return cudaSuccess;
    if (args.B < 0 || args.Lq < 0 || args.Hq < 0 || args.Hkv <= 0 || args.Hq % args.Hkv != 0 ||
        args.Hq < args.Hkv || (args.k != nullptr && args.Lk < 0))
      return cudaErrorInvalidValue;
    if (!supported_head_dim(args.D)) return cudaErrorNotSupported;
    if (args.mask == AttnMask::kBlockCausal && args.block_size < 1) return cudaErrorInvalidValue;
    const BlockAttentionPlan p = block_attention_plan(args, num_sms);  // as the size function
    BlockAttentionArgs<T> a = args;
    if (a.k_cache != nullptr && (a.num_pages < 1 || a.max_pages < 1)) {
      a.k_cache = nullptr;  // no page to read: no cached keys (the plan counts none either)
      a.v_cache = nullptr;
    }
    if (a.k_cache != nullptr && (a.page_size < 1 || a.page_size > INT32_MAX))
      return cudaErrorInvalidValue;
    if (p.rows > INT32_MAX / 2 || p.units > INT32_MAX) return cudaErrorInvalidValue;
    float* part_o = nullptr;
    float* part_lse = nullptr;
    if (p.splits > 1) {
      if (workspace == nullptr || workspace_bytes < p.workspace_bytes || !aligned16(workspace))
        return cudaErrorInvalidValue;
      part_o = static_cast<float*>(workspace);
      part_lse = part_o + size_t(p.splits) * size_t(a.B * a.Hkv * p.rows) * size_t(a.D);
    }
    int dev = 0, major = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err == cudaSuccess)
      err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (err != cudaSuccess) return err;
    if (major < 8) return cudaErrorNotSupported;
    const int R = static_cast<int>(p.rows);
    const auto go = [&](auto d) {
      return launch<T, decltype(d)::value>(a, R, p.row_tiles, p.units, p.splits, part_o,
                                           part_lse, stream);
    };
    switch (a.D) {
      case 64: return go(std::integral_constant<int, 64>{});
      case 96: return go(std::integral_constant<int, 96>{});
      case 128: return go(std::integral_constant<int, 128>{});
      default: return go(std::integral_constant<int, 256>{});
    }
  }
}

}  // namespace dllm::cuda
