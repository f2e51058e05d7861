// Native test of the CUDA sampling launchers (dllm/cuda/denoise_step.cuh,
// dllm/cuda/select_transfer.cuh, dllm/cuda/denoise_and_select.cuh) against the CPU kernels of the
// same core (dllm/cpu/denoise_step.h, dllm/cpu/select_transfer.h): tokens and selections exactly
// equal, confidences within 1e-5 relative + 1e-6 absolute. The fused launcher's selection is
// compared with the CPU selection of the confidences it returned (a selection is an exact function
// of conf). Needs a GPU; exits 77 (ctest SKIP) without one.
#include <cmath>
#include <vector>

#include "check.h"
#include "cuda_test_util.cuh"
#include "dllm/cpu/denoise_step.h"
#include "dllm/cpu/select_transfer.h"
#include "dllm/cuda/denoise_and_select.cuh"
#include "dllm/cuda/denoise_step.cuh"
#include "dllm/cuda/select_transfer.cuh"
#include "denoise_and_select/instances.h"  // compiled in csrc/cuda/denoise_and_select/*_f32.cu
#include "denoise_step/instances.h"        // compiled in csrc/cuda/denoise_step/*_f32.cu

using namespace dllm_test;

namespace {

struct Case {
  int64_t B, L, V;
  float temperature;
  int64_t top_k;
  float top_p;
  bool top_p_first;
  dllm::Confidence confidence;
  bool source_sampling, shift;
};

bool close(float a, float b) {
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(a - b) <= 1e-6f + 1e-5f * std::fabs(b);
}

dllm::DenoiseParams params_of(const Case& c, int64_t mask_id) {
  dllm::DenoiseParams p{};
  p.mask_id = mask_id;
  p.sample = c.temperature > 0;
  p.inv_temperature = p.sample ? static_cast<float>(1.0 / c.temperature) : 1.0f;
  p.top_k = c.top_k;
  p.top_p = c.top_p;
  p.top_p_first = c.top_p_first;
  p.confidence = c.confidence;
  p.source_sampling = c.source_sampling;
  p.shift_logits = c.shift;
  p.seed = 0x1234567890ABCDEFull;
  p.offset = 5;
  return p;
}

void run_denoise(const Case& c, std::mt19937_64& rng, int num_sms) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t n = c.B * c.L * c.V;
  std::vector<float> logits(n);
  for (auto& v : logits) v = normal(rng);
  const int64_t mask_id = c.V + 3;
  auto x = random_tokens(rng, c.B * c.L, c.V);
  const auto m = random_mask(rng, c.B * c.L, 0.7);
  for (size_t i = 0; i < x.size(); ++i)
    if (m[i]) x[i] = mask_id;
  const std::vector<int64_t> suppress = {1, 7};
  const dllm::DenoiseParams p = params_of(c, mask_id);

  std::vector<int64_t> want_x0(c.B * c.L);
  std::vector<float> want_conf(c.B * c.L);
  dllm::cpu::denoise_step_positions<float>(
      logits.data(), c.L * c.V, c.V, dllm::view2d<const int64_t>(x.data(), c.L, 1), suppress.data(),
      2, c.L, c.V, p, dllm::view2d(want_x0.data(), c.L, 1), dllm::view2d(want_conf.data(), c.L, 1),
      0, c.B * c.L);

  DeviceBuffer<float> dl(logits);
  DeviceBuffer<int64_t> dx(x), ds(suppress), dx0(std::vector<int64_t>(c.B * c.L, -1));
  DeviceBuffer<float> dc(std::vector<float>(c.B * c.L, 0.0f));
  const dllm::cuda::DenoisePlan plan = dllm::cuda::denoise_step_plan(c.B, c.L, c.V, p, num_sms);
  void* ws = nullptr;
  if (plan.workspace_bytes) CUDA_OK(cudaMalloc(&ws, plan.workspace_bytes));
  CUDA_OK(dllm::cuda::denoise_step<float>(dl.ptr, c.L * c.V, c.V,
                                          dllm::view2d<const int64_t>(dx.ptr, c.L, 1), ds.ptr, 2,
                                          c.B, c.L, c.V, p, plan, dx0.ptr, dc.ptr, ws, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  if (ws) cudaFree(ws);
  const auto got_x0 = dx0.to_host();
  const auto got_conf = dc.to_host();
  int bad_x0 = 0, bad_conf = 0;
  for (size_t i = 0; i < want_x0.size(); ++i) {
    bad_x0 += got_x0[i] != want_x0[i];
    bad_conf += !close(got_conf[i], want_conf[i]);
  }
  CHECK(bad_x0 == 0 && bad_conf == 0,
        "denoise B=%lld L=%lld V=%lld T=%.2f k=%lld p=%.2f conf=%d: %d tokens, %d confs differ",
        (long long)c.B, (long long)c.L, (long long)c.V, c.temperature, (long long)c.top_k, c.top_p,
        (int)c.confidence, bad_x0, bad_conf);
}

void run_select(int64_t B, int64_t L, dllm::SelectRule rule, double value, bool strict,
                std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::vector<float> conf(B * L);
  for (auto& v : conf) v = uni(rng) < 0.25f ? -INFINITY : std::floor(uni(rng) * 16) / 16;  // ties
  std::vector<int64_t> k(B);
  std::vector<float> prob(B);
  for (int64_t b = 0; b < B; ++b) {
    k[b] = static_cast<int64_t>(uni(rng) * L);
    prob[b] = uni(rng);
  }
  std::vector<uint8_t> want(B * L);
  const dllm::SelectParams sp{rule, value, strict, 99, 3};
  dllm::cpu::select_transfer_rows(dllm::view2d<const float>(conf.data(), L, 1), k.data(),
                                  prob.data(), sp, L, dllm::view2d(want.data(), L, 1), 0, B);
  DeviceBuffer<float> dc(conf), dp(prob);
  DeviceBuffer<int64_t> dk(k);
  DeviceBuffer<uint8_t> dout(std::vector<uint8_t>(B * L, 2));
  CUDA_OK(dllm::cuda::select_transfer(dllm::view2d<const float>(dc.ptr, L, 1), rule, value, strict,
                                      dk.ptr, dp.ptr, 99, 3, B, L, dllm::view2d(dout.ptr, L, 1),
                                      nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  CHECK(dout.to_host() == want, "select B=%lld L=%lld rule=%d", (long long)B, (long long)L,
        (int)rule);
}

// The fused launcher (one memset + one kernel) vs the CPU kernels. Logits with ties, NaN and +-inf;
// one row with nothing masked; per-row k and p at stride 2; commit on a strided x. num_sms picks
// the layout: 1 -> no V split, 65536 -> the most splits.
void run_fused(const Case& c, dllm::SelectRule rule, double value, bool strict, bool commit,
               std::mt19937_64& rng, int num_sms) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  const int64_t B = c.B, L = c.L, V = c.V, P = B * L;
  std::vector<float> logits(P * V);
  for (auto& v : logits) {
    const float u = uni(rng);
    v = u < 0.001f   ? NAN
        : u < 0.002f ? INFINITY
        : u < 0.003f ? -INFINITY
                     : std::round(normal(rng) * 4) / 4;  // coarse values: ties
  }
  const int64_t mask_id = V + 3;
  const int64_t xs = L + 3;  // x is a [B, L] slice of a [B, L + 3] buffer
  std::vector<int64_t> xbuf(B * xs, 17);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      xbuf[b * xs + l] = (b == 0 || uni(rng) < 0.3f) ? static_cast<int64_t>(uni(rng) * V) : mask_id;
  std::vector<int64_t> kbuf(2 * B);  // per-row k and p at stride 2
  std::vector<float> pbuf(2 * B);
  for (int64_t b = 0; b < B; ++b) {
    kbuf[2 * b] = static_cast<int64_t>(uni(rng) * (L + 1));
    kbuf[2 * b + 1] = -99;
    pbuf[2 * b] = uni(rng);
    pbuf[2 * b + 1] = 2.0f;
  }
  const std::vector<int64_t> suppress = {1, 7};
  const dllm::DenoiseParams p = params_of(c, mask_id);

  std::vector<int64_t> want_x0(P);
  std::vector<float> want_conf(P);
  dllm::cpu::denoise_step_positions<float>(
      logits.data(), L * V, V, dllm::view2d<const int64_t>(xbuf.data(), xs, 1), suppress.data(), 2,
      L, V, p, dllm::view2d(want_x0.data(), L, 1), dllm::view2d(want_conf.data(), L, 1), 0, P);

  DeviceBuffer<float> dl(logits), dp(pbuf), dc(std::vector<float>(P, 0.0f));
  DeviceBuffer<int64_t> dx(xbuf), ds(suppress), dk(kbuf), dx0(std::vector<int64_t>(P, -1));
  DeviceBuffer<uint8_t> dt(std::vector<uint8_t>(P, 2));
  const auto plan = dllm::cuda::denoise_and_select_plan(B, L, V, p, num_sms);
  void* ws = nullptr;
  CUDA_OK(cudaMalloc(&ws, plan.workspace_bytes));
  CUDA_OK(cudaMemset(ws, 0xFF, plan.workspace_bytes));  // garbage: the launcher zeroes its counters
  const uint64_t sel_seed = rule == dllm::SelectRule::kProbability ? p.seed : 0;
  const uint32_t sel_offset = rule == dllm::SelectRule::kProbability ? p.offset : 0;
  CUDA_OK(dllm::cuda::denoise_and_select<float>(
      dl.ptr, L * V, V, dllm::view2d(dx.ptr, xs, 1), ds.ptr, 2, B, L, V, p, rule, value, strict,
      dk.ptr, dp.ptr, 2, sel_seed, sel_offset, commit, /*renoise=*/false, plan, dx0.ptr, dc.ptr,
      dllm::view2d(dt.ptr, L, 1), ws, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  cudaFree(ws);
  const auto got_x0 = dx0.to_host();
  const auto got_conf = dc.to_host();
  const auto got_t = dt.to_host();
  const auto got_x = dx.to_host();
  std::vector<int64_t> k(B);
  std::vector<float> prob(B);
  for (int64_t b = 0; b < B; ++b) {
    k[b] = kbuf[2 * b];
    prob[b] = pbuf[2 * b];
  }
  std::vector<uint8_t> want_t(P);
  const dllm::SelectParams sp{rule, value, strict, sel_seed, sel_offset};
  dllm::cpu::select_transfer_rows(dllm::view2d<const float>(got_conf.data(), L, 1), k.data(),
                                  prob.data(), sp, L, dllm::view2d(want_t.data(), L, 1), 0, B);
  int bad_x0 = 0, bad_conf = 0, bad_t = 0, bad_x = 0;
  for (int64_t i = 0; i < P; ++i) {
    bad_x0 += got_x0[i] != want_x0[i];
    bad_conf += !close(got_conf[i], want_conf[i]);
    bad_t += got_t[i] != want_t[i];
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < xs; ++l) {
      const int64_t before = xbuf[b * xs + l];
      const int64_t want = (l < L && commit && want_t[b * L + l]) ? got_x0[b * L + l] : before;
      bad_x += got_x[b * xs + l] != want;
    }
  CHECK(bad_x0 == 0 && bad_conf == 0 && bad_t == 0 && bad_x == 0,
        "fused B=%lld L=%lld V=%lld k=%lld p=%.2f rule=%d commit=%d sms=%d splits=%d: %d tokens, "
        "%d confs, %d selections, %d x differ",
        (long long)B, (long long)L, (long long)V, (long long)c.top_k, c.top_p, (int)rule,
        (int)commit, num_sms, plan.denoise.splits, bad_x0, bad_conf, bad_t, bad_x);
}

}  // namespace

int main() {
  require_gpu("sampling_cuda");
  int dev = 0, num_sms = 0;
  CUDA_OK(cudaGetDevice(&dev));
  CUDA_OK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, dev));
  std::mt19937_64 rng(20261123);
  using C = dllm::Confidence;
  const Case cases[] = {
      {1, 7, 50, 0.0f, 0, 1.0f, false, C::kProb, false, false},
      {2, 33, 50257, 0.0f, 0, 1.0f, false, C::kMargin, false, true},
      {1, 32, 126464, 0.0f, 0, 1.0f, false, C::kNegEntropy, false, false},
      {3, 5, 151936, 1.0f, 0, 1.0f, false, C::kProb, false, false},
      {2, 9, 1000, 0.7f, 5, 1.0f, false, C::kProb, true, false},
      {2, 9, 1000, 1.0f, 0, 0.9f, false, C::kMargin, true, false},
      {2, 9, 1000, 1.0f, 20, 0.8f, true, C::kNegEntropy, true, true},
      {2, 9, 1000, 0.0f, 3, 1.0f, false, C::kRandom, true, false},
      {64, 32, 4099, 0.0f, 0, 1.0f, false, C::kProb, false, false},
  };
  for (const Case& c : cases) run_denoise(c, rng, num_sms);
  using R = dllm::SelectRule;
  for (const int64_t L : {1, 7, 33, 512, 4096, 5000}) {
    run_select(3, L, R::kNumTransfer, 0.0, false, rng);
    run_select(3, L, R::kThreshold, 0.5, false, rng);
    run_select(3, L, R::kThreshold, 0.5, true, rng);
    run_select(3, L, R::kFactor, 1.0, false, rng);
    run_select(3, L, R::kProbability, 0.0, false, rng);
  }
  const Case fused_cases[] = {
      {1, 1, 9000, 0.0f, 0, 1.0f, false, C::kProb, false, false},
      {2, 7, 126464, 1.0f, 0, 1.0f, false, C::kMargin, false, true},
      {3, 33, 20000, 0.0f, 0, 1.0f, false, C::kNegEntropy, false, false},
      {2, 33, 1000, 1.0f, 5, 0.9f, false, C::kProb, true, false},
      {1, 512, 300, 0.0f, 0, 1.0f, false, C::kRandom, false, false},
      {2, 5000, 64, 0.0f, 0, 1.0f, false, C::kProb, false, false},
  };
  for (const Case& c : fused_cases)
    for (const int sms : {1, num_sms, 65536})
      for (const bool commit : {false, true}) {
        run_fused(c, R::kNumTransfer, 0.0, false, commit, rng, sms);
        run_fused(c, R::kThreshold, 0.25, false, commit, rng, sms);
        run_fused(c, R::kThreshold, 0.25, true, commit, rng, sms);
        run_fused(c, R::kFactor, 1.0, false, commit, rng, sms);
        run_fused(c, R::kProbability, 0.0, false, commit, rng, sms);
      }
  return report("sampling_cuda");
}
