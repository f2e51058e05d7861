"""python -m dllm_kernels [verify|bench|info] — verify every op against its reference, then time it.

    python -m dllm_kernels                 # the main job: verify, then bench
    python -m dllm_kernels verify          # exit 1 on any mismatch (or if the native ops are missing)
    python -m dllm_kernels bench --json results.json
    python -m dllm_kernels info            # backend_info() as JSON
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from . import backend_info, registry
from .benchmark import run_bench, to_json
from .verify import available_devices, format_rows, run_verify


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
    rows = run_verify(specs, devices, seed=args.seed)
    print(format_rows(rows))
    bad = [r for r in rows if not r.ok]
    print(f"verify: {len(rows) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


def cmd_bench(args) -> int:
    specs, devices = _select(args)
    head, rows = run_bench(specs, devices, compile_ref=not args.no_compile, reps=args.reps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(to_json(head, rows), f, indent=2)
        print(f"bench: wrote {args.json}")
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
    sub.add_parser("info", help="print backend_info() as JSON")
    parser.add_argument("--op", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["cpu", "cuda"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cmd == "verify":
        return cmd_verify(args)
    if args.cmd == "bench":
        return cmd_bench(args)
    if args.cmd == "info":
        return cmd_info(args)
    args.seed = None  # the main job: verify, then bench
    status = cmd_verify(args)
    print()
    return cmd_bench(args) or status


if __name__ == "__main__":
    sys.exit(main())
