"""Benchmark commit_: the native kernel vs dllm_kernels.reference.commit_ and torch.compile of it,
on the default shapes in dllm_kernels.registry (same inputs, same process, same timer).

    python benchmarks/bench_commit.py [--device cpu|cuda] [--json PATH] [--no-compile] [--reps N]
"""

import sys

from dllm_kernels.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "commit_", *sys.argv[1:]]))
