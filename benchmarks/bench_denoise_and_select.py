"""Benchmark denoise_and_select: the native kernel vs dllm_kernels.reference.denoise_and_select and
torch.compile of it, on the default shapes in dllm_kernels.registry (same inputs, same process, same
timer).

    python benchmarks/bench_denoise_and_select.py [--device cpu|cuda] [--json PATH]
    [--no-compile] [--reps N]
"""

import sys

from dllm_kernels.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "denoise_and_select", *sys.argv[1:]]))
