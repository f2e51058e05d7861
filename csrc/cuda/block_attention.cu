// csrc/cuda/block_attention.cu — CUDA implementation of dllm_kernels::block_attention (checks in
// csrc/torch/checks.cpp, kernels in dllm/cuda/block_attention.cuh, compiled in
// csrc/cuda/block_attention/*.cu: block_attention/instances.h declares them extern). bf16 / fp16
// only (fp32 attention is CPU only); with check=false one call is the kernel launch(es) only: no
// host synchronisation.
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "block_attention/instances.h"
#include "block_attention_args.h"
#include "checks.h"
#include "cuda_check.h"
#include "dllm/cuda/block_attention.cuh"

namespace dllm_torch {

namespace {

template <typename T>
void run(const at::Tensor& q, const std::optional<at::Tensor>& k, const std::optional<at::Tensor>& v,
         const std::optional<at::Tensor>& k_cache, const std::optional<at::Tensor>& v_cache,
         const AttentionInputs& in, at::Tensor& out, at::Tensor& lse) {
  const dllm::BlockAttentionArgs<T> a =
      block_attention_args<T>(q, k, v, k_cache, v_cache, in, out, lse);
  const int num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const size_t bytes = dllm::cuda::block_attention_workspace_bytes<T>(a, num_sms);
  at::Tensor workspace;
  if (bytes > 0) workspace = at::empty({static_cast<int64_t>(bytes)}, q.options().dtype(at::kByte));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const cudaError_t err = dllm::cuda::block_attention<T>(
      a, bytes > 0 ? workspace.data_ptr() : nullptr, bytes, num_sms, stream);
  TORCH_CHECK(err != cudaErrorNotSupported, "dllm_kernels.block_attention: q is not supported on ",
              "this GPU (needs sm_80 or newer for bf16 / fp16 tensor cores), got ", q.device());
  DLLM_CUDA_CHECK("block_attention", err);
}

std::tuple<at::Tensor, at::Tensor> block_attention_cuda(
    const at::Tensor& q,                          // [B, Lq, Hq, D]
    const std::optional<at::Tensor>& k,           // [B, Lk, Hkv, D]
    const std::optional<at::Tensor>& v,           // [B, Lk, Hkv, D]
    const std::optional<at::Tensor>& k_cache,     // [num_pages, page_size, Hkv, D]
    const std::optional<at::Tensor>& v_cache,     // [num_pages, page_size, Hkv, D]
    const std::optional<at::Tensor>& block_table, // [B, max_pages] int32
    const std::optional<at::Tensor>& cache_lens,  // [B] int32
    const std::optional<at::Tensor>& kv_lens,     // [B] int32
    const std::optional<at::Tensor>& q_start,     // [B] int32
    c10::string_view mask, int64_t block_size, double softmax_scale, bool check) {
  const AttentionInputs in = block_attention_check(q, k, v, k_cache, v_cache, block_table,
                                                   cache_lens, kv_lens, q_start, mask, block_size,
                                                   softmax_scale, check);
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out = at::empty_like(q, at::MemoryFormat::Contiguous);
  at::Tensor lse = at::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(at::kFloat));
  if (q.numel() == 0) return {out, lse};
  if (q.scalar_type() == at::kBFloat16) {
    run<dllm::bf16_t>(q, k, v, k_cache, v_cache, in, out, lse);
  } else {
    run<dllm::f16_t>(q, k, v, k_cache, v_cache, in, out, lse);
  }
  return {out, lse};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) { m.impl("block_attention", &block_attention_cuda); }

}  // namespace dllm_torch
