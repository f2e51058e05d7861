"""Benchmark select_transfer: the native kernel vs dllm_kernels.reference.select_transfer and torch.compile of it,
on the default shapes in dllm_kernels.registry (same inputs, same process, same timer).

    python benchmarks/bench_select_transfer.py [--device cpu|cuda] [--json PATH] [--no-compile] [--reps N]
"""

import sys

from dllm_kernels.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "select_transfer", *sys.argv[1:]]))
