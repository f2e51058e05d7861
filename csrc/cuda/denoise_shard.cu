// csrc/cuda/denoise_shard.cu — CUDA implementation of the vocabulary-parallel pieces of
// denoise_step (dllm_kernels::denoise_shard: stages top_k / range / top_p_level / state / sums;
// denoise_shard_finalize);
// dllm_kernels/tp.py runs them around the collectives. The launchers are in
// dllm/cuda/denoise_shard.cuh (instances: csrc/cuda/denoise_step/*.cu), the checks in
// csrc/torch/checks.cpp, the CPU pieces in csrc/cpu/denoise_shard.cpp.
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "checks.h"
#include "cuda_check.h"
#include "cuda_ops.h"
#include "denoise_step/instances.h"
#include "dllm/cuda/denoise_shard.cuh"

namespace dllm_torch {
namespace {

at::Tensor denoise_shard_cuda(
    const at::Tensor& logits,  // [B, L, V_shard] f32|bf16|f16, V contiguous
    const at::Tensor& x,       // [B, L] int64
    int64_t mask_id, double temperature, int64_t top_k, double top_p, c10::string_view filter_order,
    c10::string_view confidence, c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens,  // [n] int64 shard-local ids
    int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible,       // [B, L] bool, or none
    const std::optional<at::Tensor>& uncond_logits,  // like logits (CFG), or none
    double cfg_scale, int64_t vocab_start, c10::string_view stage,
    const std::optional<at::Tensor>& threshold,  // [B, L] f32: the filters' global threshold
    const std::optional<at::Tensor>& anchor,     // [B, L] f32: the global max (sums: of d,
                                                 //   top_p_level: of the scaled logits)
    const std::optional<at::Tensor>& bucket,     // [B, L] int64: top_p_level's key prefix
    bool with_argmax,                            // state: also z's argmax (return_argmax)
    int64_t shift) {                             // top_p_level: the level (24, 16, 8, 0)
  constexpr const char* op = "denoise_shard";
  dllm::DenoiseParams p = denoise_step_check(
      logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence, confidence_source,
      shift_logits, suppress_tokens, seed, offset, op, eligible, uncond_logits, cfg_scale);
  const ShardStage st =
      denoise_shard_check(x, vocab_start, stage, threshold, anchor, bucket, shift);
  p.vocab_start = vocab_start;
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = x.size(0), L = x.size(1), V = logits.size(2);
  const at::Tensor sup = sorted_suppress(suppress_tokens);
  const auto xv = dllm::view2d(x.const_data_ptr<int64_t>(), x.stride(0), x.stride(1));
  const float* thr = threshold.has_value() ? threshold->const_data_ptr<float>() : nullptr;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  // The split of V over blocks is the unfiltered step's (the threshold is given, not computed).
  dllm::DenoiseParams unfiltered = p;
  unfiltered.top_k = 0;
  unfiltered.top_p = 1.0;
  const int num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int splits = dllm::cuda::denoise_step_plan(B, L, V, unfiltered, num_sms).splits;
  const auto opts = x.options();
  at::Tensor out;
  with_logits(logits, op, [&](const auto* ptr) {
    using In = std::remove_cv_t<std::remove_pointer_t<decltype(ptr)>>;
    const dllm::cuda::denoise_detail::Rows<In> r{
        ptr,
        logits.stride(0),
        logits.stride(1),
        xv,
        sup.defined() ? sup.const_data_ptr<int64_t>() : nullptr,
        sup.defined() ? sup.numel() : 0,
        B,
        L,
        static_cast<int>(V)};
    switch (st) {
      case ShardStage::kTopK:
        out = at::full({B, L, top_k}, -std::numeric_limits<double>::infinity(),
                       opts.dtype(at::kFloat));
        DLLM_CUDA_CHECK(
            op, dllm::cuda::denoise_shard_top_k(r, p, thr, top_k, out.data_ptr<float>(), stream));
        break;
      case ShardStage::kState: {
        out = at::empty({B, L, 8}, opts.dtype(at::kDouble));
        const int64_t ws_bytes =
            B * L * splits * static_cast<int64_t>(sizeof(dllm::cuda::denoise_detail::RowState));
        const at::Tensor ws = at::empty({std::max<int64_t>(ws_bytes, 16)}, opts.dtype(at::kByte));
        at::Tensor am, zmax;
        if (with_argmax) {
          am = at::empty({B, L}, opts);
          zmax = at::empty({B, L}, opts.dtype(at::kFloat));
          p.argmax = am.data_ptr<int64_t>();
          p.argmax_sb = L;
        }
        DLLM_CUDA_CHECK(op, dllm::cuda::denoise_shard_state(
                                r, p, thr, splits, with_argmax ? zmax.data_ptr<float>() : nullptr,
                                out.data_ptr<double>(), ws.data_ptr(), stream));
        break;
      }
      case ShardStage::kSums:
        out = at::empty({B, L, 2}, opts);
        DLLM_CUDA_CHECK(op, dllm::cuda::denoise_shard_sums(
                                r, p, thr, anchor->const_data_ptr<float>(), splits,
                                reinterpret_cast<long long*>(out.data_ptr<int64_t>()), stream));
        break;
      case ShardStage::kRange:
        out = at::empty({B, L, 2}, opts.dtype(at::kFloat));
        DLLM_CUDA_CHECK(op,
                        dllm::cuda::denoise_shard_range(r, p, thr, out.data_ptr<float>(), stream));
        break;
      case ShardStage::kTopPLevel:  // threshold: top_k_first's k-th value (the lower key bound)
        out = at::empty({B, L, 256, 2}, opts);
        DLLM_CUDA_CHECK(op, dllm::cuda::denoise_shard_top_p_level(
                                r, p, thr, anchor->const_data_ptr<float>(),
                                bucket->const_data_ptr<int64_t>(), static_cast<int>(shift),
                                reinterpret_cast<long long*>(out.data_ptr<int64_t>()), stream));
        break;
      default:  // denoise_shard_check refused the CPU-only stages
        break;
    }
  });
  return out;
}

// x0, conf and argmax from the merged state and the all-reduced sums: the unsharded op's
// finalize, on the same numbers.
std::tuple<at::Tensor, at::Tensor, at::Tensor> denoise_shard_finalize_cuda(
    const at::Tensor& state,  // [B, L, 8] f64, merged over the shards
    const at::Tensor& sums,   // [B, L, 2] int64, summed over the shards
    const at::Tensor& x,      // [B, L] int64
    int64_t mask_id, c10::string_view confidence, int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible) {  // [B, L] bool, or none
  constexpr const char* op = "denoise_shard_finalize";
  const dllm::DenoiseParams p =
      denoise_shard_finalize_check(state, sums, x, mask_id, confidence, seed, offset, eligible);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), L = x.size(1);
  at::Tensor x0 = at::empty({B, L}, x.options());
  at::Tensor conf = at::empty({B, L}, x.options().dtype(at::kFloat));
  at::Tensor argmax = at::empty({B, L}, x.options());
  const auto xv = dllm::view2d(x.const_data_ptr<int64_t>(), x.stride(0), x.stride(1));
  DLLM_CUDA_CHECK(op, dllm::cuda::denoise_shard_finalize(
                          xv, B, L, p, state.const_data_ptr<double>(),
                          reinterpret_cast<const long long*>(sums.const_data_ptr<int64_t>()),
                          x0.data_ptr<int64_t>(), conf.data_ptr<float>(),
                          argmax.data_ptr<int64_t>(), at::cuda::getCurrentCUDAStream()));
  return {x0, conf, argmax};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CUDA, m) {
  m.impl("denoise_shard", &denoise_shard_cuda);
  m.impl("denoise_shard_finalize", &denoise_shard_finalize_cuda);
}

}  // namespace dllm_torch
