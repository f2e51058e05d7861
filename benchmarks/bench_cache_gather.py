"""Benchmark cache_gather: the native kernel vs dllm_kernels.reference.cache_gather and
torch.compile of it, on the default shapes in dllm_kernels.registry (B ragged rows, H_kv = 8,
D = 128, bf16, from a fragmented page pool; same inputs, same process, same timer).

    python benchmarks/bench_cache_gather.py [--device cpu|cuda] [--json PATH] [--no-compile]
    [--reps N]
"""

import sys

from dllm_kernels.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "cache_gather", *sys.argv[1:]]))
