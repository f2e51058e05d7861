// dllm/cpu/denoise_step_simd_impl.h — the vectorised denoise_step row kernel, written once for a
// vector of DLLM_SIMD_W float lanes and included by dllm/cpu/denoise_step_simd.h once per
// instruction set (AVX2: 8 lanes, AVX-512: 16) under `#pragma GCC target`, into namespace
// dllm::cpu::simd::DLLM_SIMD_NS. No include guard on purpose. See denoise_step_simd.h for the
// design.

namespace dllm::cpu::simd::DLLM_SIMD_NS {

constexpr int W = DLLM_SIMD_W;
constexpr int kBlock = 4 * W;  // elements per block: 4 vectors = W Philox groups

// ---- primitives ------------------------------------------------------------------------------
#if DLLM_SIMD_W == 8
using VF = __m256;
using VI = __m256i;
using Mask = __m256;  // compare result, all-ones lanes
inline VF set1(float x) { return _mm256_set1_ps(x); }
inline VI set1i(uint32_t x) { return _mm256_set1_epi32(static_cast<int32_t>(x)); }
inline VF load(const float* p) { return _mm256_loadu_ps(p); }
inline VF load(const bf16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline VF load(const f16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline void store(float* p, VF v) { _mm256_storeu_ps(p, v); }
inline void storei(uint32_t* p, VI v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
inline VI loadi(const uint32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline VF add(VF a, VF b) { return _mm256_add_ps(a, b); }
inline VF sub(VF a, VF b) { return _mm256_sub_ps(a, b); }
inline VF mul(VF a, VF b) { return _mm256_mul_ps(a, b); }
inline VF fmadd(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
inline VF fnmadd(VF a, VF b, VF c) { return _mm256_fnmadd_ps(a, b, c); }
inline VF fmsub(VF a, VF b, VF c) { return _mm256_fmsub_ps(a, b, c); }
// x86 max/min: a NaN in either operand returns the second operand.
inline VF vmax(VF a, VF b) { return _mm256_max_ps(a, b); }
inline VF vmin(VF a, VF b) { return _mm256_min_ps(a, b); }
inline Mask gt(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
inline Mask ge(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
inline Mask eq(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
inline Mask mor(Mask a, Mask b) { return _mm256_or_ps(a, b); }
inline uint32_t bits(Mask m) { return static_cast<uint32_t>(_mm256_movemask_ps(m)); }
inline bool any(Mask m) { return _mm256_movemask_ps(m) != 0; }
inline Mask mand(Mask a, Mask b) { return _mm256_and_ps(a, b); }
inline Mask eqi(VI a, VI b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
inline VF select(Mask m, VF a, VF b) { return _mm256_blendv_ps(b, a, m); }  // m ? a : b
inline VI cvtt(VF a) { return _mm256_cvttps_epi32(a); }
inline void storei(int32_t* p, VI v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
inline VI castfi(VF a) { return _mm256_castps_si256(a); }
inline VF castif(VI a) { return _mm256_castsi256_ps(a); }
inline VF cvtif(VI a) { return _mm256_cvtepi32_ps(a); }
inline VI addi(VI a, VI b) { return _mm256_add_epi32(a, b); }
inline VI subi(VI a, VI b) { return _mm256_sub_epi32(a, b); }
inline VI xori(VI a, VI b) { return _mm256_xor_si256(a, b); }
inline VI ori(VI a, VI b) { return _mm256_or_si256(a, b); }
template <int k>
inline VI srli(VI a) {
  return _mm256_srli_epi32(a, k);
}
template <int k>
inline VI slli(VI a) {
  return _mm256_slli_epi32(a, k);
}
inline VI mul_epu32(VI a, VI b) { return _mm256_mul_epu32(a, b); }
inline VI srli64_32(VI a) { return _mm256_srli_epi64(a, 32); }
inline VI slli64_32(VI a) { return _mm256_slli_epi64(a, 32); }
inline VI blend_odd(VI a, VI b) { return _mm256_blend_epi32(a, b, 0xAA); }  // odd lanes from b
inline VI unpacklo32(VI a, VI b) { return _mm256_unpacklo_epi32(a, b); }
inline VI unpackhi32(VI a, VI b) { return _mm256_unpackhi_epi32(a, b); }
inline VI unpacklo64(VI a, VI b) { return _mm256_unpacklo_epi64(a, b); }
inline VI unpackhi64(VI a, VI b) { return _mm256_unpackhi_epi64(a, b); }
// Philox lane j computes group p * (W / 4) + q, j = 4 q + p (see philox_block).
inline VI group_lanes() { return _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7); }
inline float hmax(VF a) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
#elif defined(DLLM_SIMD_EMU16)
// 16 lanes as two AVX2 halves with AVX-512's semantics (lane j of a mask = bit j; unpacks act
// within 128-bit lanes): lets the native test run the 16-lane kernel logic on an AVX2-only CPU.
struct VF {
  __m256 lo, hi;
};
struct VI {
  __m256i lo, hi;
};
using Mask = uint32_t;
inline Mask mk(__m256 lo, __m256 hi) {
  return static_cast<Mask>(_mm256_movemask_ps(lo) | (_mm256_movemask_ps(hi) << 8));
}
inline __m256 expand(uint32_t m8) {  // 8 mask bits -> all-ones lanes
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i sel = _mm256_and_si256(_mm256_set1_epi32(static_cast<int32_t>(m8)), bit);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(sel, bit));
}
#define DLLM_EMU_F2(name, op) \
  inline VF name(VF a, VF b) { return {op(a.lo, b.lo), op(a.hi, b.hi)}; }
#define DLLM_EMU_I2(name, op) \
  inline VI name(VI a, VI b) { return {op(a.lo, b.lo), op(a.hi, b.hi)}; }
inline VF set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline VI set1i(uint32_t x) {
  const __m256i v = _mm256_set1_epi32(static_cast<int32_t>(x));
  return {v, v};
}
inline VF load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline __m256 load8(const bf16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline VF load(const bf16_t* p) { return {load8(p), load8(p + 8)}; }
inline VF load(const f16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline void store(float* p, VF v) {
  _mm256_storeu_ps(p, v.lo);
  _mm256_storeu_ps(p + 8, v.hi);
}
inline void storei(uint32_t* p, VI v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v.lo);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 8), v.hi);
}
inline void storei(int32_t* p, VI v) { storei(reinterpret_cast<uint32_t*>(p), v); }
inline VI loadi(const uint32_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8))};
}
DLLM_EMU_F2(add, _mm256_add_ps)
DLLM_EMU_F2(sub, _mm256_sub_ps)
DLLM_EMU_F2(mul, _mm256_mul_ps)
DLLM_EMU_F2(vmax, _mm256_max_ps)
DLLM_EMU_F2(vmin, _mm256_min_ps)
inline VF fmadd(VF a, VF b, VF c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline VF fnmadd(VF a, VF b, VF c) {
  return {_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)};
}
inline VF fmsub(VF a, VF b, VF c) {
  return {_mm256_fmsub_ps(a.lo, b.lo, c.lo), _mm256_fmsub_ps(a.hi, b.hi, c.hi)};
}
inline Mask gt(VF a, VF b) {
  return mk(_mm256_cmp_ps(a.lo, b.lo, _CMP_GT_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_GT_OQ));
}
inline Mask ge(VF a, VF b) {
  return mk(_mm256_cmp_ps(a.lo, b.lo, _CMP_GE_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_GE_OQ));
}
inline Mask eq(VF a, VF b) {
  return mk(_mm256_cmp_ps(a.lo, b.lo, _CMP_EQ_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_EQ_OQ));
}
inline Mask mor(Mask a, Mask b) { return a | b; }
inline Mask mand(Mask a, Mask b) { return a & b; }
inline uint32_t bits(Mask m) { return m; }
inline bool any(Mask m) { return m != 0; }
inline Mask eqi(VI a, VI b) {
  return mk(_mm256_castsi256_ps(_mm256_cmpeq_epi32(a.lo, b.lo)),
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(a.hi, b.hi)));
}
inline VF select(Mask m, VF a, VF b) {
  return {_mm256_blendv_ps(b.lo, a.lo, expand(m & 0xFF)),
          _mm256_blendv_ps(b.hi, a.hi, expand(m >> 8))};
}
inline VI cvtt(VF a) { return {_mm256_cvttps_epi32(a.lo), _mm256_cvttps_epi32(a.hi)}; }
inline VI castfi(VF a) { return {_mm256_castps_si256(a.lo), _mm256_castps_si256(a.hi)}; }
inline VF castif(VI a) { return {_mm256_castsi256_ps(a.lo), _mm256_castsi256_ps(a.hi)}; }
inline VF cvtif(VI a) { return {_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)}; }
DLLM_EMU_I2(addi, _mm256_add_epi32)
DLLM_EMU_I2(subi, _mm256_sub_epi32)
DLLM_EMU_I2(xori, _mm256_xor_si256)
DLLM_EMU_I2(ori, _mm256_or_si256)
DLLM_EMU_I2(mul_epu32, _mm256_mul_epu32)
DLLM_EMU_I2(unpacklo32, _mm256_unpacklo_epi32)
DLLM_EMU_I2(unpackhi32, _mm256_unpackhi_epi32)
DLLM_EMU_I2(unpacklo64, _mm256_unpacklo_epi64)
DLLM_EMU_I2(unpackhi64, _mm256_unpackhi_epi64)
template <int k>
inline VI srli(VI a) {
  return {_mm256_srli_epi32(a.lo, k), _mm256_srli_epi32(a.hi, k)};
}
template <int k>
inline VI slli(VI a) {
  return {_mm256_slli_epi32(a.lo, k), _mm256_slli_epi32(a.hi, k)};
}
inline VI srli64_32(VI a) { return {_mm256_srli_epi64(a.lo, 32), _mm256_srli_epi64(a.hi, 32)}; }
inline VI slli64_32(VI a) { return {_mm256_slli_epi64(a.lo, 32), _mm256_slli_epi64(a.hi, 32)}; }
inline VI blend_odd(VI a, VI b) {
  return {_mm256_blend_epi32(a.lo, b.lo, 0xAA), _mm256_blend_epi32(a.hi, b.hi, 0xAA)};
}
inline VI group_lanes() {
  return {_mm256_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13),
          _mm256_setr_epi32(2, 6, 10, 14, 3, 7, 11, 15)};
}
inline float hmax(VF a) {
  const __m256 v = _mm256_max_ps(a.lo, a.hi);
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
#undef DLLM_EMU_F2
#undef DLLM_EMU_I2
#else  // 16 lanes, AVX-512
using VF = __m512;
using VI = __m512i;
using Mask = __mmask16;
inline VF set1(float x) { return _mm512_set1_ps(x); }
inline VI set1i(uint32_t x) { return _mm512_set1_epi32(static_cast<int32_t>(x)); }
inline VF load(const float* p) { return _mm512_loadu_ps(p); }
inline VF load(const bf16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline VF load(const f16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline void store(float* p, VF v) { _mm512_storeu_ps(p, v); }
inline void storei(uint32_t* p, VI v) { _mm512_storeu_si512(p, v); }
inline VI loadi(const uint32_t* p) { return _mm512_loadu_si512(p); }
inline VF add(VF a, VF b) { return _mm512_add_ps(a, b); }
inline VF sub(VF a, VF b) { return _mm512_sub_ps(a, b); }
inline VF mul(VF a, VF b) { return _mm512_mul_ps(a, b); }
inline VF fmadd(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
inline VF fnmadd(VF a, VF b, VF c) { return _mm512_fnmadd_ps(a, b, c); }
inline VF fmsub(VF a, VF b, VF c) { return _mm512_fmsub_ps(a, b, c); }
inline VF vmax(VF a, VF b) { return _mm512_max_ps(a, b); }
inline VF vmin(VF a, VF b) { return _mm512_min_ps(a, b); }
inline Mask gt(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline Mask ge(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
inline Mask eq(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
inline Mask mor(Mask a, Mask b) { return static_cast<Mask>(a | b); }
inline uint32_t bits(Mask m) { return static_cast<uint32_t>(m); }
inline bool any(Mask m) { return m != 0; }
inline Mask mand(Mask a, Mask b) { return static_cast<Mask>(a & b); }
inline Mask eqi(VI a, VI b) { return _mm512_cmpeq_epi32_mask(a, b); }
inline VF select(Mask m, VF a, VF b) { return _mm512_mask_blend_ps(m, b, a); }  // m ? a : b
inline VI cvtt(VF a) { return _mm512_cvttps_epi32(a); }
inline void storei(int32_t* p, VI v) { _mm512_storeu_si512(p, v); }
inline VI castfi(VF a) { return _mm512_castps_si512(a); }
inline VF castif(VI a) { return _mm512_castsi512_ps(a); }
inline VF cvtif(VI a) { return _mm512_cvtepi32_ps(a); }
inline VI addi(VI a, VI b) { return _mm512_add_epi32(a, b); }
inline VI subi(VI a, VI b) { return _mm512_sub_epi32(a, b); }
inline VI xori(VI a, VI b) { return _mm512_xor_si512(a, b); }
inline VI ori(VI a, VI b) { return _mm512_or_si512(a, b); }
template <int k>
inline VI srli(VI a) {
  return _mm512_srli_epi32(a, k);
}
template <int k>
inline VI slli(VI a) {
  return _mm512_slli_epi32(a, k);
}
inline VI mul_epu32(VI a, VI b) { return _mm512_mul_epu32(a, b); }
inline VI srli64_32(VI a) { return _mm512_srli_epi64(a, 32); }
inline VI slli64_32(VI a) { return _mm512_slli_epi64(a, 32); }
inline VI blend_odd(VI a, VI b) { return _mm512_mask_blend_epi32(0xAAAA, a, b); }
inline VI unpacklo32(VI a, VI b) { return _mm512_unpacklo_epi32(a, b); }
inline VI unpackhi32(VI a, VI b) { return _mm512_unpackhi_epi32(a, b); }
inline VI unpacklo64(VI a, VI b) { return _mm512_unpacklo_epi64(a, b); }
inline VI unpackhi64(VI a, VI b) { return _mm512_unpackhi_epi64(a, b); }
inline VI group_lanes() {
  return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}
inline float hmax(VF a) { return _mm512_reduce_max_ps(a); }
#endif

// NaN -> -inf, +inf -> FLT_MAX (dllm::sanitize), relying on the operand order of max/min.
inline VF sanitize_v(VF x) {
  return vmin(vmax(x, set1(-std::numeric_limits<float>::infinity())), set1(kFloatMax));
}

// exp(x) for x in [-80, 0] as 2^(x log2 e) = 2^n 2^r: n = round(x log2 e) by the rounding sum
// t = x log2 e + 1.5 * 2^23 (one FMA; t's low integer bits are n, so 2^n needs no conversion),
// r = x log2 e - n in [-1/2, 1/2] by one more FMA (a single rounding of the exact product), and
// 2^r = 1 + r q(r) with a degree-4 q fitted for minimal relative error (< 1.9e-7 in float; the
// rounding of log2 e moves a term at x by < 1.2e-8 |x| relatively, i.e. only negligible terms by
// more than an ulp). 10 vector ops.
inline VF exp_v(VF x) {
  const VF log2e = set1(1.44269504088896341f);
  const VF t = fmadd(x, log2e, set1(12582912.0f));
  const VF r = fmsub(x, log2e, sub(t, set1(12582912.0f)));
  VF q = fmadd(set1(1.326472731307149e-3f), r, set1(9.671512991189957e-3f));
  q = fmadd(q, r, set1(5.550733581185341e-2f));
  q = fmadd(q, r, set1(2.4022242426872253e-1f));
  q = fmadd(q, r, set1(6.931470036506653e-1f));
  const VF y = fmadd(q, r, set1(1.0f));
  return castif(addi(castfi(y), slli<23>(castfi(t))));  // (1.5 * 2^23 + n) << 23 == n << 23
}

// ---- Philox4x32-10 on W groups at once --------------------------------------------------------
// The stream of group g at position (b, l): counter (g, l, b, offset), key (seed lo, seed hi).
// c1, c2, c3 are the same for every group, so round 1 needs one vector product and round 2 one.
struct PhiloxCtx {
  uint32_t k0[10], k1[10];
  uint32_t r1_c0, r1_c1;    // round 1 outputs that do not depend on g: c0, c1
  uint32_t r2_hi0, r2_lo0;  // round 2: mulhilo(M0, r1_c0)
  uint32_t r1_c3_xor;       // offset ^ k1[0]
};

inline PhiloxCtx philox_ctx(uint64_t seed, uint32_t offset, int64_t b, int64_t l) {
  PhiloxCtx c{};
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    c.k0[r] = k0;
    c.k1[r] = k1;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  uint32_t hi1, lo1;
  philox_mulhilo(0xCD9E8D57u, static_cast<uint32_t>(b), hi1, lo1);
  c.r1_c0 = hi1 ^ static_cast<uint32_t>(l) ^ c.k0[0];
  c.r1_c1 = lo1;
  c.r1_c3_xor = offset ^ c.k1[0];
  philox_mulhilo(0xD2511F53u, c.r1_c0, c.r2_hi0, c.r2_lo0);
  return c;
}

inline void mulhilo_v(VI a, VI m, VI& hi, VI& lo) {
  const VI pe = mul_epu32(a, m);             // even lanes, 64-bit
  const VI po = mul_epu32(srli64_32(a), m);  // odd lanes
  hi = blend_odd(srli64_32(pe), po);
  lo = blend_odd(pe, slli64_32(po));
}

// The 4W words of groups g0 .. g0 + W - 1 in token order: out[k] holds tokens 4 g0 + k W + j.
// Lane j = 4 q + p of the Philox vectors runs group g0 + p (W / 4) + q, so the in-lane 4 x 4
// transpose of (c0, c1, c2, c3) leaves group g0 + p (W / 4) + q's four words in lanes 4q..4q+3 of
// out[p]: tokens 4 g0 + p W + 4 q + (0..3).
// The four words of group lane j (any groups), out[k] = word k.
inline void philox_groups(const PhiloxCtx& c, VI groups, VI out[4]) {
  const VI m0 = set1i(0xD2511F53u), m1 = set1i(0xCD9E8D57u);
  VI hi, lo;
  // Round 1: counter (g, l, b, offset).
  mulhilo_v(groups, m0, hi, lo);
  VI c2 = xori(hi, set1i(c.r1_c3_xor));
  VI c3 = lo;
  // Round 2: c0 = r1_c0 and c1 = r1_c1 are the same for every lane.
  mulhilo_v(c2, m1, hi, lo);
  VI c0 = xori(hi, set1i(c.r1_c1 ^ c.k0[1]));
  VI c1 = lo;
  c2 = xori(c3, set1i(c.r2_hi0 ^ c.k1[1]));
  c3 = set1i(c.r2_lo0);
  for (int r = 2; r < 10; ++r) {
    VI hi0, lo0, hi1, lo1;
    mulhilo_v(c0, m0, hi0, lo0);
    mulhilo_v(c2, m1, hi1, lo1);
    c0 = xori(xori(hi1, c1), set1i(c.k0[r]));
    c2 = xori(xori(hi0, c3), set1i(c.k1[r]));
    c1 = lo1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

inline void philox_block(const PhiloxCtx& c, uint32_t g0, VI out[4]) {
  VI w[4];
  philox_groups(c, addi(set1i(g0), group_lanes()), w);
  const VI t0 = unpacklo32(w[0], w[1]), t1 = unpackhi32(w[0], w[1]);
  const VI t2 = unpacklo32(w[2], w[3]), t3 = unpackhi32(w[2], w[3]);
  out[0] = unpacklo64(t0, t2);
  out[1] = unpackhi64(t0, t2);
  out[2] = unpacklo64(t1, t3);
  out[3] = unpackhi64(t1, t3);
}

// An upper bound of gumbel_of_word(w), from integer ops only: with U = open01(w) and
// 1 - U = n 2^-24 (n = 2^24 - (2 (w >> 9) + 1) >= 1), -log(-log U) <= -log(1 - U) (as
// -log U >= 1 - U) <= (24 - floor(log2 n)) ln 2; + 0.01 covers log_det's rounding (~1e-5).
// Checked against every word in csrc/tests/test_philox.cpp.
inline VF gumbel_bound(VI w) {
  const VI n = subi(set1i(1u << 24), ori(srli<8>(w), set1i(1)));
  const VI biased_exp = srli<23>(castfi(cvtif(n)));  // floor(log2 n) + 127, n < 2^24 is exact
  return fmadd(cvtif(subi(set1i(151), biased_exp)), set1(0.69314718f), set1(0.01f));
}

inline float gumbel_bound_scalar(uint32_t w) {  // gumbel_bound for one word
  const uint32_t n = (1u << 24) - ((w >> 8) | 1u);
  return static_cast<float>(24 - (31 - __builtin_clz(n))) * 0.69314718f + 0.01f;
}

// ---- the row kernel ---------------------------------------------------------------------------
// How the choice is made (x0): kD = argmax of d itself (T = 0 and score == d), kScore = argmax of
// the (filtered) scaled logits, which differ from d (T = 0, filtered, raw confidence), kGumbel =
// argmax of scaled + Gumbel noise (T > 0).
// kNone: no choice here (filtered rows at T > 0 choose over their kept tokens, gumbel_kept).
enum class Choice { kD, kScore, kGumbel, kNone };

struct Ctx {
  float inv_t;
  bool scale;     // scaled = sanitize(z * inv_t) (else scaled = z)
  bool d_scaled;  // d = scaled (sampling confidence), else d = z
  int64_t id0;    // global id of token 0 (p.vocab_start): Philox groups are keyed by it
  PhiloxCtx philox;
};

// Tokens [v0, v0 + n) (n a multiple of kBlock, v0 a multiple of 4) into st. z: the row's raw
// logits at v0 (unused when filtered and d is scaled); f: the filtered scaled logits at v0, or
// null (unfiltered: scaled is computed from z).
// kRaw: unfiltered with inv_t == 1 (T = 0, T = 1), so scaled == d == z: no runtime switches in
// the loop (fewer branches and live registers on the hot paths).
template <typename In, Choice kChoice, bool kMargin, bool kRaw>
void row_chunk(const In* z_src, const float* f_src, int64_t v0, int64_t n, const Ctx& c,
               RowState& st) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (kRaw) f_src = nullptr;
  const bool scale = !kRaw && c.scale;
  const bool d_scaled = !kRaw && c.d_scaled;
  const bool need_z = kRaw || f_src == nullptr || !d_scaled;
  const VF inv_t = set1(c.inv_t);
  VF m_v = set1(st.m);
  VF best_v = set1(st.best);
  VF top1 = set1(neg_inf), top2 = top1;

  alignas(64) float s_buf[kBlock], d_buf[kBlock];
  alignas(64) uint32_t w_buf[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    VF z[4] = {}, s[4], d[4];
    if (need_z)
      for (int k = 0; k < 4; ++k) z[k] = sanitize_v(load(z_src + i + k * W));
    for (int k = 0; k < 4; ++k) {
      if (!kRaw && f_src != nullptr)
        s[k] = load(f_src + i + k * W);
      else
        s[k] = scale ? sanitize_v(mul(z[k], inv_t)) : z[k];
      d[k] = d_scaled ? s[k] : z[k];
    }
    // Running max of d (the anchor of the exact sums that follow the pass): a block that raises it
    // (rare after the first few) at T = 0 also moves the choice (its first index with the new max).
    const VF dmax = vmax(vmax(d[0], d[1]), vmax(d[2], d[3]));
    if (any(gt(dmax, m_v))) {
      const float nm = hmax(dmax);
      if (kChoice == Choice::kD) {
        for (int k = 0; k < 4; ++k) {
          const uint32_t hit = bits(eq(d[k], set1(nm)));
          if (hit != 0) {
            st.best = nm;
            st.best_idx = v0 + i + k * W + __builtin_ctz(hit);
            st.best_d = nm;
            break;
          }
        }
      }
      st.m = nm;
      m_v = set1(nm);
    }
    if (kChoice == Choice::kScore) {
      const VF smax = vmax(vmax(s[0], s[1]), vmax(s[2], s[3]));
      if (any(gt(smax, best_v))) {
        const float nb = hmax(smax);
        for (int k = 0; k < 4; ++k) {
          const uint32_t hit = bits(eq(s[k], set1(nb)));
          if (hit != 0) {
            const int j = __builtin_ctz(hit);
            store(d_buf, d[k]);
            st.best = nb;
            st.best_idx = v0 + i + k * W + j;
            st.best_d = d_buf[j];
            break;
          }
        }
        best_v = set1(nb);
      }
    }
    if (kChoice == Choice::kGumbel) {
      // A block whose best scaled logit + the largest possible draw cannot beat the best score
      // so far skips its Philox draws; otherwise each token's score is bounded from its word
      // cheaply and only tokens whose bound beats the best get the exact (scalar) score.
      const VF smax = vmax(vmax(s[0], s[1]), vmax(s[2], s[3]));
      if (any(ge(add(smax, set1(kGumbelBound)), best_v))) {
        VI w[4];
        philox_block(c.philox, static_cast<uint32_t>((c.id0 + v0 + i) >> 2), w);
        Mask hit[4];
        for (int k = 0; k < 4; ++k) hit[k] = gt(add(s[k], gumbel_bound(w[k])), best_v);
        if (any(mor(mor(hit[0], hit[1]), mor(hit[2], hit[3])))) {
          for (int k = 0; k < 4; ++k) {
            uint32_t h = bits(hit[k]);
            if (h == 0) continue;
            store(s_buf + k * W, s[k]);
            store(d_buf + k * W, d[k]);
            storei(w_buf + k * W, w[k]);
            while (h != 0) {
              const int j = k * W + __builtin_ctz(h);
              h &= h - 1;
              const float score = gumbel_score(s_buf[j], w_buf[j]);
              if (score > st.best) {
                st.best = score;
                st.best_idx = v0 + i + j;
                st.best_d = d_buf[j];
              }
            }
          }
          best_v = set1(st.best);
        }
      }
    }
    if (kMargin) {
      for (int k = 0; k < 4; ++k) {
        top2 = vmax(top2, vmin(top1, d[k]));
        top1 = vmax(top1, d[k]);
      }
    }
  }
  if (kMargin) {
    alignas(64) float t1[W], t2[W];
    store(t1, top1);
    store(t2, top2);
    const auto insert = [&](float v) {
      st.top2 = std::max(st.top2, std::min(st.top1, v));
      st.top1 = std::max(st.top1, v);
    };
    for (int j = 0; j < W; ++j) {
      insert(t1[j]);
      insert(t2[j]);
    }
  }
}

template <typename In, Choice kChoice, bool kRaw = false>
void row_chunk_conf(Confidence conf, const In* z, const float* f, int64_t v0, int64_t n,
                    const Ctx& c, RowState& st) {
  if (conf == Confidence::kMargin) return row_chunk<In, kChoice, true, kRaw>(z, f, v0, n, c, st);
  row_chunk<In, kChoice, false, kRaw>(z, f, v0, n, c, st);
}

// ---- the filtered path (top-k / top-p) ----------------------------------------------------------

// out[0, V) = sanitize(sanitize(z) * inv_t), suppressed ids -inf: load_chunk's values.
template <typename In>
void materialize(const In* row, int64_t V, float inv_t, const int64_t* suppress, int64_t n_suppress,
                 float* out) {
  const bool scale = inv_t != 1.0f;
  const VF it = set1(inv_t);
  int64_t i = 0;
  for (; i + W <= V; i += W) {
    VF z = sanitize_v(load(row + i));
    if (scale) z = sanitize_v(mul(z, it));
    store(out + i, z);
  }
  for (; i < V; ++i) {
    const float z = sanitize(to_float(row[i]));
    out[i] = scale ? sanitize(z * inv_t) : z;
  }
  for (int64_t k = 0; k < n_suppress; ++k)
    out[suppress[k]] = -std::numeric_limits<float>::infinity();
}

// s[i] < t -> -inf.
inline void apply_threshold(float* s, int64_t V, float t) {
  const VF tv = set1(t), neg_inf = set1(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + W <= V; i += W) {
    const VF v = load(s + i);
    store(s + i, select(gt(tv, v), neg_inf, v));
  }
  for (; i < V; ++i)
    if (s[i] < t) s[i] = -std::numeric_limits<float>::infinity();
}

// top_p_histogram / top_p_members (dllm/cpu/denoise_step.h) on vectors; the same buckets.
inline VI top_p_bucket_v(VF v, VF m) {
  return cvtt(vmin(mul(sub(m, v), set1(kTopPPerUnit)), set1(float(kTopPBuckets - 1))));
}

inline void top_p_histogram(const float* vals, int64_t V, float m, double* hist) {
  constexpr int64_t kB = 256;
  alignas(64) float w[kB];
  alignas(64) int32_t bucket[kB];
  alignas(64) float tail[W];
  const float neg_inf_f = -std::numeric_limits<float>::infinity();
  const VF mv = set1(m), lo80 = set1(-80.0f), neg_inf = set1(neg_inf_f);
  const VF last = set1(float(kTopPBuckets - 1));
  for (int64_t v0 = 0; v0 < V; v0 += kB) {
    const int64_t n = std::min(kB, V - v0);
    for (int64_t i = 0; i < n; i += W) {
      const float* src = vals + v0 + i;
      if (i + W > n) {  // the tail through the same vector exp, padded with -inf (weight 0)
        for (int64_t j = 0; j < W; ++j) tail[j] = i + j < n ? src[j] : neg_inf_f;
        src = tail;
      }
      const VF v = load(src);
      const VI bk = top_p_bucket_v(v, mv);
      const Mask keep = mand(gt(v, neg_inf), gt(last, cvtif(bk)));  // finite, not the last
      store(w + i, select(keep, exp_v(vmax(sub(v, mv), lo80)), set1(0.0f)));
      storei(bucket + i, bk);
    }
    for (int64_t j = 0; j < n; ++j) hist[bucket[j]] += w[j];
  }
}

inline void top_p_members(const float* vals, int64_t V, float m, int32_t b,
                          std::vector<float>& out) {
  const VF mv = set1(m), neg_inf = set1(-std::numeric_limits<float>::infinity());
  const VI bv = set1i(static_cast<uint32_t>(b));
  int64_t i = 0;
  for (; i + W <= V; i += W) {
    const VF v = load(vals + i);
    uint32_t hit = bits(mand(eqi(top_p_bucket_v(v, mv), bv), gt(v, neg_inf)));
    while (hit != 0) {
      out.push_back(vals[i + __builtin_ctz(hit)]);
      hit &= hit - 1;
    }
  }
  for (; i < V; ++i)
    if (vals[i] > -std::numeric_limits<float>::infinity() && top_p_bucket(vals[i], m) == b)
      out.push_back(vals[i]);
}

// dllm::cpu::prepare_filtered with the vector helpers.
template <typename In>
void prepare_filtered(const In* row, int64_t V, const int64_t* suppress, int64_t n_suppress,
                      const DenoiseParams& p, Workspace& ws, const float* thr = nullptr) {
  ws.full.resize(V);
  float* s = ws.full.data();
  materialize(row, V, p.inv_temperature, suppress, n_suppress, s);
  const auto apply = [&](bool top_k_step) {
    const float t = top_k_step ? top_k_threshold(s, V, p.top_k, ws.tmp)
                               : top_p_threshold_with(
                                     s, V, p.top_p, ws.tmp, ws.wts, ws.hist,
                                     [](const float* v, int64_t n, float m, double* h) {
                                       top_p_histogram(v, n, m, h);
                                     },
                                     [](const float* v, int64_t n, float m, int32_t b,
                                        std::vector<float>& o) { top_p_members(v, n, m, b, o); });
    if (t > -std::numeric_limits<float>::infinity()) apply_threshold(s, V, t);
  };
  if (thr == nullptr) {
    apply(!p.top_p_first);
    apply(p.top_p_first);
  } else if (*thr > -std::numeric_limits<float>::infinity()) {
    apply_threshold(s, V, *thr);  // tensor parallelism: the global threshold
  }
  if (p.sample) {  // the kept tokens, for gumbel_kept
    ws.kept.clear();
    const VF neg_inf = set1(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + W <= V; i += W) {
      uint32_t hit = bits(gt(load(s + i), neg_inf));
      while (hit != 0) {
        ws.kept.push_back(static_cast<int32_t>(i + __builtin_ctz(hit)));
        hit &= hit - 1;
      }
    }
    for (; i < V; ++i)
      if (s[i] > -std::numeric_limits<float>::infinity())
        ws.kept.push_back(static_cast<int32_t>(i));
  }
}

// The Gumbel choice of a filtered row over its kept tokens (finite filtered logits f, ascending
// ids), W Philox groups at a time: top-p / top-k keep a few percent of V, so this draws only their
// groups. Same bound and exact scores as row_chunk's kGumbel.
template <typename In>
void gumbel_kept(const In* row, const float* f, const int32_t* kept, int64_t n_kept, const Ctx& c,
                 RowState& st) {
  alignas(64) uint32_t groups[W];
  alignas(64) uint32_t words[4][W];
  int64_t k = 0;
  while (k < n_kept) {
    // The next W distinct groups: tokens kept[k, e) belong to groups[0, ng).
    int ng = 0;
    int64_t e = k;
    float top = -std::numeric_limits<float>::infinity();
    for (; e < n_kept; ++e) {
      const uint32_t g = static_cast<uint32_t>((c.id0 + kept[e]) >> 2);
      if (ng == 0 || groups[ng - 1] != g) {
        if (ng == W) break;
        groups[ng++] = g;
      }
      top = std::max(top, f[kept[e]]);
    }
    if (top + kGumbelBound >= st.best) {
      for (int j = ng; j < W; ++j) groups[j] = groups[0];
      VI w[4];
      philox_groups(c.philox, loadi(groups), w);
      for (int j = 0; j < 4; ++j) storei(words[j], w[j]);
      int lane = 0;
      for (int64_t t = k; t < e; ++t) {
        const int32_t idx = kept[t];
        while (groups[lane] != static_cast<uint32_t>((c.id0 + idx) >> 2)) ++lane;
        const uint32_t word = words[idx & 3][lane];
        const float sc = f[idx];
        if (!(sc + gumbel_bound_scalar(word) > st.best)) continue;
        const float score = gumbel_score(sc, word);
        if (score > st.best) {
          st.best = score;
          st.best_idx = idx;
          st.best_d = c.d_scaled ? sc : sanitize(to_float(row[idx]));
        }
      }
    }
    k = e;
  }
}

// dllm::cpu::accumulate_range with the vector kernel: whole blocks of 4W tokens in chunks of
// kChunk; a chunk holding a suppressed id (when the raw logits are read) and the last partial
// block go through the generic code, which continues the same state.
template <typename In>
void accumulate_range(const In* row, int64_t v_begin, int64_t v_end, const int64_t* suppress,
                      int64_t n_suppress, const DenoiseParams& p, int64_t b, int64_t l,
                      bool filtered, Workspace& ws, RowState& st) {
  Ctx c;
  c.inv_t = p.inv_temperature;
  c.scale = p.inv_temperature != 1.0f;
  c.d_scaled = p.source_sampling;
  c.id0 = p.vocab_start;
  if (p.sample) c.philox = philox_ctx(p.seed, p.offset, b, l);
  // Filtered rows at T > 0: the softmax here, the choice over the kept tokens (gumbel_kept).
  const bool kept_choice = filtered && p.sample;
  const Choice choice = kept_choice                        ? Choice::kNone
                        : p.sample                         ? Choice::kGumbel
                        : (!filtered || p.source_sampling) ? Choice::kD
                                                           : Choice::kScore;
  // The generic code for a range: with kept_choice only its softmax part is kept.
  const auto generic = [&](int64_t from, int64_t to) {
    if (!kept_choice)
      return dllm::cpu::accumulate_range(row, from, to, suppress, n_suppress, p, b, l, filtered, ws,
                                         st);
    RowState part;
    dllm::cpu::accumulate_range(row, from, to, suppress, n_suppress, p, b, l, filtered, ws, part);
    part.best = -std::numeric_limits<float>::infinity();
    part.best_idx = -1;
    merge_state(st, part);
  };
  const bool reads_z = !filtered || !p.source_sampling;  // suppressed ids matter only there
  const bool raw = !filtered && !c.scale;
  const int64_t body_end = v_begin + (v_end - v_begin) / kBlock * kBlock;
  int64_t next = std::lower_bound(suppress, suppress + n_suppress, v_begin) - suppress;
  for (int64_t v0 = v_begin; v0 < body_end; v0 += kChunk) {
    const int64_t n = std::min(kChunk, body_end - v0);
    while (next < n_suppress && suppress[next] < v0) ++next;
    if (reads_z && next < n_suppress && suppress[next] < v0 + n) {
      generic(v0, v0 + n);
      continue;
    }
    const float* f = filtered ? ws.full.data() + v0 : nullptr;
    switch (choice) {
      case Choice::kD:
        if (raw)
          row_chunk_conf<In, Choice::kD, true>(p.confidence, row + v0, f, v0, n, c, st);
        else
          row_chunk_conf<In, Choice::kD>(p.confidence, row + v0, f, v0, n, c, st);
        break;
      case Choice::kScore:
        row_chunk_conf<In, Choice::kScore>(p.confidence, row + v0, f, v0, n, c, st);
        break;
      case Choice::kGumbel:
        if (raw)
          row_chunk_conf<In, Choice::kGumbel, true>(p.confidence, row + v0, f, v0, n, c, st);
        else
          row_chunk_conf<In, Choice::kGumbel>(p.confidence, row + v0, f, v0, n, c, st);
        break;
      case Choice::kNone:
        row_chunk_conf<In, Choice::kNone>(p.confidence, row + v0, f, v0, n, c, st);
        break;
    }
  }
  if (body_end < v_end) generic(body_end, v_end);
  if (kept_choice) {  // the whole row (filtered rows are never split)
    const int32_t* kept = ws.kept.data();
    const int64_t n_kept = static_cast<int64_t>(ws.kept.size());
    const int64_t lo = std::lower_bound(kept, kept + n_kept, v_begin) - kept;
    const int64_t hi = std::lower_bound(kept, kept + n_kept, v_end) - kept;
    gumbel_kept(row, ws.full.data(), kept + lo, hi - lo, c, st);
  }
}

// q = round(v 2^40) (nearest, ties to even) for |v| <= 1 in two int32 halves, exactly, by the
// rounding sum: y = v 2^20 + 1.5 2^23 (one FMA, v 2^20 exact) holds round(v 2^20) in its low
// mantissa bits, so its raw bits are added (the magic's bits come off once per lane sum, modulo
// 2^32); the rest r = v 2^20 - (y - 1.5 2^23) is exact (|r| <= 1/2) and r 2^20 is rounded alike.
// q = hi 2^20 + lo: the generic code's quantize(), bit for bit, in 6 vector ops.
constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
constexpr int32_t kMagicBits = 0x4B400000;
inline void quantize_add(VF v, VI& hi, VI& lo) {
  const VF two20 = set1(1048576.0f), magic = set1(kMagic);
  const VF y = fmadd(v, two20, magic);
  hi = addi(hi, castfi(y));
  const VF r = fmsub(v, two20, sub(y, magic));
  lo = addi(lo, castfi(fmadd(r, two20, magic)));
}

// The lane sums of `terms` quantize_add calls per lane -> sum of q (int64).
inline int64_t lanes_to_q(VI hi, VI lo, int64_t terms) {
  alignas(64) int32_t h[W], l[W];
  storei(h, hi);
  storei(l, lo);
  const uint32_t off = static_cast<uint32_t>(kMagicBits) * static_cast<uint32_t>(terms);
  int64_t q = 0;
  for (int j = 0; j < W; ++j) {
    const int32_t hj = static_cast<int32_t>(static_cast<uint32_t>(h[j]) - off);
    const int32_t lj = static_cast<int32_t>(static_cast<uint32_t>(l[j]) - off);
    q += static_cast<int64_t>(hj) * 1048576 + lj;
  }
  return q;
}

// dllm::cpu::exact_sums_range with the vector exp for every element: each chunk is decoded into
// a buffer (exact), its tail padded with -inf (a term of 0), so no element goes through another
// exp (the split of the vocabulary must not change a term).
template <typename In>
void exact_sums_range(const In* row, int64_t v_begin, int64_t v_end, const int64_t* suppress,
                      int64_t n_suppress, const DenoiseParams& p, bool filtered, Workspace& ws,
                      float M, ExactSums& sums) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const bool entropy = p.confidence == Confidence::kNegEntropy;
  const bool from_full = filtered && p.source_sampling;
  const bool scale = p.source_sampling && p.inv_temperature != 1.0f;
  const VF mv = set1(M), lo80 = set1(-80.0f), it = set1(p.inv_temperature);
  alignas(64) float d[kChunk + W];
  int64_t next = std::lower_bound(suppress, suppress + n_suppress, v_begin) - suppress;
  for (int64_t v0 = v_begin; v0 < v_end; v0 += kChunk) {
    const int64_t n = std::min(kChunk, v_end - v0);
    const bool has_suppress = next < n_suppress && suppress[next] < v0 + n;
    const float* src = d;
    int64_t i = 0;
    if (from_full) {
      src = ws.full.data() + v0;
      i = n / W * W;  // whole vectors read in place, the tail copied
      std::memcpy(d + i, src + i, (n - i) * sizeof(float));
    } else if (!has_suppress && !scale && std::is_same<In, float>::value) {
      src = reinterpret_cast<const float*>(row + v0);  // read in place (sanitised below)
      i = n / W * W;
      for (int64_t j = i; j < n; ++j) d[j] = sanitize(to_float(row[v0 + j]));
    } else {
      for (; i + W <= n; i += W) {
        VF z = sanitize_v(load(row + v0 + i));
        if (scale) z = sanitize_v(mul(z, it));
        store(d + i, z);
      }
      for (; i < n; ++i) {
        const float z = sanitize(to_float(row[v0 + i]));
        d[i] = scale ? sanitize(z * p.inv_temperature) : z;
      }
      for (; next < n_suppress && suppress[next] < v0 + n; ++next)
        if (suppress[next] >= v0) d[suppress[next] - v0] = neg_inf;
      i = n;
    }
    const int64_t body = n / W * W, padded = (n + W - 1) / W * W;
    for (int64_t j = n; j < padded; ++j) d[j] = neg_inf;
    VI shi = set1i(0), slo = shi, thi = shi, tlo = shi;
    for (int64_t j = 0; j < padded; j += W) {
      const float* at = j < body && src != d ? src + j : d + j;
      const VF x = vmax(sub(sanitize_v(load(at)), mv), lo80);
      const VF e = exp_v(x);
      quantize_add(e, shi, slo);
      if (entropy) quantize_add(mul(e, x), thi, tlo);
    }
    sums.s += lanes_to_q(shi, slo, padded / W);
    if (entropy) sums.t += lanes_to_q(thi, tlo, padded / W);
  }
}

}  // namespace dllm::cpu::simd::DLLM_SIMD_NS
