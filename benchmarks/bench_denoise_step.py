"""Benchmark denoise_step (and the whole step, denoise_and_select) against, in the same run:
  - dllm_kernels.reference.denoise_step (the spec) and torch.compile of it,
  - a literal LLaDA-style eager step: float64 Gumbel noise over the whole sequence, a full
    softmax, and a per-row top-k loop, then the commit (what public dLLM code does today).

    python benchmarks/bench_denoise_step.py [--device cpu|cuda] [--full] [--json PATH]
                                            [--no-compile] [--reps N] [--shapes BxLxV,...]
                                            [--dtypes bf16,fp32] [--eager-only] [--threads N]

Default cases are the issue's (B, L, V) shapes on CUDA and the 1x32x126464 block on CPU; --full
runs every shape x dtype x (prob/margin/neg_entropy at T=0, prob at T=1, T=1 with top_p=0.9).
--shapes / --dtypes pick (and order) the shapes and dtypes; --json is rewritten after each case.
--issue16 runs only the paired issue-16 tables: the CFG step vs LLaDA's eager CFG step
(u + (s+1)(c-u), softmax, argmax, gather) on [1, 32, 126464], and the DiffusionGemma step (one
denoise_and_select: eligible, T, neg_entropy, EB, commit, renoise) vs transformers' eager step
(T, softmax, multinomial, argmax, the peer's EntropyBoundSampler.accept_canvas / renoise_canvas).
GB/s counts one read of the masked positions' logits plus the [B, L] reads/writes. Calls rotate
over up to 8 input sets so that the logits come from memory, not the last-level cache.

A second table times the T = 0 step against the plainest eager equivalent, softmax + max (argmax)
+ gather, on a fully masked [1, 32, 126464] block (fp32 and bf16), each call of ours paired with a
call of the peer (dllm_kernels.benchmark.time_paired) over several rounds: the ratio per round and
their median.
"""

from __future__ import annotations

import argparse
import sys

import torch

import dllm_kernels as dk
from dllm_kernels import benchmark as bm
from dllm_kernels import reference, registry

SHAPES = [
    (1, 32, 126_464),
    (8, 32, 126_464),
    (64, 32, 126_464),
    (1, 256, 126_464),
    (32, 32, 151_936),
]
VARIANTS = [
    {"confidence": "prob"},
    {"confidence": "margin"},
    {"confidence": "neg_entropy"},
    {"confidence": "prob", "temperature": 1.0},
    {"confidence": "prob", "temperature": 1.0, "top_p": 0.9},
]


def llada_style_step(logits, x, mask_id, k, temperature):
    """One LLaDA-style denoising step in eager PyTorch, as public implementations write it."""
    logits64 = logits.to(torch.float64)
    if temperature > 0:
        gumbel = (-torch.log(torch.rand_like(logits64))) ** temperature
        noisy = logits64.exp() / gumbel
    else:
        noisy = logits64
    x0 = torch.argmax(noisy, dim=-1)
    p = torch.softmax(logits.float(), dim=-1)
    x0_p = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
    mask = x == mask_id
    x0 = torch.where(mask, x0, x)
    confidence = torch.where(mask, x0_p, torch.tensor(float("-inf"), device=x.device))
    transfer = torch.zeros_like(x0, dtype=torch.bool)
    for j in range(confidence.shape[0]):
        _, idx = torch.topk(confidence[j], k=k)
        transfer[j, idx] = True
    x[transfer] = x0[transfer]
    return x


def eager_softmax_max_gather(logits, x, mask_id):
    """The eager T = 0 step: x0 = argmax, conf = softmax(logits)[x0], masked positions only."""
    x0 = torch.argmax(logits, dim=-1)
    p = torch.softmax(logits.float(), dim=-1)
    conf = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
    masked = x == mask_id
    return torch.where(masked, x0, x), torch.where(
        masked, conf, torch.tensor(float("-inf"), device=x.device)
    )


def run_eager_pairs(device: torch.device, reps: int, rounds: int = 5):
    """Ours vs eager softmax + max + gather at T = 0 on a fully masked 1x32x126464 block, paired."""
    B, L, V = SHAPES[0]
    mask_id = registry.LLADA_MASK_ID
    gen = torch.Generator().manual_seed(1)
    print(
        f"\nT = 0 vs eager softmax + max + gather, {B}x{L}x{V}, every position masked, paired, "
        f"{rounds} rounds"
    )
    print(f"{'case':<24} {'ours':>10} {'eager':>10} {'eager/ours (median, per round)':>40}")
    rows = []
    for dtype in ("fp32", "bf16"):
        dt = registry.DTYPES[dtype]
        size = B * L * V * torch.tensor([], dtype=dt).element_size()
        budget = (4 << 30) if device.type == "cuda" else (1 << 30)
        n_sets = max(1, min(8, budget // size, -(-2 * bm.cache_bytes(device) // size)))
        sets = [(torch.randn(B, L, V, generator=gen) * 3).to(dt).to(device) for _ in range(n_sets)]
        x = torch.full((B, L), mask_id, dtype=torch.int64, device=device)
        got, want = (
            dk.denoise_step(sets[0], x, mask_id),
            eager_softmax_max_gather(sets[0], x, mask_id),
        )
        assert torch.equal(got[0], want[0]), "x0 differs from the eager argmax"
        torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-6)
        ours = lambda i: dk.denoise_step(sets[i % n_sets], x, mask_id)  # noqa: E731
        peer = lambda i: eager_softmax_max_gather(sets[i % n_sets], x, mask_id)  # noqa: E731
        pairs = [
            bm.time_paired([ours, peer], device, reps=reps, max_seconds=3) for _ in range(rounds)
        ]
        ratios = sorted(p / o for o, p in pairs)
        t_ours = sorted(o for o, _ in pairs)[len(pairs) // 2]
        t_peer = sorted(p for _, p in pairs)[len(pairs) // 2]
        ratio = ratios[len(ratios) // 2]
        label = f"{B}x{L}x{V} {dtype} T=0"
        rows.append(
            {
                "case": label,
                "dtype": dtype,
                "ours_s": t_ours,
                "eager_s": t_peer,
                "ratio_median": ratio,
                "rounds": [{"ours_s": o, "eager_s": p} for o, p in pairs],
            }
        )
        per = " ".join(f"{p / o:.2f}" for o, p in pairs)
        print(
            f"{label:<24} {bm.format_time(t_ours):>10} {bm.format_time(t_peer):>10} "
            f"{ratio:>9.2f}x  ({per})"
        )
    return rows


# ---- issue 16: CFG (LLaDA) and the DiffusionGemma step, each vs the peer's eager step ------------


def llada_cfg_step(c, u, x, mask_id, cfg_scale):
    """LLaDA generate.py's CFG step at T = 0, in eager PyTorch (in the logits' dtype, as LLaDA
    runs it): guided = u + (s + 1)(c - u), x0 = argmax, p = softmax, x0_p = p[x0], masked only."""
    logits = u + (cfg_scale + 1) * (c - u)
    x0 = torch.argmax(logits, dim=-1)
    p = torch.softmax(logits, dim=-1)
    x0_p = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
    masked = x == mask_id
    return torch.where(masked, x0, x), torch.where(masked, x0_p.float(), float("-inf"))


def diffusion_gemma_step(logits, canvas, temperature, sampler):
    """transformers' DiffusionGemma sampling step (_denoising_step 1.c.ii-iii, 5.25) in eager
    PyTorch: processed = logits / T; probs = softmax(processed, float32); multinomial sample;
    argmax; then the peer's own EntropyBoundSampler.accept_canvas and renoise_canvas."""
    processed = logits / temperature
    probs = torch.softmax(processed, dim=-1, dtype=torch.float32)
    B, L, V = logits.shape
    denoiser = torch.multinomial(probs.view(-1, V), num_samples=1).view(B, L)
    argmax = torch.argmax(processed, dim=-1)
    accepted = sampler.accept_canvas(canvas, denoiser, processed, 0)
    return sampler.renoise_canvas(accepted, 0), argmax


def _paired(label, ours, peer, device, reps, rounds, rows, extra=None):
    pairs = [bm.time_paired([ours, peer], device, reps=reps, max_seconds=3) for _ in range(rounds)]
    ratios = sorted(p / o for o, p in pairs)
    t_ours = sorted(o for o, _ in pairs)[len(pairs) // 2]
    t_peer = sorted(p for _, p in pairs)[len(pairs) // 2]
    ratio = ratios[len(ratios) // 2]
    rows.append(
        {
            "case": label,
            "ours_s": t_ours,
            "peer_s": t_peer,
            "ratio_median": ratio,
            "rounds": [{"ours_s": o, "peer_s": p} for o, p in pairs],
            **(extra or {}),
        }
    )
    per = " ".join(f"{p / o:.2f}" for o, p in pairs)
    print(f"{label:<52} {bm._fmt_t(t_ours):>10} {bm._fmt_t(t_peer):>10} {ratio:>8.2f}x  ({per})")


def run_issue16_pairs(device: torch.device, reps: int, rounds: int = 5, dg_shape=(8, 256, 262_144)):
    """Paired tables: CFG step vs LLaDA's eager CFG step on [1, 32, 126464]; the DiffusionGemma
    step (eligible + T + neg_entropy + EB + commit + renoise, one denoise_and_select call) vs
    transformers' eager step (the peer's sampler; skipped without transformers)."""
    rows = []
    gen = torch.Generator().manual_seed(2)
    print(f"\nissue 16 steps vs the peers' eager steps, paired, {rounds} rounds")
    print(f"{'case':<52} {'ours':>10} {'peer':>10} {'peer/ours':>9}  (per round)")
    B, L, V = 1, 32, 126_464
    mask_id = registry.LLADA_MASK_ID
    for dtype in ("bf16", "fp32"):
        dt = registry._DTYPES[dtype]
        c = (torch.randn(B, L, V, generator=gen) * 3).to(dt).to(device)
        u = (torch.randn(B, L, V, generator=gen) * 3).to(dt).to(device)
        x = torch.full((B, L), mask_id, dtype=torch.int64, device=device)
        got = dk.denoise_step(c, x, mask_id, uncond_logits=u, cfg_scale=1.5)
        want = llada_cfg_step(c.float(), u.float(), x, mask_id, 1.5)
        assert torch.equal(got[0], want[0]), "CFG x0 differs from LLaDA's (float32) eager step"
        _paired(
            f"CFG s=1.5 {B}x{L}x{V} {dtype} T=0 vs LLaDA eager",
            lambda i: dk.denoise_step(c, x, mask_id, uncond_logits=u, cfg_scale=1.5),
            lambda i: llada_cfg_step(c, u, x, mask_id, 1.5),
            device,
            reps,
            rounds,
            rows,
            {"dtype": dtype, "shape": [B, L, V]},
        )
    try:
        from transformers.models.diffusion_gemma import generation_diffusion_gemma as dg
    except ImportError as e:
        print(f"DiffusionGemma step: skipped (transformers: {e})")
        return rows
    B, L, V = dg_shape
    gamma, temperature = 2.0, 0.8
    sampler = dg.EntropyBoundSampler(
        dg.EntropyBoundSamplerConfig(entropy_bound=gamma),
        canvas_length=L,
        vocab_size=V,
        max_denoising_steps=16,
    )
    logits = (torch.randn(B, L, V, generator=gen) * 3).to(torch.bfloat16).to(device)
    canvas = torch.randint(0, V, (B, L), generator=gen).to(device)
    eligible = torch.ones(B, L, dtype=torch.bool, device=device)
    work = canvas.clone()

    def ours(i):
        return dk.denoise_and_select(
            logits,
            work.copy_(canvas),
            None,
            eligible=eligible,
            temperature=temperature,
            confidence="neg_entropy",
            confidence_source="sampling",
            entropy_bound=gamma,
            commit=True,
            renoise=True,
            seed=i,
        )

    _, _, transfer = ours(0)
    diffusion_gemma_step(logits, canvas, temperature, sampler)
    n_ours, n_peer = int(transfer.sum()), int(sampler.accepted_token_mask.sum())
    _paired(
        f"DiffusionGemma step {B}x{L}x{V} bf16 EB={gamma} vs transformers",
        ours,
        lambda i: diffusion_gemma_step(logits, canvas, temperature, sampler),
        device,
        reps,
        rounds,
        rows,
        {"dtype": "bf16", "shape": [B, L, V], "accepted_ours": n_ours, "accepted_peer": n_peer},
    )
    print(
        f"  accepted positions: ours {n_ours}, transformers {n_peer} (same logits; the peer's "
        "entropies are float32, ours float64 -> float32)"
    )
    return rows


def cases(device: torch.device, full: bool, shapes=None, dtypes=None):
    """dtype x (B, L, V) x variant, in the order given (a priority order)."""
    shapes = shapes or (SHAPES if device.type == "cuda" else SHAPES[:1])
    dtypes = dtypes or ["bf16", "fp32"]
    out = []
    for dtype in dtypes:
        for B, L, V in shapes:
            variants = (
                VARIANTS if (full or (B, L, V) == SHAPES[0]) else VARIANTS[:1] + VARIANTS[3:4]
            )
            for v in variants:
                out.append({"B": B, "L": L, "V": V, "dtype": dtype, **v})
    return out


def run(
    device: torch.device,
    full: bool,
    compile_ref: bool,
    reps: int,
    shapes=None,
    dtypes=None,
    json_path: str | None = None,
    eager_pairs: bool = True,
    only_eager: bool = False,
):
    """Every case in turn; with json_path, the results so far are rewritten after each case (a run
    cut short by a time limit keeps the cases it finished). Then the paired table against eager
    softmax + max + gather (only it with only_eager)."""
    peak = bm.peak_bandwidth(device)
    head = bm.header([device])
    head["peaks"] = {str(device): {"bandwidth": peak}}
    print(bm.format_header(head))
    cols = (
        f"{'case':<44} {'kernel':>10} {'GB/s':>8} {'%peak':>6} {'ref':>10} {'compiled':>10} "
        f"{'vs ref':>7} {'vs comp':>8} {'step':>10} {'LLaDA step':>11} {'vs LLaDA':>9}"
    )
    print(cols)
    rows = []
    gen = torch.Generator().manual_seed(0)
    for params in [] if only_eager else cases(device, full, shapes, dtypes):
        # Rotate input sets past the last-level cache (as dllm_kernels.benchmark does), within
        # a memory budget: the logits are read from memory, as in a real step.
        inputs = registry.DENOISE_STEP.make_inputs(params, device, gen)
        size = inputs["logits"].numel() * inputs["logits"].element_size()
        budget = (4 << 30) if device.type == "cuda" else (1 << 30)
        n_sets = max(1, min(8, budget // size, -(-2 * bm.cache_bytes(device) // size)))
        sets = [inputs] + [
            registry.DENOISE_STEP.make_inputs(params, device, gen) for _ in range(n_sets - 1)
        ]
        label = f"{params['B']}x{params['L']}x{params['V']} {params['dtype']} " + " ".join(
            f"{k}={v}" for k, v in params.items() if k not in ("B", "L", "V", "dtype")
        )
        nbytes = registry.DENOISE_STEP.bytes_moved(inputs)
        t_kernel = bm.time_fn(lambda i: dk.denoise_step(**sets[i % n_sets]), device, reps=reps)
        slow = params["B"] * params["L"] >= 1024 and device.type == "cpu"
        t_ref = bm.time_fn(
            lambda i: reference.denoise_step(**sets[i % n_sets]),
            device,
            warmup=1,
            reps=3 if slow else reps,
            max_seconds=5,
        )
        t_comp = None
        # torch.compile of the reference: compiling per shape is slow, so only the prob cases
        # (T = 0 and 1) are compiled; the others report "-".
        if compile_ref and params.get("confidence") == "prob" and not params.get("top_p"):
            try:
                torch._dynamo.reset()
                comp = torch.compile(reference.denoise_step)
                t_comp = bm.time_fn(
                    lambda i: comp(**sets[i % n_sets]), device, warmup=2, reps=reps, max_seconds=5
                )
            except Exception as e:  # the table says it is missing, and why
                print(f"  torch.compile failed: {type(e).__name__}: {str(e)[:100]}")
        # The whole step: ours (denoise + top-k select + commit in one call) vs LLaDA-style.
        k, temp = 4, float(params.get("temperature", 0.0))
        x_work = inputs["x"].clone()

        def step(i):
            s_ = sets[i % n_sets]
            kw_ = {k_: v for k_, v in s_.items() if k_ != "x"}
            return dk.denoise_and_select(
                x=x_work.copy_(s_["x"]), num_transfer=k, commit=True, **kw_
            )

        t_step = bm.time_fn(step, device, reps=reps)
        t_llada = bm.time_fn(
            lambda i: llada_style_step(
                sets[i % n_sets]["logits"], x_work.copy_(inputs["x"]), inputs["mask_id"], k, temp
            ),
            device,
            warmup=1,
            reps=3 if slow else reps,
            max_seconds=5,
        )
        gbps = nbytes / t_kernel / 1e9
        row = {
            "case": label,
            **params,
            "kernel_s": t_kernel,
            "reference_s": t_ref,
            "compiled_s": t_comp,
            "step_s": t_step,
            "llada_step_s": t_llada,
            "bytes": nbytes,
            "gbps": gbps,
            "pct_peak": 100 * nbytes / t_kernel / peak,
            "speedup_vs_ref": t_ref / t_kernel,
            "speedup_vs_compiled": t_comp / t_kernel if t_comp else None,
            "speedup_step_vs_llada": t_llada / t_step,
        }
        rows.append(row)
        f = bm.format_time
        comp_x = f"{row['speedup_vs_compiled']:.1f}x" if t_comp else "-"
        print(
            f"{label:<44} {f(t_kernel):>10} {gbps:>8.1f} {row['pct_peak']:>6.1f} {f(t_ref):>10} "
            f"{f(t_comp):>10} "
            f"{row['speedup_vs_ref']:>6.1f}x {comp_x:>8} {f(t_step):>10} {f(t_llada):>11} "
            f"{row['speedup_step_vs_llada']:>8.1f}x"
        )
        if json_path:
            bm.write_json(json_path, {"header": head, "rows": rows})
    eager = run_eager_pairs(device, reps) if eager_pairs else []
    out = {"header": head, "rows": rows, "eager_softmax_max_gather": eager}
    if json_path:
        bm.write_json(json_path, out)
    return out


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """'1x32x126464,64x32x126464' -> [(1, 32, 126464), (64, 32, 126464)]."""
    try:
        return [tuple(int(n) for n in item.split("x")) for item in text.split(",") if item]
    except ValueError:
        raise argparse.ArgumentTypeError(f"shapes are BxLxV[,BxLxV...], got {text!r}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument(
        "--shapes",
        type=parse_shapes,
        help="BxLxV[,BxLxV...] in this order (default: the device's shapes above)",
    )
    ap.add_argument(
        "--dtypes", type=lambda t: t.split(","), help="bf16,fp32 (default), in this order"
    )
    ap.add_argument(
        "--eager-only",
        action="store_true",
        help="only the paired T = 0 table vs eager softmax + max + gather",
    )
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (CPU; default: torch's)")
    ap.add_argument(
        "--issue16",
        action="store_true",
        help="only the paired issue-16 tables: CFG vs LLaDA's eager CFG step, the "
        "DiffusionGemma step vs transformers' (--dg-shape)",
    )
    ap.add_argument(
        "--dg-shape",
        type=parse_shapes,
        default=[(8, 256, 262_144)],
        help="BxLxV of the DiffusionGemma step (default 8x256x262144)",
    )
    args = ap.parse_args(argv)
    if args.dtypes and not set(args.dtypes) <= set(registry.DTYPES):
        ap.error(f"--dtypes: each of {sorted(registry.DTYPES)}")
    if args.shapes and any(len(s) != 3 for s in args.shapes):
        ap.error("--shapes: BxLxV")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.issue16:
        head = bm.header([torch.device(args.device)])
        print(bm.format_header(head))
        rows = run_issue16_pairs(torch.device(args.device), args.reps, dg_shape=args.dg_shape[0])
        if args.json:
            bm.write_json(args.json, {"header": head, "issue16_pairs": rows})
            print(f"wrote {args.json}")
        return 0
    run(
        torch.device(args.device),
        args.full,
        not args.no_compile,
        args.reps,
        args.shapes,
        args.dtypes,
        json_path=args.json,
        only_eager=args.eager_only,
    )
    if args.json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
