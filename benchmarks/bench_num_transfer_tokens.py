"""Benchmark num_transfer_tokens: the native kernel vs dllm_kernels.reference.num_transfer_tokens
and torch.compile of it, on the default shapes in dllm_kernels.registry (same inputs, same process,
same timer).

    python benchmarks/bench_num_transfer_tokens.py [--device cpu|cuda] [--json PATH]
    [--no-compile] [--reps N]
"""

import sys

from dllm_kernels.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "num_transfer_tokens", *sys.argv[1:]]))
