// Native test of the vectorised denoise_step kernel (dllm/cpu/denoise_step_simd.h) on every level
// this CPU has (AVX2, AVX-512): its Philox words equal dllm::philox_group's, its Gumbel bound is >=
// the exact draw for every distinct word, and whole positions (every confidence, T = 0 / T > 0,
// top-k, top-p, suppressed ids, NaN / inf, fp32 / bf16 / fp16) give the generic kernel's x0 exactly
// and its confidence to ~1e-6.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "check.h"
#include "dllm/cpu/denoise_step.h"

#ifdef DLLM_DENOISE_SIMD
// The 16-lane kernel logic (AVX-512's) on AVX2 halves, so that an AVX2-only CPU tests it too.
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define DLLM_SIMD_NS emu16
#define DLLM_SIMD_W 16
#define DLLM_SIMD_EMU16 1
#include "dllm/cpu/denoise_step_simd_impl.h"
#undef DLLM_SIMD_NS
#undef DLLM_SIMD_W
#undef DLLM_SIMD_EMU16
#pragma GCC pop_options
#endif

using namespace dllm_test;
using namespace dllm;
using namespace dllm::cpu;

namespace {

constexpr int kEmu16 = -1;  // run_positions level: the 16-lane kernel on AVX2 halves

const char* path_name(int level) { return level == kEmu16 ? "emu16" : simd::level_name(level); }

#ifdef DLLM_DENOISE_SIMD
// Philox words of group g0 .. g0 + W - 1 in token order and the bound, through one level's code.
template <int kW, typename PhiloxFn, typename BoundFn>
void check_philox_and_bound(const char* name, PhiloxFn philox, BoundFn bound) {
  std::mt19937_64 rng(7);
  int bad_words = 0;
  for (int t = 0; t < 200; ++t) {
    const uint64_t seed = rng();
    const uint32_t offset = static_cast<uint32_t>(rng()), g0 = static_cast<uint32_t>(rng());
    const int64_t b = static_cast<int64_t>(rng() % 1000), l = static_cast<int64_t>(rng() % 5000);
    uint32_t words[4 * kW];
    philox(seed, offset, b, l, g0, words);
    for (int j = 0; j < 4 * kW; ++j) {
      const Philox4 r = philox_group(seed, offset, b, l, g0 + j / 4);
      bad_words += words[j] != r.w[j % 4];
    }
  }
  CHECK(bad_words == 0, "%s: %d Philox words differ from philox_group", name, bad_words);
  // Every distinct uniform: the word's top 23 bits (uniform_open01 reads w >> 9).
  int64_t bad_bound = 0;
  float worst = 1e9f;
  uint32_t w[kW];
  float gb[kW];
  for (uint32_t k = 0; k < (1u << 23); k += kW) {
    for (int j = 0; j < kW; ++j) w[j] = (k + j) << 9 | (j * 37u & 0x1FFu);
    bound(w, gb);
    for (int j = 0; j < kW; ++j) {
      const float g = gumbel_of_word(w[j]);
      bad_bound += !(gb[j] >= g);
      worst = std::min(worst, gb[j] - g);
    }
  }
  CHECK(bad_bound == 0, "%s: Gumbel bound below the draw for %lld words", name,
        static_cast<long long>(bad_bound));
  CHECK(worst > 0.005f, "%s: smallest bound slack %g", name, worst);
}
#endif

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

uint16_t to_f16(float f) {  // round to nearest even, via float arithmetic on the bits (test only)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // overflow -> inf
  if (a < 0x38800000u) {                                               // subnormal half
    float mag;
    std::memcpy(&mag, &a, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(mag * 16777216.0f)));
  }
  const uint32_t r = a + 0xFFFu + ((a >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((r - 0x38000000u) >> 13));
}

template <typename In>
void run_positions(const std::vector<In>& logits, int64_t P, int64_t V,
                   const std::vector<int64_t>& sup, const DenoiseParams& p, int level,
                   std::vector<int64_t>& x0, std::vector<float>& conf) {
  Workspace ws;
  x0.assign(P, 0);
  conf.assign(P, 0);
  const int64_t ns = static_cast<int64_t>(sup.size());
  for (int64_t i = 0; i < P; ++i) {
    const In* row = logits.data() + i * V;
#ifdef DLLM_DENOISE_SIMD
    if (level == kEmu16) {  // denoise_position on the emulated 16-lane kernel
      const bool filtered = is_filtered(p, V);
      if (filtered) simd::emu16::prepare_filtered(row, V, sup.data(), ns, p, ws);
      RowState st;
      simd::emu16::accumulate_range(row, 0, V, sup.data(), ns, p, 1, i, filtered, ws, st);
      if (needs_sums(p, st)) {  // the second pass (denoise_position's, without the fused sums)
        ExactSums sums;
        simd::emu16::exact_sums_range(row, 0, V, sup.data(), ns, p, filtered, ws, st.m, sums);
        set_sums(st, sums);
      }
      finalize(st, p, 1, i, p.mask_id, &x0[i], &conf[i]);
      continue;
    }
#endif
    denoise_position(row, V, sup.data(), ns, p, 1, i, p.mask_id, ws, &x0[i], &conf[i], level);
  }
}

template <typename In>
void compare(const std::vector<In>& logits, int64_t P, int64_t V, const std::vector<int64_t>& sup,
             const DenoiseParams& p, int level, const std::string& name) {
  std::vector<int64_t> xa, xb;
  std::vector<float> ca, cb;
  run_positions(logits, P, V, sup, p, simd::kGeneric, xa, ca);
  run_positions(logits, P, V, sup, p, level, xb, cb);
  int bad = 0;
  for (int64_t i = 0; i < P; ++i) {
    const bool same_inf = std::isinf(ca[i]) && ca[i] == cb[i];
    const bool close = std::fabs(ca[i] - cb[i]) <= 2e-6 + 5e-6 * std::fabs(ca[i]);
    if (xa[i] != xb[i] || !(same_inf || close)) {
      if (bad++ < 3)
        std::printf("  %s pos %lld: x0 %lld vs %lld, conf %.9g vs %.9g\n", name.c_str(),
                    static_cast<long long>(i), static_cast<long long>(xa[i]),
                    static_cast<long long>(xb[i]), ca[i], cb[i]);
    }
  }
  CHECK(bad == 0, "%s: %d positions differ from the generic kernel", name.c_str(), bad);
}

void check_positions(int level) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unif;
  const int64_t vocabs[] = {7, 63, 257, 1000, 5003, 50257, 126464};
  for (const int64_t V : vocabs) {
    for (int mode = 0; mode < 9; ++mode) {
      for (int conf = 0; conf < 4; ++conf) {
        for (int special = 0; special < 2; ++special) {
          const int dtype = (mode + conf + special) % 3;
          if (V >= 50257 && (conf != mode % 4 || special)) continue;  // keep the big rows few
          DenoiseParams p{};
          p.mask_id = -5;
          p.inv_temperature = 1.0f;
          p.top_p = 1.0;
          p.confidence = static_cast<Confidence>(conf);
          p.seed = (static_cast<uint64_t>(rng()) << 32) | rng();
          p.offset = rng();
          std::vector<int64_t> sup;
          float scale = 3.0f;
          switch (mode) {
            case 0:
              break;
            case 1:
              p.sample = true;
              break;
            case 2:
              p.sample = true;
              p.inv_temperature = 1.0f / 0.7f;
              p.source_sampling = true;
              break;
            case 3:
              p.sample = true;
              p.inv_temperature = 1.0f / 1.3f;
              p.top_k = 5;
              break;
            case 4:
              p.sample = true;
              p.top_p = 0.9;
              break;
            case 5:
              p.top_p = 0.5;
              p.source_sampling = true;
              break;
            case 6:
              p.top_k = 3;
              break;
            case 7:
              p.sample = true;
              p.inv_temperature = 2.0f;
              scale = 30.0f;
              for (const int64_t id : {int64_t{0}, int64_t{3}, V / 2, V - 1}) sup.push_back(id);
              break;
            case 8:
              scale = 0.1f;
              sup.push_back(1);
              sup.push_back(V / 3);
              p.top_p = 0.95;
              p.top_p_first = true;
              p.top_k = 40;
              break;
          }
          for (int64_t& s : sup) s = std::min<int64_t>(s, V - 1);
          std::sort(sup.begin(), sup.end());
          sup.erase(std::unique(sup.begin(), sup.end()), sup.end());
          const int64_t P = V >= 50257 ? 2 : 4;
          std::vector<float> f(P * V);
          for (float& v : f) v = normal(rng) * scale;
          if (special) {
            for (float& v : f) {
              const float u = unif(rng);
              if (u < 0.03f)
                v = -INFINITY;
              else if (u < 0.04f)
                v = NAN;
              else if (u < 0.041f)
                v = INFINITY;
            }
            for (int64_t j = 0; j < V; ++j) f[V + j] = -INFINITY;  // nothing to decode
          }
          const std::string name = std::string(path_name(level)) + " V=" + std::to_string(V) +
                                   " mode=" + std::to_string(mode) +
                                   " conf=" + std::to_string(conf) +
                                   " dtype=" + std::to_string(dtype) + (special ? " nan/inf" : "");
          if (dtype == 0) {
            compare(f, P, V, sup, p, level, name);
          } else if (dtype == 1) {
            std::vector<bf16_t> h(f.size());
            for (size_t i = 0; i < f.size(); ++i) h[i].bits = to_bf16(f[i]);
            compare(h, P, V, sup, p, level, name);
          } else {
            std::vector<f16_t> h(f.size());
            for (size_t i = 0; i < f.size(); ++i) h[i].bits = to_f16(f[i]);
            compare(h, P, V, sup, p, level, name);
          }
        }
      }
    }
  }
}

}  // namespace

#ifdef DLLM_DENOISE_SIMD
// One level's Philox block and bound, called through plain pointers (target-specific code).
#define DLLM_TEST_LEVEL(ns, TGT, W, load_words)                                            \
  __attribute__((target(TGT))) void ns##_philox(uint64_t seed, uint32_t offset, int64_t b, \
                                                int64_t l, uint32_t g0, uint32_t* out) {   \
    const simd::ns::PhiloxCtx c = simd::ns::philox_ctx(seed, offset, b, l);                \
    simd::ns::VI w[4];                                                                     \
    simd::ns::philox_block(c, g0, w);                                                      \
    for (int k = 0; k < 4; ++k) simd::ns::storei(out + W * k, w[k]);                       \
  }                                                                                        \
  __attribute__((target(TGT))) void ns##_bound(const uint32_t* w, float* out) {            \
    simd::ns::store(out, simd::ns::gumbel_bound(load_words(w)));                           \
  }
#define DLLM_LOAD8(w) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))
#define DLLM_LOAD16(w) _mm512_loadu_si512(w)
DLLM_TEST_LEVEL(avx2, "avx2,fma,f16c", 8, DLLM_LOAD8)
DLLM_TEST_LEVEL(emu16, "avx2,fma,f16c", 16, simd::emu16::loadi)
DLLM_TEST_LEVEL(avx512, "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c", 16, DLLM_LOAD16)
#endif

int main() {
  const int top = simd::cpu_level();
  std::printf("CPU level: %s\n", simd::level_name(top));
#ifdef DLLM_DENOISE_SIMD
  if (top >= simd::kAvx2) {
    check_philox_and_bound<8>("avx2", avx2_philox, avx2_bound);
    check_positions(simd::kAvx2);
    check_philox_and_bound<16>("emu16", emu16_philox, emu16_bound);
    check_positions(kEmu16);
  }
  if (top >= simd::kAvx512) {
    check_philox_and_bound<16>("avx512", avx512_philox, avx512_bound);
    check_positions(simd::kAvx512);
  }
#endif
  if (top == simd::kGeneric) std::printf("SKIP: no vector level on this CPU\n");
  return report("denoise_step_simd");
}
