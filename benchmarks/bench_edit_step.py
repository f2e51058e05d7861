"""Benchmark generate's token-editing step (dllm_kernels.runtime.edit_step: one denoise_step over
the block's masked and decoded positions, M2T / T2T on [B, L], commit) against a literal eager
sglang JointThreshold step (python_tests/test_generate_editing.joint_threshold_step: per request
argmax, softmax, gather, where, topk over [L, V]), same logits and block, paired medians.

    python benchmarks/bench_edit_step.py [--shape B,L,V ...] [--dtype bfloat16|float32]
        [--penalty LAMBDA] [--device cpu|cuda] [--reps N] [--json PATH]

The block starts half decoded (every other position), so M2T and T2T both have work.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python_tests"))

from test_generate_editing import joint_threshold_step  # noqa: E402

from dllm_kernels import benchmark  # noqa: E402
from dllm_kernels.runtime import _Backend, edit_step  # noqa: E402

SHAPES = ["1,32,126464", "8,32,126464"]


def inputs(B, L, V, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, L, V, generator=g) * 3).to(dtype).to(device)
    mask_id = V - 1
    block = torch.randint(0, V - 1, (B, L), generator=g)
    block[:, ::2] = mask_id
    return logits, block.to(device), mask_id


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", action="append", help="B,L,V (repeatable)")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--penalty", type=float, default=0.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    edit = {
        "threshold": 0.9,
        "edit_threshold": 0.5,
        "max_post_edit_steps": 16,
        "penalty_lambda": a.penalty,
    }
    ops_ = _Backend("kernels")
    rows = []
    print(benchmark.format_header(benchmark.header([device])))
    for shape in a.shape or SHAPES:
        B, L, V = map(int, shape.split(","))
        logits, block0, mask_id = inputs(B, L, V, dtype, device)
        editable = torch.ones(B, L, dtype=torch.bool, device=device)

        def ours(i):
            blk = block0.clone()
            edit_step(
                ops_,
                logits,
                None,
                blk,
                mask_id,
                editable,
                torch.zeros(B, dtype=torch.bool, device=device),
                torch.zeros(B, dtype=torch.int64, device=device),
                edit,
                {"temperature": 0.0, "confidence": "prob"},
                0,
                0,
            )
            return blk

        def peer(i):
            blk = block0.clone()
            lg = logits.clone() if a.penalty > 0 else logits  # sglang penalises in place
            for b in range(B):
                st = {"post_edit_steps": 0, "finished": False, "edits": 0}
                joint_threshold_step(
                    blk[b],
                    lg[b],
                    ~editable[b],
                    st,
                    mask_id,
                    edit["threshold"],
                    edit["edit_threshold"],
                    edit["max_post_edit_steps"],
                    edit["penalty_lambda"],
                )
            return blk

        same = torch.equal(ours(0), peer(0))
        t_ours, t_peer = benchmark.time_paired(
            [ours, peer], device, warmup=2, reps=a.reps, max_seconds=60
        )
        gbs = logits.numel() * logits.element_size() / t_ours / 1e9
        row = {
            "shape": [B, L, V],
            "dtype": a.dtype,
            "penalty": a.penalty,
            "ours_s": t_ours,
            "peer_s": t_peer,
            "speedup": t_peer / t_ours,
            "ours_GBps": gbs,
            "same_tokens": same,
        }
        rows.append(row)
        print(
            f"edit_step {B}x{L}x{V} {a.dtype} penalty={a.penalty}: ours {t_ours * 1e3:.2f} ms "
            f"({gbs:.1f} GB/s of logits), literal JointThreshold step {t_peer * 1e3:.2f} ms, "
            f"{t_peer / t_ours:.1f}x, same tokens: {same}",
            flush=True,
        )
    if a.json:
        benchmark.write_json(a.json, {"header": benchmark.header([device]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
