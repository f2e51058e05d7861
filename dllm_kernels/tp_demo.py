"""Tensor-parallel generation with the shipped tiny-tasks model, one process per rank:

    torchrun --nproc-per-node 2 -m dllm_kernels.tp_demo [--cache dual] [--threshold 0.9]

Each rank loads the model, keeps its shard (dllm_kernels.models.tensor_parallel: its heads, its
MLP units, its vocabulary range of the LM head) and calls dllm_kernels.generate with
tp_group=...; rank 0 prints the answers, and checks that every rank decoded the same tokens as
the unsharded model. CPU / gloo by default; --device cuda uses NCCL, one GPU per rank
(LOCAL_RANK).
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch
import torch.distributed as dist

from . import tasks
from .models import load_pretrained, tensor_parallel
from .runtime import CACHE_MODES, generate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dllm_kernels.tp_demo", description=__doc__)
    ap.add_argument("--cache", default="dual", choices=CACHE_MODES)
    ap.add_argument("--threshold", type=float, default=0.9, help="parallel decoding threshold")
    ap.add_argument("--problems", type=int, default=4, help="per task (addition, sort)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args(argv)
    if "RANK" not in os.environ:
        ap.error("run it under torchrun, e.g. torchrun --nproc-per-node 2 -m dllm_kernels.tp_demo")
    if args.device == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)
        dist.init_process_group("gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        model, tok = load_pretrained("tiny-tasks", device=device)
        shard = tensor_parallel(model)  # the default group: every rank
        problems = [
            p
            for name in ("addition", "sort")
            for p in tasks.get(name).heldout(args.problems, seed=0)
        ]
        random.Random(0).shuffle(problems)
        prompts = [tok.encode(p.prompt) for p in problems]
        kw = dict(gen_length=8, threshold=args.threshold, cache=args.cache, pad_id=tok.pad_id)
        t0 = time.perf_counter()
        out = generate(shard, prompts, **kw, tp_group=shard.tp_group)
        dt = time.perf_counter() - t0
        if rank == 0:
            ref = generate(model, prompts, **kw).tokens  # the unsharded model, for the check
            same = torch.equal(out.tokens, ref)
            print(
                f"tp={world} ({dist.get_backend()}), rank 0 holds vocabulary "
                f"[{shard.vocab_start}, {shard.vocab_start + shard.vocab_size_local}) of "
                f"{shard.vocab_size} and {shard.config.num_kv_heads} of "
                f"{model.config.num_kv_heads} kv heads; cache={args.cache}, "
                f"threshold={args.threshold}: {out.nfe} forwards, {dt:.2f} s"
            )
            right = 0
            for p, row in zip(problems, out.tokens):
                got = tok.decode(row[-8:].tolist())
                right += got == p.answer
                verdict = "ok" if got == p.answer else "want " + p.answer
                print(f"  {p.prompt:<16} {got:<9} {verdict}")
            print(f"{right}/{len(problems)} right; same tokens as the unsharded model: {same}")
        gathered = [torch.empty_like(out.tokens) for _ in range(world)]
        dist.all_gather(gathered, out.tokens)
        if rank == 0:
            agree = all(torch.equal(g, out.tokens) for g in gathered)
            print(f"every rank returned the same tokens: {agree}")
            if not (same and agree):
                return 1
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
