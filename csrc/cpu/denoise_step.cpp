// csrc/cpu/denoise_step.cpp — CPU implementation of dllm_kernels::denoise_step (checks in
// csrc/torch/checks.cpp, the kernel in dllm/cpu/denoise_step.h).
#include <ATen/Parallel.h>
#include <ATen/ops/_unique2.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "checks.h"
#include "cpu_ops.h"
#include "dllm/cpu/denoise_step.h"

namespace dllm_torch {
namespace {

template <typename In, typename Torch>
void run_denoise(const at::Tensor& logits, const at::Tensor& x, const at::Tensor& suppress,
                 const dllm::DenoiseParams& p, at::Tensor& x0, at::Tensor& conf) {
  const int64_t B = x.size(0), L = x.size(1), V = logits.size(2);
  const In* lp = reinterpret_cast<const In*>(logits.const_data_ptr<Torch>());
  const In* up = p.cfg ? static_cast<const In*>(p.uncond) : nullptr;  // [B, L, V] like logits
  const int64_t usb = p.cfg ? p.uncond_sb : 0, usl = p.cfg ? p.uncond_sl : 0;
  const int64_t* sp = suppress.defined() ? suppress.const_data_ptr<int64_t>() : nullptr;
  const int64_t ns = suppress.defined() ? suppress.numel() : 0;
  const auto xv = dllm::view2d(x.const_data_ptr<int64_t>(), x.stride(0), x.stride(1));
  const auto x0v = dllm::view2d(x0.data_ptr<int64_t>(), x0.stride(0), x0.stride(1));
  const auto cv = dllm::view2d(conf.data_ptr<float>(), conf.stride(0), conf.stride(1));
  const int64_t P = B * L;
  const int64_t n_slices = dllm::ceil_div(V, dllm::cpu::kSlice);
  if (P >= at::get_num_threads() || n_slices < 2 || dllm::cpu::is_filtered(p, V)) {
    // One position is ~V elements of work: split positions across threads.
    at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
      dllm::cpu::denoise_step_positions<In>(lp, logits.stride(0), logits.stride(1), xv, sp, ns, L,
                                            V, p, x0v, cv, begin, end, up, usb, usl);
    });
    return;
  }
  std::vector<float> guided;  // CFG: the position's guided logits [V], combined in parallel
  // Fewer positions than threads: split each position's vocabulary, merge in slice order.
  std::vector<dllm::cpu::RowState> states;
  std::vector<dllm::cpu::ExactSums> sums;
  for (int64_t i = 0; i < P; ++i) {
    const int64_t b = i / L, l = i - b * L;
    const int64_t xi = xv(b, l);
    if (!dllm::denoised(p, xi, b, l)) {
      x0v(b, l) = xi;
      cv(b, l) = -std::numeric_limits<float>::infinity();
      dllm::cpu::write_argmax(p, b, l, xi);
      continue;
    }
    states.assign(n_slices, dllm::cpu::RowState{});
    if (p.cfg) {
      // The guided row, slice by slice in parallel, then the float kernel on it (as one row at
      // l = 0 of a [1, 1, V] view: the slices' (b, l) for the Gumbel noise are passed apart).
      guided.resize(V);
      const int64_t src = p.shift_logits ? std::max<int64_t>(l - 1, 0) : l;
      const In* c_row = lp + b * logits.stride(0) + src * logits.stride(1);
      const In* u_row = up + b * usb + src * usl;
      at::parallel_for(0, n_slices, 1, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const int64_t v0 = j * dllm::cpu::kSlice, n = std::min(V, v0 + dllm::cpu::kSlice) - v0;
          dllm::cpu::cfg_combine(c_row + v0, u_row + v0, n, p.cfg_scale1, guided.data() + v0);
        }
      });
    }
    // Pass 1 (choice, max) and, with the merged max, pass 2 (exact sums), slices in parallel.
    at::parallel_for(0, n_slices, 1, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        if (p.cfg)
          dllm::cpu::denoise_slice<float>(guided.data(), 0, 0, b, l, V, sp, ns, p, j, states[j],
                                          /*row_given=*/true);
        else
          dllm::cpu::denoise_slice<In>(lp, logits.stride(0), logits.stride(1), b, l, V, sp, ns, p,
                                       j, states[j]);
      }
    });
    for (int64_t j = 1; j < n_slices; ++j) dllm::cpu::merge_state(states[0], states[j]);
    if (dllm::cpu::needs_sums(p, states[0])) {
      sums.assign(n_slices, dllm::cpu::ExactSums{});
      const float M = states[0].m;
      at::parallel_for(0, n_slices, 1, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          if (p.cfg)
            dllm::cpu::denoise_slice_sums<float>(guided.data(), 0, 0, b, l, V, sp, ns, p, j, M,
                                                 sums[j], /*row_given=*/true);
          else
            dllm::cpu::denoise_slice_sums<In>(lp, logits.stride(0), logits.stride(1), b, l, V, sp,
                                              ns, p, j, M, sums[j]);
        }
      });
      for (int64_t j = 1; j < n_slices; ++j) {
        sums[0].s += sums[j].s;
        sums[0].t += sums[j].t;
      }
      dllm::cpu::set_sums(states[0], sums[0]);
    }
    dllm::cpu::finalize(states[0], p, b, l, xi, &x0v(b, l), &cv(b, l));
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> denoise_step_run(
    const at::Tensor& logits,  // [B, L, V] f32|bf16|f16, V contiguous
    const at::Tensor& x,       // [B, L] int64
    const dllm::DenoiseParams& p,
    const std::optional<at::Tensor>& suppress_tokens) {                   // [n] int64 ids
  at::Tensor x0 = at::empty(x.sizes(), x.options());                      // [B, L]
  at::Tensor conf = at::empty(x.sizes(), x.options().dtype(at::kFloat));  // [B, L]
  // Sorted, unique ids (the kernel walks them in order; ops.py sorts a list, a tensor is as given).
  at::Tensor suppress;
  if (suppress_tokens.has_value() && suppress_tokens->numel() > 0)
    suppress = std::get<0>(at::_unique2(*suppress_tokens, /*sorted=*/true));
  switch (logits.scalar_type()) {
    case at::kFloat:
      run_denoise<float, float>(logits, x, suppress, p, x0, conf);
      break;
    case at::kBFloat16:
      run_denoise<dllm::bf16_t, at::BFloat16>(logits, x, suppress, p, x0, conf);
      break;
    default:
      run_denoise<dllm::f16_t, at::Half>(logits, x, suppress, p, x0, conf);
      break;
  }
  return {x0, conf};
}

namespace {

std::tuple<at::Tensor, at::Tensor> denoise_step_cpu(
    const at::Tensor& logits,  // [B, L, V] f32|bf16|f16, V contiguous
    const at::Tensor& x,       // [B, L] int64
    int64_t mask_id, double temperature, int64_t top_k, double top_p, c10::string_view filter_order,
    c10::string_view confidence, c10::string_view confidence_source, bool shift_logits,
    const std::optional<at::Tensor>& suppress_tokens,  // [n] int64 ids
    int64_t seed, int64_t offset,
    const std::optional<at::Tensor>& eligible,       // [B, L] bool, or none: x == mask_id
    const std::optional<at::Tensor>& uncond_logits,  // [B, L, V] like logits (CFG), or none
    double cfg_scale,
    const std::optional<at::Tensor>& argmax) {  // [B, L] int64 written (return_argmax)
  const dllm::DenoiseParams p =
      denoise_step_check(logits, x, mask_id, temperature, top_k, top_p, filter_order, confidence,
                         confidence_source, shift_logits, suppress_tokens, seed, offset,
                         "denoise_step", eligible, uncond_logits, cfg_scale, argmax);
  return denoise_step_run(logits, x, p, suppress_tokens);
}

}  // namespace

TORCH_LIBRARY_IMPL(dllm_kernels, CPU, m) { m.impl("denoise_step", &denoise_step_cpu); }

}  // namespace dllm_torch
