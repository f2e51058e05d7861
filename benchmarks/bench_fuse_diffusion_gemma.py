"""Benchmark one DiffusionGemma denoising step's sampling: transformers' own
DiffusionGemmaGenerationMixin._denoising_step (temperature schedule, softmax, multinomial,
argmax, Categorical entropy, sort / cumsum / scatter acceptance, randint renoise, the stopping
test's second entropy) vs the same step after dllm_kernels.integrations.transformers.
fuse_diffusion_gemma (the schedule, then sample + entropy + EB acceptance + renoise + argmax in
one denoise_and_select, the stopping test on the op's entropies). The model's forward is
replaced by fixed logits, so only the step is timed; paired medians, same process.

    python benchmarks/bench_fuse_diffusion_gemma.py [--shape B,L,V ...] [--dtype bfloat16|float32]
        [--entropy-bound G] [--device cpu|cuda] [--reps N] [--json PATH]

Needs transformers >= 5.11. The model object is built on the meta device (the step reads only
its config and embedding dtype).
"""

import argparse
import sys
from types import SimpleNamespace

import torch

from dllm_kernels import benchmark


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--shape", action="append", help="B,L,V (repeatable); default 1,256,262144 and 8,256,262144"
    )
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--entropy-bound", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    from transformers import (
        DiffusionGemmaConfig,
        DiffusionGemmaForBlockDiffusion,
        LogitsProcessorList,
    )
    from transformers.models.diffusion_gemma import generation_diffusion_gemma as dg

    from dllm_kernels.integrations.transformers import _FusedDenoisingStep

    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    print(benchmark.format_header(benchmark.header([device])))
    rows = []
    for shape in a.shape or ["1,256,262144", "8,256,262144"]:
        B, L, V = map(int, shape.split(","))
        text = dict(
            vocab_size=V,
            hidden_size=64,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=1,
            num_key_value_heads=1,
            head_dim=64,
            global_head_dim=64,
            layer_types=["full_attention"],
            num_experts=2,
            top_k_experts=1,
            moe_intermediate_size=32,
        )
        cfg = DiffusionGemmaConfig(
            text_config=text, vision_config=None, canvas_length=L, image_token_id=V - 1
        )
        with torch.device("meta"):
            model = DiffusionGemmaForBlockDiffusion(cfg).to(dtype)
        g = torch.Generator().manual_seed(0)
        logits = (torch.randn(B, L, V, generator=g) * 4).to(dtype).to(device)
        canvas = torch.randint(0, V, (B, L), generator=g).to(device)
        fwd = lambda **kw: SimpleNamespace(logits=logits)  # noqa: E731
        proc = LogitsProcessorList([dg.LinearTemperatureScheduleLogitsProcessor(0.4, 0.8, 48)])
        fused = _FusedDenoisingStep(model)

        def step(fn):
            def run(i):
                sampler = dg.EntropyBoundSampler(
                    dg.EntropyBoundSamplerConfig(entropy_bound=a.entropy_bound), L, V, 48
                )
                crit = dg.StableAndConfidentStoppingCriteria(1, 0.005)
                return fn(
                    decoder_forward=fwd,
                    current_canvas=canvas,
                    argmax_canvas=canvas,
                    input_ids=None,
                    decoder_position_ids=None,
                    self_conditioning_logits=None,
                    mask_mapping=None,
                    cache=None,
                    finished_denoising=torch.zeros(B, dtype=torch.bool, device=device),
                    cur_step=24,
                    sampler=sampler,
                    logits_processor=proc,
                    diffusion_stopping_criteria=crit,
                )

            return run

        theirs = step(lambda **kw: type(model)._denoising_step(model, **kw))
        ours = step(fused)
        t_ours, t_hf = benchmark.time_paired(
            [ours, theirs], device, warmup=1, reps=a.reps, max_seconds=120
        )
        gbs = logits.numel() * logits.element_size() / t_ours / 1e9
        row = {
            "shape": [B, L, V],
            "dtype": a.dtype,
            "entropy_bound": a.entropy_bound,
            "fused_s": t_ours,
            "transformers_s": t_hf,
            "speedup": t_hf / t_ours,
            "fused_GBps_logits": gbs,
        }
        rows.append(row)
        print(
            f"DiffusionGemma step {B}x{L}x{V} {a.dtype} EB={a.entropy_bound}: fused "
            f"{t_ours * 1e3:.1f} ms ({gbs:.2f} GB/s of logits), transformers "
            f"{t_hf * 1e3:.1f} ms, {t_hf / t_ours:.2f}x",
            flush=True,
        )
    if a.json:
        benchmark.write_json(a.json, {"header": benchmark.header([device]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
