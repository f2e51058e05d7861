// csrc/torch/block_attention_args.h — fills dllm::BlockAttentionArgs from the op's tensors (shared
// by the CPU and CUDA glue of block_attention; checks in checks.cpp come first).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "checks.h"
#include "dllm/block_attention.h"

namespace dllm_torch {

template <typename T>
const T* attn_ptr_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() ? static_cast<const T*>(t->const_data_ptr()) : nullptr;
}

template <typename T>
dllm::BlockAttentionArgs<T> block_attention_args(const at::Tensor& q,
                                                 const std::optional<at::Tensor>& k,
                                                 const std::optional<at::Tensor>& v,
                                                 const std::optional<at::Tensor>& k_cache,
                                                 const std::optional<at::Tensor>& v_cache,
                                                 const AttentionInputs& in, at::Tensor& out,
                                                 at::Tensor& lse) {
  dllm::BlockAttentionArgs<T> a{};
  a.q = static_cast<const T*>(q.const_data_ptr());
  a.q_stride_b = q.stride(0), a.q_stride_l = q.stride(1), a.q_stride_h = q.stride(2);
  a.k = attn_ptr_or_null<T>(k), a.v = attn_ptr_or_null<T>(v);
  if (k.has_value()) {
    a.k_stride_b = k->stride(0), a.k_stride_l = k->stride(1), a.k_stride_h = k->stride(2);
    a.v_stride_b = v->stride(0), a.v_stride_l = v->stride(1), a.v_stride_h = v->stride(2);
    a.Lk = k->size(1);
  }
  a.kv_lens = in.kv_lens.const_data_ptr<int32_t>();
  a.k_cache = attn_ptr_or_null<T>(k_cache), a.v_cache = attn_ptr_or_null<T>(v_cache);
  if (k_cache.has_value()) {
    a.kc_stride_page = k_cache->stride(0), a.kc_stride_slot = k_cache->stride(1),
    a.kc_stride_head = k_cache->stride(2);
    a.vc_stride_page = v_cache->stride(0), a.vc_stride_slot = v_cache->stride(1),
    a.vc_stride_head = v_cache->stride(2);
    a.block_table = in.block_table.const_data_ptr<int32_t>();
    a.num_pages = k_cache->size(0), a.max_pages = in.block_table.size(1),
    a.page_size = k_cache->size(1);
  }
  a.cache_lens = in.cache_lens.const_data_ptr<int32_t>();
  a.q_start = in.q_start.const_data_ptr<int32_t>();
  a.out = static_cast<T*>(out.data_ptr());
  a.o_stride_b = out.stride(0), a.o_stride_l = out.stride(1), a.o_stride_h = out.stride(2);
  a.lse = lse.data_ptr<float>();
  a.B = q.size(0), a.Lq = q.size(1), a.Hq = q.size(2), a.Hkv = in.Hkv, a.D = q.size(3);
  a.mask = in.mask;
  a.block_size = in.block_size;
  a.scale = static_cast<float>(in.scale);
  return a;
}

}  // namespace dllm_torch
