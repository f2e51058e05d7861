"""python -m dllm_kernels [verify|bench|generate|quality|info] — verify every op against its
reference, time it, run whole generations, and measure decoding quality vs speed.

    python -m dllm_kernels                 # the main job: verify, then bench (one case per op)
    python -m dllm_kernels --full          # ... every case of every op
    python -m dllm_kernels verify          # exit 1 on any mismatch (or if the native ops are missing)
    python -m dllm_kernels bench --json results.json [--e2e]
    python -m dllm_kernels generate --gen-length 256 --block-length 32 --steps 256 --cache dual
    python -m dllm_kernels quality --out DIR   # accuracy vs tokens per forward on tiny-tasks
    python -m dllm_kernels info            # backend_info() as JSON
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from . import backend_info, registry
from .benchmark import run_bench, to_json
from .verify import available_devices, format_header, format_row, run_verify


def _select(args) -> tuple[list, list[torch.device]]:
    specs = [registry.get(n) for n in args.op] if args.op else list(registry.SPECS)
    devices = available_devices()
    if args.device:
        devices = [d for d in devices if d.type == args.device]
        if not devices:
            sys.exit(f"dllm_kernels: device {args.device!r} is not available here")
    return specs, devices


def cmd_verify(args) -> int:
    specs, devices = _select(args)
    print(format_header(), flush=True)
    rows = run_verify(specs, devices, seed=args.seed, full=getattr(args, "full", True),
                      on_row=lambda r: print(format_row(r), flush=True))
    bad = [r for r in rows if not r.ok]
    print(f"verify: {len(rows) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


def cmd_bench(args) -> int:
    specs, devices = _select(args)
    head, rows = run_bench(specs, devices, compile_ref=not args.no_compile, reps=args.reps,
                           log=lambda line: print(line, flush=True), full=getattr(args, "full", True))
    out = to_json(head, rows)
    if getattr(args, "e2e", False):
        print()
        out["e2e"] = _e2e(args, ("none", "prefix", "dual", "block"), baselines=True, reference=False)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
        print(f"bench: wrote {args.json}")
    return 0


def _e2e(args, caches, baselines, reference) -> list:
    from . import e2e
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset = args.model or ("llada8b-shaped" if device == "cuda" else "tiny")
    model = e2e.make_model(preset, device, layers=args.layers)
    c = model.config
    print(f"generate: TinyLLaDA preset {preset!r} ({c.num_layers} layers, hidden {c.hidden_size}, "
          f"{c.num_heads}/{c.num_kv_heads} heads, vocab {c.vocab_size}, {next(model.parameters()).dtype}) "
          f"on {device}; batch {args.batch}, prompt {args.prompt_length}, gen {args.gen_length}, "
          f"block {args.block_length}, steps {args.steps}")
    return e2e.run(model, args.batch, args.prompt_length, args.gen_length, args.block_length,
                   args.steps, caches=caches, baselines=baselines, reference=reference,
                   threshold=args.threshold)


def cmd_generate(args) -> int:
    rows = _e2e(args, [args.cache], baselines=args.baselines, reference=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": backend_info(), "rows": rows}, f, indent=2, default=str)
    return 0


def cmd_quality(args) -> int:
    import os

    from . import models, quality
    from . import tasks as T
    model, tok = models.load_pretrained(args.model)
    n = args.n if args.n is not None else (1000 if args.full else 100)
    methods = quality.METHODS
    if args.method:
        methods = [m for m in methods if m.family in args.method or m.name in args.method]
        if not methods:
            sys.exit(f"dllm_kernels quality: no method matches {args.method}; families: "
                     f"{sorted({m.family for m in quality.METHODS})}")
    tasks = args.task or list(T.TASKS)
    caches = args.cache or ["none", "prefix", "dual", "block"]
    print(f"quality: {args.model} on {', '.join(tasks)}; {n} held-out problems per task (seed "
          f"{args.seed}), caches {', '.join(caches)}, backend {args.backend}, batch {args.batch_size}",
          flush=True)
    results, skipped = quality.sweep(model, tok, tasks=tasks, methods=methods, caches=caches, n=n,
                                     seed=args.seed, batch_size=args.batch_size,
                                     backend=args.backend, progress=not args.no_progress)
    print(quality.format_grid(results) if args.markdown else quality.format_table(results, markdown=False))
    for s in skipped:
        print(f"skipped {s['method']}: generate does not take it yet ({s['reason']})")
    out = {"header": {**backend_info(), "model": args.model, "n": n, "seed": args.seed,
                      "batch_size": args.batch_size, "backend": args.backend,
                      "threads": torch.get_num_threads()},
           "results": results, "skipped": skipped}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "quality.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=str)
    print(f"quality: wrote {path}")
    png = os.path.join(args.out, "quality.png")
    try:
        quality.plot(results, png, title=f"{args.model}: held-out exact match vs tokens per forward")
        print(f"quality: wrote {png}")
    except ImportError:
        print("quality: matplotlib is not installed, no plot (pip install matplotlib)")
    return 0


def cmd_info(args) -> int:
    print(json.dumps(backend_info(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dllm_kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--op", action="append", help="only this op (repeatable); default: all")
    common.add_argument("--device", choices=["cpu", "cuda"], help="only this device type")
    p_verify = sub.add_parser("verify", parents=[common], help="compare every op with its reference")
    p_verify.add_argument("--seed", type=int, help="input seed (default: fresh per case, printed)")
    p_bench = sub.add_parser("bench", parents=[common], help="time every op, its reference and torch.compile of it")
    for p in (p_bench, parser):
        p.add_argument("--json", help="write the bench results to this file")
        p.add_argument("--no-compile", action="store_true", help="skip torch.compile of the reference")
        p.add_argument("--reps", type=int, default=50, help="timed calls per measurement (median)")
    gen = argparse.ArgumentParser(add_help=False)
    gen.add_argument("--model", choices=["tiny", "llada8b-shaped"], help="TinyLLaDA preset (default: tiny on CPU, llada8b-shaped on CUDA)")
    gen.add_argument("--layers", type=int, help="override the preset's layer count")
    gen.add_argument("--batch", type=int, default=1)
    gen.add_argument("--prompt-length", type=int, default=64)
    gen.add_argument("--gen-length", type=int, default=256)
    gen.add_argument("--block-length", type=int, default=32)
    gen.add_argument("--steps", type=int, default=256)
    gen.add_argument("--threshold", type=float, help="parallel decoding threshold (Fast-dLLM)")
    p_gen = sub.add_parser("generate", parents=[gen], help="whole generations on a TinyLLaDA: kernels vs reference (tokens/s, NFE, time split)")
    p_gen.add_argument("--cache", choices=["none", "prefix", "dual", "block"], default="dual")
    p_gen.add_argument("--device", choices=["cpu", "cuda"])
    p_gen.add_argument("--baselines", action="store_true", help="also time the literal LLaDA / Fast-dLLM loops")
    p_gen.add_argument("--json", help="write the rows to this file")
    p_bench.add_argument("--e2e", action="store_true", help="also run the end-to-end generation benchmark")
    for a in gen._actions:
        if a.dest != "help":
            p_bench._add_action(a)
    p_q = sub.add_parser("quality", help="decoding methods x cache modes on the shipped tiny-tasks model: "
                         "held-out accuracy vs tokens per forward (table, JSON, PNG)")
    p_q.add_argument("--model", default="tiny-tasks", help="a shipped model (dllm_kernels.models.available())")
    p_q.add_argument("--task", action="append", help="only this task (repeatable): addition, sort, sudoku")
    p_q.add_argument("--method", action="append", help="only this method family or name (repeatable), e.g. threshold")
    p_q.add_argument("--cache", action="append", choices=["none", "prefix", "dual", "block"], help="only this cache mode (repeatable)")
    p_q.add_argument("--n", type=int, help="held-out problems per task (default 100; --full: 1000)")
    p_q.add_argument("--full", action="store_true", help="1000 problems per task")
    p_q.add_argument("--seed", type=int, default=0, help="which held-out problems")
    p_q.add_argument("--batch-size", type=int, default=256, help="rows per generate call")
    p_q.add_argument("--backend", choices=["kernels", "reference"], default="kernels")
    p_q.add_argument("--out", default="quality", help="folder for quality.json and quality.png")
    p_q.add_argument("--markdown", action="store_true", help="print a markdown grid (task x method rows, cache columns: accuracy · tokens per forward) instead of the long table")
    p_q.add_argument("--no-progress", action="store_true")
    sub.add_parser("info", help="print backend_info() as JSON")
    parser.add_argument("--op", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["cpu", "cuda"], help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true",
                        help="the main job on every case (default: OpSpec.main_cases, one per op; "
                             "the verify and bench commands always run every case)")
    args = parser.parse_args(argv)
    if args.cmd == "verify":
        return cmd_verify(args)
    if args.cmd == "bench":
        return cmd_bench(args)
    if args.cmd == "info":
        return cmd_info(args)
    if args.cmd == "generate":
        return cmd_generate(args)
    if args.cmd == "quality":
        return cmd_quality(args)
    args.seed = None  # the main job: verify, then bench
    status = cmd_verify(args)
    print()
    return cmd_bench(args) or status


if __name__ == "__main__":
    sys.exit(main())
