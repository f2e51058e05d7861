// Build (after):  g++ -O3 -fno-trapping-math -fopenmp -std=c++17 -I csrc/include callgrind_kernel.cpp -o cgk_new
// Build (before): the same with -DOLD and -I <ff31bee's csrc/include> (git archive ff31bee csrc/include | tar -x -C DIR)
// Count:          valgrind --tool=callgrind --toggle-collect='*run_case*' ./cgk_new fp32_T0   (cases: fp32_T0 bf16_T0 fp32_T1 bf16_T1 fp32_T1_topp0.9 bf16_T1_topp0.9_margin)
// Kernel-level instruction counts: the 6 report cases on [32, 126464], 1 thread, positions in order.
#include "dllm/cpu/denoise_step.h"
#include <cstdio>
#include <random>
#include <string>
using namespace dllm; using namespace dllm::cpu;
#ifdef OLD
#define LEVEL_ARG
#else
#define LEVEL_ARG , simd::level()
#endif
template <typename In>
__attribute__((noinline)) void run_case(const In* data, int64_t P, int64_t V, const DenoiseParams& p, int64_t* x0, float* conf) {
  Workspace ws;
  for (int64_t i = 0; i < P; ++i) denoise_position(data + i * V, V, nullptr, 0, p, 0, i, -5, ws, &x0[i], &conf[i] LEVEL_ARG);
}
int main(int argc, char** argv) {
  const std::string c = argv[1];
  const int64_t P = 32, V = 126464;
  std::mt19937 rng(1); std::normal_distribution<float> nd;
  std::vector<float> f(P * V); for (auto& v : f) v = nd(rng) * 3;
  std::vector<bf16_t> h(P*V); for (size_t i=0;i<f.size();++i){uint32_t u; memcpy(&u,&f[i],4); h[i].bits = (u + 0x7fff + ((u>>16)&1))>>16;}
  DenoiseParams p{}; p.mask_id = -5; p.inv_temperature = 1; p.top_p = 1.0; p.confidence = Confidence::kProb; p.seed = 1234;
  const bool bf = c.rfind("bf16", 0) == 0;
  if (c.find("T1") != std::string::npos) p.sample = true;
  if (c.find("topp") != std::string::npos) p.top_p = 0.9;
  if (c.find("margin") != std::string::npos) p.confidence = Confidence::kMargin;
  std::vector<int64_t> x0(P); std::vector<float> conf(P);
  if (bf) run_case(h.data(), P, V, p, x0.data(), conf.data()); else run_case(f.data(), P, V, p, x0.data(), conf.data());
  double chk = 0; for (int64_t i = 0; i < P; ++i) chk += x0[i] * 1e-6 + conf[i];
  printf("%s chk %.6f x0[0]=%ld\n", c.c_str(), chk, (long)x0[0]);
}
