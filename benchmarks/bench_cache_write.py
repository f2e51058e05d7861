"""Benchmark cache_write_: the native kernel vs dllm_kernels.reference.cache_write_ (advanced
indexing) and torch.compile of it, on the default shapes in dllm_kernels.registry (N tokens x
H_kv heads, D = 128, bf16, into a fragmented page pool; check=False, the per-step path).

    python benchmarks/bench_cache_write.py [--device cpu|cuda] [--json PATH] [--no-compile]
    [--reps N]
"""

import sys

from dllm_kernels.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "cache_write_", *sys.argv[1:]]))
