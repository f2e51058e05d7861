// Native test of dllm::cuda::commit against the CPU kernel, contiguous and strided; needs a GPU.
#include "check.h"
#include "cuda_test_util.cuh"
#include "dllm/cuda/commit.cuh"
#include "dllm/cpu/commit.h"

using namespace dllm_test;

int main() {
  require_gpu("commit_cuda");
  std::mt19937_64 rng(20261123);
  std::vector<Shape> shapes = test_shapes();
  shapes.push_back({70000, 3});   // more rows than one grid dimension
  shapes.push_back({1, 300001});  // more columns than one launch covers (1024 x 256)
  for (const Shape s : shapes) {
    for (const int64_t pad : {0, 5}) {
      const int64_t row = s.L + pad;
      auto x = random_tokens(rng, s.B * row, 126464);
      const auto x0 = random_tokens(rng, s.B * s.L, 126464);
      const auto t = random_mask(rng, s.B * s.L, 0.3);
      DeviceBuffer<int64_t> dx(x), dx0(x0);
      DeviceBuffer<char> dt(t);
      CUDA_OK(dllm::cuda::commit<int64_t>(dllm::view2d(dx.ptr + pad, row, 1),
                                          dllm::view2d<const int64_t>(dx0.ptr, s.L, 1),
                                          dllm::view2d(reinterpret_cast<const uint8_t*>(dt.ptr), s.L, 1),
                                          s.B, s.L, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      dllm::cpu::commit_rows<int64_t>(dllm::view2d(x.data() + pad, row, 1),
                                      dllm::view2d(x0.data(), s.L, 1),
                                      dllm::view2d(reinterpret_cast<const uint8_t*>(t.data()), s.L, 1),
                                      s.L, 0, s.B);
      CHECK(dx.to_host() == x, "B=%lld L=%lld pad=%lld", (long long)s.B, (long long)s.L, (long long)pad);
    }
  }
  return report("commit_cuda");
}
