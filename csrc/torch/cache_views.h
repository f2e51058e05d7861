// csrc/torch/cache_views.h — the paged-cache views of the cache ops' tensors (shared by the CPU
// and CUDA glue of cache_write_ / cache_gather / cache_copy_pages_; checks come first).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "dllm/paged_cache.h"

namespace dllm_torch {

// The copies only move bytes: dispatch on the element size (2 bytes: bf16 / fp16, 4: fp32).
template <typename F>
void dispatch_elem_size(const at::Tensor& t, F&& f) {
  if (t.element_size() == 2) {
    f(uint16_t{});
  } else {
    f(uint32_t{});
  }
}

// k_cache / v_cache [num_pages, page_size, H, D] (head_dim contiguous).
template <typename E>
dllm::PagedCacheView<E> cache_view(const at::Tensor& c) {
  return {static_cast<E*>(c.data_ptr()), c.stride(0), c.stride(1), c.stride(2)};
}

template <typename E>
dllm::PagedCacheView<const E> const_cache_view(const at::Tensor& c) {
  return {static_cast<const E*>(c.const_data_ptr()), c.stride(0), c.stride(1), c.stride(2)};
}

// k [N, H, D] or [B, L, H, D] as tokens [n0, n1, H, D].
template <typename E>
dllm::TokenView<const E> token_view(const at::Tensor& t) {
  const bool flat = t.dim() == 3;
  return {static_cast<const E*>(t.const_data_ptr()), flat ? t.size(0) : t.size(1),
          flat ? 0 : t.stride(0), flat ? t.stride(0) : t.stride(1), t.stride(-2), t.stride(-1)};
}

// slot_mapping [N] or [B, L] as a [n0, n1] view.
inline dllm::View2D<const int64_t> slots_view(const at::Tensor& s) {
  return s.dim() == 1 ? dllm::view2d(s.const_data_ptr<int64_t>(), 0, s.stride(0))
                      : dllm::view2d(s.const_data_ptr<int64_t>(), s.stride(0), s.stride(1));
}

}  // namespace dllm_torch
