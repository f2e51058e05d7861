// csrc/cpu/denoise_shard.cpp — CPU implementation of the vocabulary-parallel pieces of
// denoise_step (dllm_kernels::denoise_shard, denoise_shard_finalize, top_p_shard_plan,
// top_p_shard_walk); dllm_kernels/tp.py runs them around the collectives, the per-position
// kernels are in dllm/cpu/denoise_shard.h, the checks in csrc/torch/checks.cpp.
#include <ATen/Parallel.h>
#include <ATen/ops/_unique2.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "cpu_ops.h"
#include "dllm/cpu/denoise_shard.h"

namespace dllm_torch {
namespace {

using dllm::cpu::kNegInf;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

using Stage = ShardStage;

// What one stage needs besides the logits: the per-position threshold / anchor / bucket and the
// output rows (one row of `width` elements per position, [B, L, width] contiguous).
struct StageIO {
  Stage stage;
  const float* thr;       // [B, L] or null
  const float* anchor;    // [B, L] or null
  const int64_t* bucket;  // [B, L] or null
  int64_t width;
  float* f32_out;
  double* f64_out;
  int64_t* i64_out;
  std::vector<std::vector<float>>* members;  // [B * L] (kMembers)
};

// One position's stage on its shard row (the logits row, or CFG's guided float row).
template <typename R>
void run_position(const R* row, int64_t V, const int64_t* sp, int64_t ns,
                  const dllm::DenoiseParams& p, int64_t b, int64_t l, int64_t i, const StageIO& io,
                  dllm::cpu::Workspace& ws) {
  const float thr = io.thr ? io.thr[i] : kNegInf;
  const bool filtered = io.thr != nullptr;
  const int level = dllm::cpu::simd::level();
  // The filter stages read the values only (no kept-token list for the sampling choice).
  dllm::DenoiseParams values_only = p;
  values_only.sample = false;
  switch (io.stage) {
    case Stage::kTopK:
      dllm::cpu::shard_values(row, V, sp, ns, values_only, thr, ws);
      dllm::cpu::shard_top_k(ws, V, io.width, io.f32_out + i * io.width);
      return;
    case Stage::kRange:
      dllm::cpu::shard_values(row, V, sp, ns, values_only, thr, ws);
      dllm::cpu::finite_range(ws.full.data(), V, io.f32_out + 2 * i);
      return;
    case Stage::kHist:
      if (io.anchor[i] == kNegInf) return;
      dllm::cpu::shard_values(row, V, sp, ns, values_only, thr, ws);
      dllm::cpu::simd::top_p_histogram_at(level, ws.full.data(), V, io.anchor[i],
                                          io.f64_out + i * dllm::cpu::kTopPBuckets);
      return;
    case Stage::kMembers: {
      const int64_t bk = io.bucket[i];
      if (io.anchor[i] == kNegInf || bk < 0 || bk >= dllm::cpu::kTopPBuckets) return;
      dllm::cpu::shard_values(row, V, sp, ns, values_only, thr, ws);
      dllm::cpu::simd::top_p_members_at(level, ws.full.data(), V, io.anchor[i],
                                        static_cast<int32_t>(bk), (*io.members)[i]);
      return;
    }
    case Stage::kState: {
      if (filtered) dllm::cpu::shard_values(row, V, sp, ns, p, thr, ws);
      const dllm::cpu::RowState st = dllm::cpu::shard_pass1(row, V, sp, ns, p, b, l, filtered, ws);
      dllm::cpu::export_state(st, p.vocab_start, io.f64_out + i * dllm::cpu::kStateSize);
      return;
    }
    case Stage::kSums: {
      if (io.anchor[i] == kNegInf) return;
      if (filtered) dllm::cpu::shard_values(row, V, sp, ns, p, thr, ws);
      const dllm::cpu::ExactSums s =
          dllm::cpu::shard_pass2(row, V, sp, ns, p, filtered, ws, io.anchor[i]);
      io.i64_out[2 * i] = s.s;
      io.i64_out[2 * i + 1] = s.t;
      return;
    }
    case Stage::kTopPLevel:  // CUDA's; denoise_shard_check refuses it on CPU
      return;
  }
}

template <typename In, typename Torch>
void run_shard(const at::Tensor& logits, const at::Tensor& x, const at::Tensor& suppress,
               const dllm::DenoiseParams& p, const StageIO& io) {
  const int64_t L = x.size(1), V = logits.size(2), P = x.size(0) * L;
  const In* lp = reinterpret_cast<const In*>(logits.const_data_ptr<Torch>());
  const In* up = static_cast<const In*>(p.uncond);
  const int64_t* sp = suppress.defined() ? suppress.const_data_ptr<int64_t>() : nullptr;
  const int64_t ns = suppress.defined() ? suppress.numel() : 0;
  const auto xv = dllm::view2d(x.const_data_ptr<int64_t>(), x.stride(0), x.stride(1));
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
    dllm::cpu::Workspace ws;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / L, l = i - b * L;
      if (!dllm::denoised(p, xv(b, l), b, l)) continue;
      const int64_t src = p.shift_logits ? std::max<int64_t>(l - 1, 0) : l;
      const In* row = lp + b * logits.stride(0) + src * logits.stride(1);
      if (p.cfg) {
        ws.cfg.resize(V);
        dllm::cpu::cfg_combine(row, up + b * p.uncond_sb + src * p.uncond_sl, V, p.cfg_scale1,
                               ws.cfg.data());
        run_position(static_cast<const float*>(ws.cfg.data()), V, sp, ns, p, b, l, i, io, ws);
      } else {
        run_position(row, V, sp, ns, p, b, l, i, io, ws);
      }
    }
  });
}

at::Tensor denoise_shard_cpu(
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
    const std::optional<at::Tensor>& anchor,     // [B, L] f32: the global max (hist/members/sums)
    const std::optional<at::Tensor>& bucket,     // [B, L] int64: top-p crossing bucket (members)
    bool with_argmax,                            // state: also z's argmax (return_argmax)
    int64_t shift) {                             // top_p_level (CUDA's): refused here
  const char* op = "denoise_shard";
  dllm::DenoiseParams p = denoise_step_check(
      logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence, confidence_source,
      shift_logits, suppress_tokens, seed, offset, op, eligible, uncond_logits, cfg_scale);
  StageIO io{};
  io.stage = denoise_shard_check(x, vocab_start, stage, threshold, anchor, bucket, shift);
  p.vocab_start = vocab_start;
  // Pass 1 keeps z's argmax when p.argmax is set (accumulate_range_at); finalize writes it.
  int64_t argmax_unused = 0;
  if (with_argmax && io.stage == Stage::kState) p.argmax = &argmax_unused;
  const int64_t B = x.size(0), L = x.size(1);
  io.thr = threshold.has_value() ? threshold->const_data_ptr<float>() : nullptr;
  io.anchor = anchor.has_value() ? anchor->const_data_ptr<float>() : nullptr;
  io.bucket = bucket.has_value() ? bucket->const_data_ptr<int64_t>() : nullptr;
  const auto f32 = x.options().dtype(at::kFloat);
  at::Tensor out;
  std::vector<std::vector<float>> members;
  switch (io.stage) {
    case Stage::kTopK:
      io.width = top_k;
      out = at::full({B, L, top_k}, -std::numeric_limits<double>::infinity(), f32);
      io.f32_out = out.data_ptr<float>();
      break;
    case Stage::kRange:
      out = at::empty({B, L, 2}, f32);
      for (int64_t i = 0; i < B * L; ++i) {  // not denoised: nothing finite
        out.data_ptr<float>()[2 * i] = kNegInf;
        out.data_ptr<float>()[2 * i + 1] = std::numeric_limits<float>::infinity();
      }
      io.f32_out = out.data_ptr<float>();
      break;
    case Stage::kHist:
      out = at::zeros({B, L, dllm::cpu::kTopPBuckets}, x.options().dtype(at::kDouble));
      io.f64_out = out.data_ptr<double>();
      break;
    case Stage::kMembers:
      members.resize(B * L);
      io.members = &members;
      break;
    case Stage::kState: {
      out = at::empty({B, L, dllm::cpu::kStateSize}, x.options().dtype(at::kDouble));
      double* o = out.data_ptr<double>();
      for (int64_t i = 0; i < B * L; ++i)
        dllm::cpu::export_state(dllm::cpu::RowState{}, 0, o + i * dllm::cpu::kStateSize);
      io.f64_out = o;
      break;
    }
    case Stage::kSums:
      out = at::zeros({B, L, 2}, x.options().dtype(at::kLong));
      io.i64_out = out.data_ptr<int64_t>();
      break;
    case Stage::kTopPLevel:  // CUDA's; denoise_shard_check refuses it on CPU
      break;
  }
  at::Tensor suppress;
  if (suppress_tokens.has_value() && suppress_tokens->numel() > 0)
    suppress = std::get<0>(at::_unique2(*suppress_tokens, /*sorted=*/true));
  switch (logits.scalar_type()) {
    case at::kFloat:
      run_shard<float, float>(logits, x, suppress, p, io);
      break;
    case at::kBFloat16:
      run_shard<dllm::bf16_t, at::BFloat16>(logits, x, suppress, p, io);
      break;
    default:
      run_shard<dllm::f16_t, at::Half>(logits, x, suppress, p, io);
      break;
  }
  if (io.stage == Stage::kMembers) {  // ragged -> [B, L, K], NaN padded, in token order
    size_t K = 1;
    for (const auto& m : members) K = std::max(K, m.size());
    out = at::full({B, L, static_cast<int64_t>(K)}, kNaN, f32);
    float* o = out.data_ptr<float>();
    for (int64_t i = 0; i < B * L; ++i)
      std::copy(members[i].begin(), members[i].end(), o + i * static_cast<int64_t>(K));
  }
  return out;
}

// x0, conf (and argmax) from the merged state and the all-reduced sums: the unsharded op's
// finalize, on the same numbers.
std::tuple<at::Tensor, at::Tensor, at::Tensor> denoise_shard_finalize_cpu(
    const at::Tensor& state,  // [B, L, 8] f64, merged over the shards
    const at::Tensor& sums,   // [B, L, 2] int64, summed over the shards
    const at::Tensor& x,      // [B, L] int64
    int64_t mask_id, c10::string_view confidence, int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible) {  // [B, L] bool, or none
  dllm::DenoiseParams p =
      denoise_shard_finalize_check(state, sums, x, mask_id, confidence, seed, offset, eligible);
  const int64_t B = x.size(0), L = x.size(1);
  at::Tensor x0 = at::empty({B, L}, x.options());
  at::Tensor conf = at::empty({B, L}, x.options().dtype(at::kFloat));
  at::Tensor argmax = at::empty({B, L}, x.options());
  p.argmax = argmax.data_ptr<int64_t>();
  p.argmax_sb = L;
  const double* st = state.const_data_ptr<double>();
  const int64_t* sm = sums.const_data_ptr<int64_t>();
  const auto xv = dllm::view2d(x.const_data_ptr<int64_t>(), x.stride(0), x.stride(1));
  int64_t* x0p = x0.data_ptr<int64_t>();
  float* cp = conf.data_ptr<float>();
  for (int64_t i = 0; i < B * L; ++i) {
    const int64_t b = i / L, l = i - b * L;
    const int64_t xi = xv(b, l);
    if (!dllm::denoised(p, xi, b, l)) {
      x0p[i] = xi;
      cp[i] = kNegInf;
      p.argmax[i] = xi;
      continue;
    }
    dllm::cpu::RowState rs = dllm::cpu::import_state(st + i * dllm::cpu::kStateSize);
    if (dllm::cpu::needs_sums(p, rs)) dllm::cpu::set_sums(rs, {sm[2 * i], sm[2 * i + 1]});
    dllm::cpu::finalize(rs, p, b, l, xi, x0p + i, cp + i);
  }
  return {x0, conf, argmax};
}

// The top-p crossing of the summed histograms: need = top_p * total; from bucket start (with the
// mass above it, above), the first bucket where the mass reaches need (4096: none).
std::tuple<at::Tensor, at::Tensor, at::Tensor> top_p_shard_plan_cpu(
    const at::Tensor& hist,     // [N, 4096] f64
    double top_p,               //
    const at::Tensor& start,    // [N] int64
    const at::Tensor& above) {  // [N] f64
  top_p_shard_plan_check(hist, top_p, start, above);
  const int64_t N = hist.size(0);
  at::Tensor bucket = at::empty({N}, start.options());
  at::Tensor above_out = above.clone();
  at::Tensor need = at::empty({N}, above.options());
  for (int64_t i = 0; i < N; ++i) {
    const double* h = hist.const_data_ptr<double>() + i * dllm::cpu::kTopPBuckets;
    need.data_ptr<double>()[i] = dllm::cpu::top_p_need(h, top_p);
    const int64_t s = start.const_data_ptr<int64_t>()[i];
    bucket.data_ptr<int64_t>()[i] =
        s >= dllm::cpu::kTopPBuckets
            ? dllm::cpu::kTopPBuckets
            : dllm::cpu::top_p_crossing(h, need.data_ptr<double>()[i], static_cast<int32_t>(s),
                                        above_out.data_ptr<double>()[i]);
  }
  return {bucket, above_out, need};
}

// The walk of the crossing bucket's members (all shards', in token order; NaN = padding): tau
// (NaN: rounding left need unreached, go on with the next bucket) and the mass above.
std::tuple<at::Tensor, at::Tensor> top_p_shard_walk_cpu(
    const at::Tensor& members,  // [N, K] f32
    const at::Tensor& m,        // [N] f32, the global max
    const at::Tensor& need,     // [N] f64
    const at::Tensor& above) {  // [N] f64
  top_p_shard_walk_check(members, m, need, above);
  const int64_t N = members.size(0), K = members.size(1);
  at::Tensor tau = at::empty({N}, m.options());
  at::Tensor above_out = above.clone();
  std::vector<float> tmp, wts;
  for (int64_t i = 0; i < N; ++i) {
    const float* row = members.const_data_ptr<float>() + i * K;
    tmp.clear();
    for (int64_t k = 0; k < K; ++k)
      if (!std::isnan(row[k])) tmp.push_back(row[k]);
    float t = kNaN;
    if (!dllm::cpu::top_p_walk(tmp.data(), static_cast<int64_t>(tmp.size()),
                               m.const_data_ptr<float>()[i], need.const_data_ptr<double>()[i],
                               above_out.data_ptr<double>()[i], t, wts))
      t = kNaN;
    tau.data_ptr<float>()[i] = t;
  }
  return {tau, above_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) {
  m.impl("denoise_shard", &denoise_shard_cpu);
  m.impl("denoise_shard_finalize", &denoise_shard_finalize_cpu);
  m.impl("top_p_shard_plan", &top_p_shard_plan_cpu);
  m.impl("top_p_shard_walk", &top_p_shard_walk_cpu);
}

}  // namespace dllm_torch
