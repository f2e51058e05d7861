"""Benchmark cache_copy_pages_: the native kernel vs dllm_kernels.reference.cache_copy_pages_ and
torch.compile of it, on the default shapes in dllm_kernels.registry (64 and 1024 copy-on-write
page pairs, H_kv = 8, D = 128, bf16; same inputs, same process, same timer).

    python benchmarks/bench_cache_copy_pages.py [--device cpu|cuda] [--json PATH] [--no-compile]
    [--reps N]
"""

import sys

from dllm_kernels.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "cache_copy_pages_", *sys.argv[1:]]))
