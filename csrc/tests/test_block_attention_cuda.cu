// Native test of the CUDA block_attention launcher (dllm/cuda/block_attention.cuh) against the CPU
// kernel dllm::cpu::block_attention_unit (dllm/cpu/block_attention.h) on the same inputs: both
// masks, GQA 1 / 4 / 7, head_dim 64 / 96 / 128 / 256, page sizes 1 / 16 / 64, cache-only /
// contiguous-only / both / neither, rows with no key, lengths 0 / 1 / 33 / 1000 / 4097, B up to
// 32, strided q / out (16-byte and element paths), bf16 and f16. Every case runs with num_sms = 1
// (no KV split), the device's SM count and 65536 (the most splits), so the direct and the split +
// merge paths are both checked; unwritten outputs (NaN sentinels) and touched padding fail.
// Needs a GPU (else exit 77).
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>

#include "check.h"
#include "cuda_test_util.cuh"
#include "dllm/cuda/block_attention.cuh"
#include "dllm/cpu/block_attention.h"

using namespace dllm_test;
using dllm::AttnMask;
using dllm::BlockAttentionArgs;

template <typename T>
T from_float(float x);
template <>
dllm::bf16_t from_float<dllm::bf16_t>(float x) {  // round to nearest even (finite x)
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return dllm::bf16_t{static_cast<uint16_t>(u >> 16)};
}
template <>
dllm::f16_t from_float<dllm::f16_t>(float x) {
  const __half h = __float2half_rn(x);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return dllm::f16_t{bits};
}
template <typename T>
constexpr uint16_t kSentinel = 0x7FC0;  // bf16 NaN: an output element never written stays NaN
template <>
constexpr uint16_t kSentinel<dllm::f16_t> = 0x7E00;  // f16 NaN
template <typename T>
constexpr const char* kTypeName = std::is_same_v<T, dllm::bf16_t> ? "bf16" : "f16";

struct Case {
  std::string name;
  int64_t B, Lq, Hq, Hkv, D;
  int64_t page_size;                 // 0: no cache (k_cache = nullptr)
  int64_t Lk;                        // -1: no contiguous part (k = nullptr)
  std::vector<int32_t> cache_lens;   // [B] (ignored without a cache)
  std::vector<int32_t> kv_lens;      // [B] (ignored without k)
  std::vector<int32_t> q_start;      // [B]; empty: cache_lens
  AttnMask mask = AttnMask::kFull;
  int64_t block_size = 32;
  int64_t q_pad = 0, o_pad = 0;      // extra elements after each head row of q / out
  bool want_lse = true;
  float q_mag = 1.0f;
};

template <typename T>
static std::vector<T> random_elems(std::mt19937_64& rng, size_t n, float mag) {
  std::uniform_real_distribution<float> dist(-mag, mag);
  std::vector<T> v(n);
  for (auto& x : v) x = from_float<T>(dist(rng));
  return v;
}

template <typename T>
static void run_case(std::mt19937_64& rng, const Case& c, int device_sms) {
  const int64_t B = c.B, Lq = c.Lq, Hq = c.Hq, Hkv = c.Hkv, D = c.D;
  const bool has_cache = c.page_size > 0, has_k = c.Lk >= 0;
  const int64_t S = has_cache ? c.page_size : 1, Lk = has_k ? c.Lk : 0;

  // Paged cache: every row's pages drawn from a shuffled pool, unused table entries -1.
  int64_t max_cache = 0;
  for (int64_t b = 0; b < B; ++b) max_cache = std::max<int64_t>(max_cache, c.cache_lens[b]);
  const int64_t max_pages = std::max<int64_t>(1, (max_cache + S - 1) / S);
  const int64_t num_pages = B * max_pages + 2;
  std::vector<int32_t> pool(num_pages);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<int32_t> table(B * max_pages, -1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < (c.cache_lens[b] + S - 1) / S; ++p)
      table[b * max_pages + p] = pool[b * max_pages + p];
  const int64_t cache_elems = has_cache ? num_pages * S * Hkv * D : 0;
  std::vector<T> kc = random_elems<T>(rng, cache_elems, 1.0f);
  std::vector<T> vc = random_elems<T>(rng, cache_elems, 1.0f);
  std::vector<T> k = random_elems<T>(rng, B * Lk * Hkv * D, 1.0f);
  std::vector<T> v = random_elems<T>(rng, B * Lk * Hkv * D, 1.0f);
  const int64_t qh = D + c.q_pad, oh = D + c.o_pad;  // head strides of q / out
  std::vector<T> q = random_elems<T>(rng, B * Lq * Hq * qh, c.q_mag);
  std::vector<int32_t> cache_lens = c.cache_lens, kv_lens = c.kv_lens;
  std::vector<int32_t> q_start = c.q_start.empty() ? c.cache_lens : c.q_start;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  auto make_args = [&](const T* pq, const T* pk, const T* pv, const T* pkc, const T* pvc,
                       const int32_t* pcl, const int32_t* pkl, const int32_t* ptab,
                       const int32_t* pqs, T* pout, float* plse) {
    BlockAttentionArgs<T> a{};
    a.q = pq;
    a.q_stride_b = Lq * Hq * qh, a.q_stride_l = Hq * qh, a.q_stride_h = qh;
    a.k = has_k ? pk : nullptr;
    a.v = has_k ? pv : nullptr;
    a.k_stride_b = a.v_stride_b = Lk * Hkv * D;
    a.k_stride_l = a.v_stride_l = Hkv * D;
    a.k_stride_h = a.v_stride_h = D;
    a.kv_lens = pkl;
    a.k_cache = has_cache ? pkc : nullptr;
    a.v_cache = has_cache ? pvc : nullptr;
    a.kc_stride_page = a.vc_stride_page = S * Hkv * D;
    a.kc_stride_slot = a.vc_stride_slot = Hkv * D;
    a.kc_stride_head = a.vc_stride_head = D;
    a.block_table = ptab;
    a.num_pages = num_pages, a.max_pages = max_pages, a.page_size = S;
    a.cache_lens = pcl;
    a.q_start = pqs;
    a.out = pout;
    a.o_stride_b = Lq * Hq * oh, a.o_stride_l = Hq * oh, a.o_stride_h = oh;
    a.lse = plse;
    a.B = B, a.Lq = Lq, a.Lk = Lk, a.Hq = Hq, a.Hkv = Hkv, a.D = D;
    a.mask = c.mask;
    a.block_size = c.block_size;
    a.scale = scale;
    return a;
  };

  // CPU reference: fp32 output [B, Lq, Hq, D] and lse [B, Hq, Lq].
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> ref(B * Lq * Hq * D, nan), ref_lse(B * Hq * Lq, nan);
  {
    const BlockAttentionArgs<T> ha =
        make_args(q.data(), k.data(), v.data(), kc.data(), vc.data(), cache_lens.data(),
                  kv_lens.data(), table.data(), q_start.data(), nullptr, ref_lse.data());
    const int64_t rows = (Hq / Hkv) * Lq;  // one unit per (b, kv head): all its rows
    std::vector<float> scratch(dllm::cpu::attn_scratch_floats(D, rows));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hkv; ++h)
        dllm::cpu::block_attention_unit<T>(
            ha, b, h, 0, rows, scratch.data(),
            [&](const float* row, float scale, int64_t bb, int64_t i, int64_t hh) {
              float* dst = ref.data() + ((bb * Lq + i) * Hq + hh) * D;
              for (int64_t d = 0; d < D; ++d) dst[d] = row[d] * scale;
            });
  }

  DeviceBuffer<T> dq(q), dk(k), dv(v), dkc(kc), dvc(vc);
  DeviceBuffer<int32_t> dcl(cache_lens), dkl(kv_lens), dtab(table), dqs(q_start);
  for (const int sms : {1, device_sms, 65536}) {
    DeviceBuffer<T> dout(std::vector<T>(B * Lq * Hq * oh, T{kSentinel<T>}));
    DeviceBuffer<float> dlse(std::vector<float>(B * Hq * Lq, 777.0f));
    const BlockAttentionArgs<T> ga =
        make_args(dq.ptr, dk.ptr, dv.ptr, dkc.ptr, dvc.ptr, dcl.ptr, dkl.ptr, dtab.ptr, dqs.ptr,
                  dout.ptr, c.want_lse ? dlse.ptr : nullptr);
    const dllm::cuda::BlockAttentionPlan plan = dllm::cuda::block_attention_plan(ga, sms);
    const size_t ws = dllm::cuda::block_attention_workspace_bytes(ga, sms);
    void* w = nullptr;
    if (ws > 0) CUDA_OK(cudaMalloc(&w, ws));
    CUDA_OK(dllm::cuda::block_attention(ga, w, ws, sms, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    if (w != nullptr) CUDA_OK(cudaFree(w));
    const std::vector<T> out = dout.to_host();
    const std::vector<float> lse = dlse.to_host();

    int64_t bad = 0, bad_pad = 0, bad_lse = 0;
    double worst = 0.0;
    char first[256] = "";
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < Lq; ++i)
        for (int64_t h = 0; h < Hq; ++h) {
          const float rl = ref_lse[(b * Hq + h) * Lq + i];
          const bool no_key = std::isinf(rl) && rl < 0;
          for (int64_t d = 0; d < oh; ++d) {
            const T got_t = out[((b * Lq + i) * Hq + h) * oh + d];
            if (d >= D) {  // padding of a strided out: never written
              bad_pad += got_t.bits != kSentinel<T>;
              continue;
            }
            const float got = dllm::to_float(got_t), want = ref[((b * Lq + i) * Hq + h) * D + d];
            const float err = std::fabs(got - want);
            const bool ok = no_key ? got == 0.0f : err <= 2e-2f + 2e-2f * std::fabs(want);
            if (!ok && bad++ == 0)
              std::snprintf(first, sizeof(first), "out[b=%lld i=%lld h=%lld d=%lld] = %g, want %g",
                            (long long)b, (long long)i, (long long)h, (long long)d, got, want);
            if (std::isfinite(err)) worst = std::max(worst, double(err));
          }
          if (c.want_lse) {
            const float g = lse[(b * Hq + h) * Lq + i];
            const bool ok = no_key ? (std::isinf(g) && g < 0)
                                   : std::fabs(g - rl) <= 1e-3f + 1e-5f * std::fabs(rl);
            if (!ok && bad_lse++ == 0 && bad == 0)
              std::snprintf(first, sizeof(first), "lse[b=%lld h=%lld i=%lld] = %g, want %g",
                            (long long)b, (long long)h, (long long)i, g, rl);
          }
        }
    if (!c.want_lse)
      for (float g : lse) bad_lse += g != 777.0f;  // lse == nullptr: nothing written
    CHECK(bad == 0 && bad_pad == 0 && bad_lse == 0,
          "%s %s num_sms=%d splits=%d: %lld bad outputs, %lld touched pads, %lld bad lse; %s",
          c.name.c_str(), kTypeName<T>, sms,
          plan.splits, (long long)bad, (long long)bad_pad, (long long)bad_lse, first);
    std::printf("  %-34s %-4s num_sms=%-6d splits=%-2d max|err|=%.3g\n", c.name.c_str(),
                kTypeName<T>, sms, plan.splits, worst);
  }
}

static std::vector<int32_t> cycle(int64_t B, std::initializer_list<int32_t> vals) {
  std::vector<int32_t> v(B);
  for (int64_t b = 0; b < B; ++b) v[b] = vals.begin()[b % vals.size()];
  return v;
}

static std::vector<Case> cases() {
  std::vector<Case> cs;
  // Both parts, full mask, GQA 1, D 128, page 16, Lq 33 (a partial row tile); row 1 sees no key.
  cs.push_back(
      {"full_gqa1_d128_p16_both", 3, 33, 2, 2, 128, 16, 33, {33, 0, 1000}, {1, 0, 33}, {}});
  // Staircase, GQA 4, D 64, page 1; row 1's queries start mid-block.
  {
    Case c{"causal_gqa4_d64_p1_both", 2, 32, 8, 2, 64, 1, 32, {100, 0}, {32, 20}, {100, 16}};
    c.mask = AttnMask::kBlockCausal;
    cs.push_back(c);
  }
  // Contiguous only, staircase, GQA 7 (R = 231 rows: 4 row tiles), D 128.
  {
    Case c{"causal_gqa7_d128_contig", 2, 33, 7, 1, 128, 0, 70, {0, 0}, {70, 33}, {0, 5}};
    c.mask = AttnMask::kBlockCausal;
    c.block_size = 16;
    cs.push_back(c);
  }
  // Cache only, page 64, Lq 1, lengths 0 / 1 / 33 / 1000.
  cs.push_back({"cache_only_lq1_d64_p64", 4, 1, 4, 4, 64, 64, -1, {0, 1, 33, 1000}, {}, {}});
  {
    Case c{"cache_only_lq1_causal_gqa7_p16", 4, 1, 7, 1, 128, 16, -1, {0, 1, 33, 1000}, {},
           {0, 0, 20, 999}};
    c.mask = AttnMask::kBlockCausal;
    c.block_size = 32;
    cs.push_back(c);
  }
  // Split-KV: B = 1, Hkv = 4, 4097 keys; the staircase puts the queries across a block edge.
  {
    Case c{"split_b1_hkv4_4097_causal", 1, 32, 4, 4, 128, 16, 32, {4065}, {32}, {4065}};
    c.mask = AttnMask::kBlockCausal;
    cs.push_back(c);
  }
  cs.push_back({"split_b1_hkv4_4097_full_gqa4", 1, 16, 16, 4, 128, 16, -1, {4097}, {}, {}});
  // B = 32, mixed lengths (some rows with no key at all), GQA 4, staircase.
  {
    Case c{"b32_gqa4_d128_p16_causal", 32, 8, 8, 2, 128, 16, 33,
           cycle(32, {0, 1, 33, 300, 0, 64}), cycle(32, {0, 33, 1, 8, 5, 0}), {}};
    c.mask = AttnMask::kBlockCausal;
    c.block_size = 8;
    cs.push_back(c);
  }
  // Strided q / out: padded head rows that keep 16-byte alignment, and odd ones (element path).
  {
    Case c{"strided_vec_d64", 2, 17, 4, 2, 64, 16, 9, {40, 3}, {9, 9}, {}};
    c.q_pad = 8, c.o_pad = 8;
    cs.push_back(c);
  }
  {
    Case c{"strided_elem_d64_causal", 2, 17, 4, 2, 64, 16, 9, {40, 3}, {9, 9}, {}};
    c.q_pad = 1, c.o_pad = 3;
    c.mask = AttnMask::kBlockCausal;
    c.block_size = 4;
    cs.push_back(c);
  }
  // The other head dims.
  cs.push_back({"d96_gqa4_p16_both", 2, 9, 8, 2, 96, 16, 12, {50, 1}, {12, 3}, {}});
  {
    Case c{"d256_gqa1_p16_both_causal", 2, 9, 2, 2, 256, 16, 12, {50, 0}, {12, 12}, {}};
    c.mask = AttnMask::kBlockCausal;
    c.block_size = 4;
    cs.push_back(c);
  }
  // No key part at all: zeros and lse = -inf everywhere.
  cs.push_back({"no_keys", 2, 5, 4, 2, 64, 0, -1, {0, 0}, {}, {}});
  // lse not wanted; large scores (peaked softmax, many exp2 underflows).
  {
    Case c{"no_lse_peaked", 2, 33, 4, 4, 128, 16, 33, {1000, 33}, {33, 1}, {}};
    c.want_lse = false;
    c.q_mag = 8.0f;
    cs.push_back(c);
  }
  // Padded k (kv_lens < Lk), Lq = 1 decode-like GQA 7.
  cs.push_back({"padded_k_lq1_gqa7", 3, 1, 7, 1, 128, 16, 40, {17, 0, 1000}, {40, 7, 0}, {}});
  return cs;
}

template <typename T>
static void check_errors() {
  BlockAttentionArgs<T> a{};
  a.B = 1, a.Lq = 1, a.Hq = 1, a.Hkv = 1, a.D = 80;  // unsupported head_dim
  CHECK(dllm::cuda::block_attention(a, nullptr, 0, 1, nullptr) == cudaErrorNotSupported, "D = 80");
  a.D = 64, a.Hq = 3, a.Hkv = 2;
  CHECK(dllm::cuda::block_attention(a, nullptr, 0, 1, nullptr) == cudaErrorInvalidValue,
        "Hq %% Hkv");
}

int main() {
  require_gpu("block_attention_cuda");
  int dev = 0, sms = 0;
  CUDA_OK(cudaGetDevice(&dev));
  CUDA_OK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  std::mt19937_64 rng(20261124);

  {
    BlockAttentionArgs<float> f{};
    f.B = 1, f.Lq = 1, f.Hq = 1, f.Hkv = 1, f.D = 64;
    CHECK(dllm::cuda::block_attention(f, nullptr, 0, sms, nullptr) == cudaErrorNotSupported,
          "fp32");
    CHECK(dllm::cuda::block_attention_workspace_bytes(f, sms) == 0, "fp32 workspace");
  }
  check_errors<dllm::bf16_t>();

  const std::vector<Case> cs = cases();
  for (const Case& c : cs) run_case<dllm::bf16_t>(rng, c, sms);
  for (const Case& c : cs)
    if (c.name == "full_gqa1_d128_p16_both" || c.name == "split_b1_hkv4_4097_causal" ||
        c.name == "strided_elem_d64_causal" || c.name == "causal_gqa4_d64_p1_both")
      run_case<dllm::f16_t>(rng, c, sms);

  // The batch-1 long-prefix step must actually split on a real device.
  {
    BlockAttentionArgs<dllm::bf16_t> a{};
    a.B = 1, a.Lq = 32, a.Hq = 32, a.Hkv = 32, a.D = 128;
    a.k_cache = reinterpret_cast<const dllm::bf16_t*>(16);  // shapes only: never launched
    a.num_pages = 256, a.max_pages = 256, a.page_size = 16;
    const dllm::cuda::BlockAttentionPlan p = dllm::cuda::block_attention_plan(a, sms);
    CHECK(sms < 16 || p.splits > 1, "LLaDA step splits = %d on %d SMs", p.splits, sms);
    CHECK(p.workspace_bytes == dllm::cuda::block_attention_workspace_bytes(a, sms), "plan size");
  }
  return report("block_attention_cuda");
}
