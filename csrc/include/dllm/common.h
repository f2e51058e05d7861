// dllm/common.h — small shared pieces of the torch-free core: host/device qualifiers and a strided
// 2-D view. Everything under csrc/include/dllm/ includes no torch header, so any engine can reuse
// it.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DLLM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DLLM_HOST_DEVICE inline
#endif

// Hot CPU loops get an x86-64-v3 (AVX2 + FMA) clone picked at load time (GCC ifunc), so the build
// needs no -march flag and still runs on any x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__) && !defined(__clang__)
#define DLLM_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default"), unused))
#elif defined(__GNUC__)
#define DLLM_CPU_CLONES __attribute__((unused))
#else
#define DLLM_CPU_CLONES
#endif

namespace dllm {

// A [rows, cols] view of memory with arbitrary element strides (in elements, not bytes), so that a
// slice such as x[:, start:end] or a transposed tensor is read in place without a copy.
template <typename T>
struct View2D {
  T* data;
  int64_t stride_row;
  int64_t stride_col;

  DLLM_HOST_DEVICE T& operator()(int64_t row, int64_t col) const {
    return data[row * stride_row + col * stride_col];
  }
};

template <typename T>
DLLM_HOST_DEVICE View2D<T> view2d(T* data, int64_t stride_row, int64_t stride_col) {
  return View2D<T>{data, stride_row, stride_col};
}

DLLM_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace dllm
