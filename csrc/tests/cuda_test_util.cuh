// csrc/tests/cuda_test_util.cuh — device buffers and the no-GPU skip for the native CUDA tests.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace dllm_test {

constexpr int kSkip = 77;  // ctest SKIP_RETURN_CODE

// Exits with kSkip (reported as skipped, not passed) when no CUDA device can be used.
inline void require_gpu(const char* name) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("%s: SKIP, no CUDA device\n", name);
    std::exit(kSkip);
  }
}

#define CUDA_OK(expr)                                                                      \
  do {                                                                                     \
    const cudaError_t e_ = (expr);                                                         \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(const std::vector<T>& host) : n(host.size()) {
    CUDA_OK(cudaMalloc(&ptr, sizeof(T) * (n ? n : 1)));
    if (n) CUDA_OK(cudaMemcpy(ptr, host.data(), sizeof(T) * n, cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> to_host() const {
    std::vector<T> h(n);
    if (n) CUDA_OK(cudaMemcpy(h.data(), ptr, sizeof(T) * n, cudaMemcpyDeviceToHost));
    return h;
  }
};

}  // namespace dllm_test
