// dllm/cpu/block_attention_amx.h — the CPU block_attention unit for bf16 on Intel AMX (Sapphire
// Rapids and later): both products on the tile unit, softmax in fp32 with AVX-512. Included by
// block_attention.h; chosen at run time when the CPU has AMX-BF16 + AVX512-BF16 and Linux grants
// the tile state (DLLM_KERNELS_AMX=0 in the environment turns it off; the fp32 path then runs).
//
// Why: on AVX-512 FMA the fp32 unit is compute bound (~32 FMA / cycle / core); one TDPBF16PS is
// 16 x 16 x 32 = 8192 multiply-adds in ~16 cycles (~512 / cycle), so with AMX a step becomes
// K/V-bandwidth bound: LLaDA-8B step, 2048 cached keys, bf16: 34 MB of K/V -> ~1.3 ms at the
// 26 GB/s this project's 2-core machine copies, versus ~9 ms of FMA work.
//
// Per unit (b, kv head, rows = the GQA group's heads x queries): Q^T in AMX's pair layout, built
// once (16 x 16 word transposes; per 32-row sub-tile, so a sub-tile's block is contiguous). Per
// tile of kAmxKeys keys: K rows copied as stored (AMX's left operand), V in pair layout ([32 key
// pairs][D][2]: rows 2i and 2i+1 interleaved), both shared by every sub-tile; then per sub-tile
//   S^T = K Q^T (fp32 tiles, unscaled) in the fp32 kernel's [keys][rows] layout, so the same
//   across-rows online softmax runs on it (AVX-512, no horizontal reductions, scale applied
//   there), P rounded to bf16 (as FlashAttention does on GPUs) and transposed back into rows
//   (pairs of keys as words, 16 x 16 word transposes), O = O * corr + P V with the fp32
//   accumulator tiles loaded from and stored to the unit's O buffer.
// Accuracy: scores are exact products of bf16 values summed in fp32; the one extra rounding
// against the fp32 path is P to bf16 (relative 2^-9 per probability, normalised by the fp32 sum).
#pragma once

#if defined(DLLM_ATTN_X86)

#include <immintrin.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <cstdlib>

namespace dllm::cpu {

#define DLLM_AMX_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))

// AMX-BF16 and AVX512-BF16 present and the tile state granted by the kernel (Linux >= 5.16
// needs the ARCH_REQ_XCOMP_PERM request once per process before the first tile instruction).
inline bool attn_has_amx() {
  static const bool has = [] {
    if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16") ||
        !__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw"))
      return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return has;
}

// The AMX path is used for bf16 when the CPU has it, unless DLLM_KERNELS_AMX=0 (read per call,
// so tests can compare both paths in one process).
inline bool attn_use_amx() {
  const char* env = std::getenv("DLLM_KERNELS_AMX");
  if (env != nullptr && env[0] == '0' && env[1] == '\0') return false;
  return attn_has_amx();
}

// Keys per tile of the AMX unit: twice the fp32 kernel's, so each sub-tile's fp32 accumulator
// tiles are loaded and stored half as often per key.
constexpr int64_t kAmxKeys = 128;

namespace amx {

// Tile registers (the intrinsics take literal numbers): tmm0..3 accumulators C, tmm4/5 left
// operands A, tmm6/7 right operands B; every tile is configured as 16 rows x 64 bytes (fp32:
// 16 x 16, bf16: 16 x 32, bf16 pairs: 16 x 16 x 2).

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

DLLM_AMX_TARGET inline void configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

// Rows 2i and 2i + 1 of V (D bf16 each) -> vv[i][d][2] (D a multiple of 32).
DLLM_AMX_TARGET inline void interleave_pair(const uint16_t* v0, const uint16_t* v1, uint16_t* dst,
                                            int64_t D) {
  alignas(64) static constexpr uint16_t kLo[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5,
                                                   37, 6, 38, 7, 39, 8, 40, 9, 41, 10, 42,
                                                   11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  const __m512i lo = _mm512_load_si512(kLo);
  const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  for (int64_t d = 0; d < D; d += 32) {
    const __m512i x = _mm512_loadu_si512(v0 + d), y = _mm512_loadu_si512(v1 + d);
    _mm512_storeu_si512(dst + 2 * d, _mm512_permutex2var_epi16(x, lo, y));
    _mm512_storeu_si512(dst + 2 * d + 32, _mm512_permutex2var_epi16(x, hi, y));
  }
}

// S^T[nkp, 32] = K Q^T for one key tile and one 32-row sub-tile, unscaled: k: [nkp][D] bf16 rows
// (the tile's keys as stored), qp: [D/2][32] words (pairs of Q^T: word (d/2, r) = q[r][d], q[r][d+1]),
// st: [nkp][kAttnRows] fp32 (the fp32 kernel's layout: the softmax runs across rows).
// Tiles: C0 C1 / C2 C3 = keys kb..+15 / kb+16..+31 x rows 0-15 / 16-31.
DLLM_AMX_TARGET inline void scores_t(const uint16_t* k, const uint32_t* qp, float* st, int64_t nkp,
                                     int64_t D) {
  for (int64_t kb = 0; kb < nkp; kb += 32) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t d = 0; d < D; d += 32) {
      _tile_loadd(4, k + kb * D + d, D * 2);
      _tile_loadd(5, k + (kb + 16) * D + d, D * 2);
      _tile_loadd(6, qp + d / 2 * kAttnRows, kAttnRows * 4);
      _tile_loadd(7, qp + d / 2 * kAttnRows + 16, kAttnRows * 4);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, st + kb * kAttnRows, kAttnRows * 4);
    _tile_stored(1, st + kb * kAttnRows + 16, kAttnRows * 4);
    _tile_stored(2, st + (kb + 16) * kAttnRows, kAttnRows * 4);
    _tile_stored(3, st + (kb + 16) * kAttnRows + 16, kAttnRows * 4);
  }
}

// Probabilities P^T (st: [nkp][kAttnRows] fp32) -> P as AMX's left operand, pb: [32][kAmxKeys]
// bf16 (round to nearest even): keys j, j + 1 of a row become one word, words of 16 rows for 16
// key pairs are built in registers and transposed.
DLLM_AMX_TARGET inline void probs_to_rows(const float* st, uint16_t* pb, int64_t nkp) {
  alignas(64) static constexpr uint16_t kPair[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5,
                                                     21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26,
                                                     11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i pair = _mm512_load_si512(kPair);
  auto* words = reinterpret_cast<uint32_t*>(pb);
  for (int64_t half = 0; half < 32; half += 16) {
    for (int64_t kp0 = 0; kp0 < nkp / 2; kp0 += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        const float* row = st + 2 * (kp0 + i) * kAttnRows + half;
        const __m512bh two = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + kAttnRows),
                                                 _mm512_loadu_ps(row));  // low: key j, high: j + 1
        r[i] = _mm512_permutexvar_epi16(pair, (__m512i)two);
      }
      transpose16x16_avx512(r, words + half * (kAmxKeys / 2) + kp0, kAmxKeys / 2);
    }
  }
}

// O[32, D] += P[32, nkp] V for one key tile: pb: [32, kAmxKeys] bf16, vv: [32 pairs][D][2]
// bf16, o: 32 rows of D fp32. Tiles: C0 C1 / C2 C3 = rows 0-15 / 16-31 x columns n..+15 / +16..+31.
DLLM_AMX_TARGET inline void pv(const uint16_t* pb, const uint16_t* vv, float* o, int64_t nkp,
                               int64_t D) {
  for (int64_t n = 0; n < D; n += 32) {
    _tile_loadd(0, o + n, D * 4);
    _tile_loadd(1, o + n + 16, D * 4);
    _tile_loadd(2, o + 16 * D + n, D * 4);
    _tile_loadd(3, o + 16 * D + n + 16, D * 4);
    for (int64_t ks = 0; ks < nkp; ks += 32) {  // 32 keys = 16 pairs per step
      _tile_loadd(4, pb + ks, kAmxKeys * 2);
      _tile_loadd(5, pb + 16 * kAmxKeys + ks, kAmxKeys * 2);
      _tile_loadd(6, vv + (ks / 2 * D + n) * 2, D * 4);
      _tile_loadd(7, vv + (ks / 2 * D + n + 16) * 2, D * 4);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, o + n, D * 4);
    _tile_stored(1, o + n + 16, D * 4);
    _tile_stored(2, o + 16 * D + n, D * 4);
    _tile_stored(3, o + 16 * D + n + 16, D * 4);
  }
}

}  // namespace amx

// Scratch of one AMX unit, in floats (bf16 buffers count half): rows padded to 32.
inline int64_t attn_amx_scratch_floats(int64_t D, int64_t rows) {
  const int64_t R32 = (rows + 31) / 32 * 32;
  return R32 * D / 2           // qp  [R32 / 32][D / 2][32] words: Q^T pairs per sub-tile
         + R32 * D             // o   [R32, D] fp32
         + kAmxKeys * D       // kb, vv: [128 keys, D] bf16 each
         + kAmxKeys * kAttnRows  // st [128, 32] fp32 scores -> probabilities
         + 16 * kAmxKeys      // pb  [32, 128] bf16
         + D / 2               // a zero row of D bf16 (padding keys and rows)
         + 2 * R32 + 2 * 32;   // m, l [R32]; corr, nvis [32]
}

// block_attention_unit (block_attention.h) for bf16 on AMX: same arguments, same results up to
// the rounding of P to bf16. scratch: attn_amx_scratch_floats(D, row1 - row0) floats.
template <typename StoreOut>
DLLM_AMX_TARGET void block_attention_unit_amx(const BlockAttentionArgs<bf16_t>& a, int64_t b,
                                              int64_t kv_head, int64_t row0, int64_t row1,
                                              float* scratch, StoreOut&& store) {
  const int64_t D = a.D, group = a.Hq / a.Hkv, R = row1 - row0;
  const int64_t R32 = (R + 31) / 32 * 32;  // rows padded to whole 32-row sub-tiles
  float* next = scratch;
  const auto take = [&next](int64_t floats) { float* p = next; next += floats; return p; };
  auto* qp = reinterpret_cast<uint32_t*>(take(R32 * D / 2));  // [R32/32][D/2][32] Q^T pairs
  float* o = take(R32 * D);                                   // [R32, D] unnormalised output
  auto* kb = reinterpret_cast<uint16_t*>(take(kAmxKeys * D / 2));  // [128][D] K rows
  auto* vv = reinterpret_cast<uint16_t*>(take(kAmxKeys * D / 2));  // [64][D][2] V pairs
  float* st = take(kAmxKeys * kAttnRows);                    // [128, 32] S^T -> P^T
  auto* pb = reinterpret_cast<uint16_t*>(take(16 * kAmxKeys));     // [32, 128] P, bf16
  auto* zero = reinterpret_cast<uint16_t*>(take(D / 2));      // [D] zeros: padding keys / rows
  float* m = take(R32);                                       // [R32] running max
  float* l = take(R32);                                       // [R32] running sum
  float* corr = take(32);                                     // [32]
  float* nvis = take(32);                                     // [32] keys each row sees here
  const int32_t cache_len = a.cache_len(b);
  const int64_t total = int64_t{cache_len} + a.kv_len(b);
  auto visible = [&](int64_t r) {  // keys row r of the unit sees (a prefix); padding rows: none
    return r < R ? a.visible(b, (row0 + r) / group, total) : int64_t{0};
  };
  std::memset(zero, 0, sizeof(uint16_t) * D);
  std::memset(o, 0, sizeof(float) * R32 * D);
  const auto* zeros = reinterpret_cast<const uint32_t*>(zero);
  // Q^T pairs, 16 rows x 16 d-pairs per transpose, read where q is stored.
  int64_t max_vis = 0;
  for (int64_t r0 = 0; r0 < R32; r0 += 16) {
    const uint32_t* rows[16];
    for (int rr = 0; rr < 16; ++rr) {
      const int64_t r = r0 + rr, row = row0 + r, i = row / group, h = kv_head * group + row % group;
      rows[rr] = r < R ? reinterpret_cast<const uint32_t*>(a.q + b * a.q_stride_b + i * a.q_stride_l +
                                                           h * a.q_stride_h)
                       : zeros;
      m[r] = -std::numeric_limits<float>::infinity();
      l[r] = 0.0f;
      max_vis = std::max(max_vis, visible(r));
    }
    uint32_t* dst = qp + (r0 / 32) * (D / 2) * kAttnRows + r0 % 32;
    for (int64_t p = 0; p < D / 2; p += 16) {
      transpose16x16_avx512(rows, dst + p * kAttnRows, kAttnRows);
      for (int rr = 0; rr < 16; ++rr) rows[rr] += rows[rr] == zeros ? 0 : 16;
    }
  }
  amx::configure();
  // Row pointers of this tile and the next; rows of one KV head sit a whole token slot apart
  // (Hkv * D elements), beyond the hardware prefetchers, so the next tile's K / V rows are
  // prefetched into L2, two per V pair built (not all at once: a prefetch that misses holds a
  // fill buffer, and a burst of them stalls; not into L1: the unit's buffers fill most of it).
  const bf16_t* kp[2][kAmxKeys];
  const bf16_t* vp[2][kAmxKeys];
  int cur = 0;
  if (max_vis > 0)
    a.key_value_rows(b, 0, std::min(kAmxKeys, max_vis), kv_head, cache_len, kp[0], vp[0]);
  for (int64_t j0 = 0; j0 < max_vis; j0 += kAmxKeys, cur ^= 1) {  // later tiles: masked for all
    const int64_t nk = std::min(kAmxKeys, max_vis - j0);
    const int64_t nkp = (nk + 31) / 32 * 32;             // keys padded to AMX steps (pad: 0)
    const int64_t nn = std::clamp<int64_t>(max_vis - j0 - kAmxKeys, 0, kAmxKeys);  // next tile
    if (nn > 0) a.key_value_rows(b, j0 + kAmxKeys, nn, kv_head, cache_len, kp[cur ^ 1], vp[cur ^ 1]);
    for (int64_t jp = 0; jp < nkp; jp += 2) {  // K rows and V pairs; the next tile's rows prefetched
      if (jp < nn) attn_prefetch_rows(kp[cur ^ 1] + jp, vp[cur ^ 1] + jp, std::min<int64_t>(2, nn - jp), D);
      for (int64_t j = jp; j < jp + 2; ++j)
        std::memcpy(kb + j * D, j < nk ? reinterpret_cast<const uint16_t*>(kp[cur][j]) : zero,
                    sizeof(uint16_t) * D);
      const auto* v0 = jp < nk ? reinterpret_cast<const uint16_t*>(vp[cur][jp]) : zero;
      const auto* v1 = jp + 1 < nk ? reinterpret_cast<const uint16_t*>(vp[cur][jp + 1]) : zero;
      amx::interleave_pair(v0, v1, vv + jp * D, D);
    }
    for (int64_t t0 = 0; t0 < R32; t0 += 32) {  // sub-tiles of 32 rows share the K/V tile
      bool any = false;
      for (int64_t r = 0; r < 32; ++r) {
        nvis[r] = static_cast<float>(std::clamp<int64_t>(visible(t0 + r) - j0, 0, nk));  // exact
        any = any || nvis[r] > 0.0f;
      }
      if (!any) continue;  // no row of the sub-tile sees this tile
      amx::scores_t(kb, qp + (t0 / 32) * (D / 2) * kAttnRows, st, nkp, D);
      // the padding keys (nk .. nkp) are masked for every row: probability 0
      attn_softmax_tile_avx512(st, nvis, nkp, 32, m + t0, l + t0, corr, a.scale);
      amx::probs_to_rows(st, pb, nkp);
      for (int64_t r = 0; r < 32; ++r)
        if (corr[r] != 1.0f)
          for (int64_t d = 0; d < D; ++d) o[(t0 + r) * D + d] *= corr[r];
      amx::pv(pb, vv, o + t0 * D, nkp, D);
    }
  }
  _tile_release();
  attn_finish_rows(a, b, kv_head, row0, R, o, m, l, store);
}

}  // namespace dllm::cpu

#endif  // DLLM_ATTN_X86
