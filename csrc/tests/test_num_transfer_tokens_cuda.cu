// Native test of dllm::cuda::num_transfer_tokens against the CPU kernel; needs a GPU.
#include "check.h"
#include "cuda_test_util.cuh"
#include "dllm/cuda/num_transfer_tokens.cuh"
#include "dllm/cpu/num_transfer_tokens.h"

using namespace dllm_test;

int main() {
  require_gpu("num_transfer_tokens_cuda");
  std::mt19937_64 rng(20261123);
  std::vector<Shape> shapes = test_shapes();
  shapes.push_back({70000, 3});
  for (const Shape s : shapes) {
    for (const int64_t steps : {1, 3, 64, 1000}) {
      const auto m = random_mask(rng, s.B * s.L * 2, 0.7);  // column stride 2
      const auto mv = [&](const char* p) {
        return dllm::view2d(reinterpret_cast<const uint8_t*>(p), s.L * 2, 2);
      };
      DeviceBuffer<char> dm(m);
      DeviceBuffer<int64_t> dout(std::vector<int64_t>(s.B * steps, -1));
      CUDA_OK(dllm::cuda::num_transfer_tokens(mv(dm.ptr), dllm::view2d(dout.ptr, steps, 1), s.B,
                                              s.L, steps, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      std::vector<int64_t> want(s.B * steps, -1);
      dllm::cpu::num_transfer_tokens_rows(mv(m.data()), dllm::view2d(want.data(), steps, 1), s.L,
                                          steps, 0, s.B);
      CHECK(dout.to_host() == want, "B=%lld L=%lld steps=%lld", (long long)s.B, (long long)s.L,
            (long long)steps);
    }
  }
  return report("num_transfer_tokens_cuda");
}
