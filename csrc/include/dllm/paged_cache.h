// dllm/paged_cache.h — the paged KV cache layout shared by the cache ops (cache_write_,
// cache_gather, cache_copy_pages_) and by block_attention, on CPU and CUDA: views of one layer's
// cache and of a token source.
//
// Layout: the cache of one layer is k / v [num_pages, page_size, H_kv, D] (FlashInfer / vLLM
// "NHD"), head_dim contiguous, any page / slot / head strides (so k and v may be the two halves of
// one [num_pages, 2, page_size, H_kv, D] allocation). Token slot s lives at page s / page_size,
// offset s % page_size. Token sources are [n0, n1, H_kv, D] with arbitrary strides (n0 = 1 for [N,
// H, D]): k / v may be views of a fused qkv projection without a copy.
//
// The copies move bytes, never look at values: kernels are templated on the element's size only
// (uint16_t for bf16 / fp16, uint32_t for fp32), so the same code serves every dtype.
#pragma once

#include <cstdint>

#include "dllm/common.h"

namespace dllm {

// One layer's cache, [num_pages, page_size, heads, head_dim], head_dim contiguous (strides in
// elements).
template <typename E>
struct PagedCacheView {
  E* data;
  int64_t stride_page, stride_slot, stride_head;

  DLLM_HOST_DEVICE E* row(int64_t page, int64_t slot, int64_t head) const {
    return data + page * stride_page + slot * stride_slot + head * stride_head;
  }
};

// Tokens [n0, n1, heads, head_dim] with arbitrary strides; token t is (t / n1, t % n1).
template <typename E>
struct TokenView {
  E* data;
  int64_t n1;
  int64_t stride0, stride1, stride_head, stride_dim;

  DLLM_HOST_DEVICE E* row(int64_t t, int64_t head) const {
    return data + (t / n1) * stride0 + (t % n1) * stride1 + head * stride_head;
  }
};

}  // namespace dllm
