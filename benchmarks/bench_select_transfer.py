"""Benchmark select_transfer: the native kernel vs dllm_kernels.reference.select_transfer and
torch.compile of it, on the default shapes in dllm_kernels.registry (same inputs, same process, same
timer).

    python benchmarks/bench_select_transfer.py [--device cpu|cuda] [--json PATH] [--no-compile]
    [--reps N]
    python benchmarks/bench_select_transfer.py --eb [--device cpu|cuda] [--reps N]

--eb instead pairs select_transfer(conf, entropy_bound=2) with the acceptance of transformers'
DiffusionGemma EntropyBoundSampler.accept_canvas given the entropies (sort, cumsum, compare,
scatter, where; written out here, since the peer's method also recomputes the entropies from
[B, L, V] logits) on [8, 256] (DiffusionGemma's batch x canvas), [1, 32] and [64, 4096].
"""

import sys

import torch

from dllm_kernels.__main__ import main


def eager_accept(entropy, gamma, current, denoiser):
    """accept_canvas after its entropy: sort ascending, cumsum, cumsum - sorted <= gamma,
    scatter back, where(accepted, denoiser, current)."""
    sorted_h, idx = torch.sort(entropy, dim=-1)
    cum = torch.cumsum(sorted_h, dim=-1)
    mask = torch.scatter(
        torch.zeros_like(sorted_h, dtype=torch.bool), -1, idx, cum - sorted_h <= gamma
    )
    return torch.where(mask, denoiser, current), mask


def run_eb(device, reps, rounds=5):
    import dllm_kernels as dk
    from dllm_kernels import benchmark as bm

    print(bm.format_header(bm.header([device])))
    print(f"{'case':<34} {'ours':>10} {'eager':>10} {'eager/ours':>10}  (per round)")
    gen = torch.Generator().manual_seed(0)
    for B, L in ((1, 32), (8, 256), (64, 4096)):
        h = (torch.rand(B, L, generator=gen) * 5).to(device)
        cur = torch.zeros(B, L, dtype=torch.long, device=device)
        den = torch.ones(B, L, dtype=torch.long, device=device)
        t = dk.select_transfer(-h, entropy_bound=2.0)
        assert torch.equal(t, eager_accept(h, 2.0, cur, den)[1])

        def ours(i):
            t = dk.select_transfer(-h, entropy_bound=2.0)
            return torch.where(t, den, cur)

        pairs = [
            bm.time_paired(
                [ours, lambda i: eager_accept(h, 2.0, cur, den)], device, reps=reps, max_seconds=2
            )
            for _ in range(rounds)
        ]
        ratios = sorted(p / o for o, p in pairs)
        o = sorted(o for o, _ in pairs)[rounds // 2]
        p = sorted(p for _, p in pairs)[rounds // 2]
        per = " ".join(f"{r:.2f}" for r in (p_ / o_ for o_, p_ in pairs))
        print(
            f"{f'EB=2 B={B} L={L}':<34} {bm._fmt_t(o):>10} {bm._fmt_t(p):>10} "
            f"{ratios[rounds // 2]:>9.2f}x  ({per})"
        )
    return 0


if __name__ == "__main__":
    if "--eb" in sys.argv:
        args = [a for a in sys.argv[1:] if a != "--eb"]
        dev = args[args.index("--device") + 1] if "--device" in args else "cpu"
        reps = int(args[args.index("--reps") + 1]) if "--reps" in args else 50
        sys.exit(run_eb(torch.device(dev), reps))
    sys.exit(main(["bench", "--op", "select_transfer", *sys.argv[1:]]))
