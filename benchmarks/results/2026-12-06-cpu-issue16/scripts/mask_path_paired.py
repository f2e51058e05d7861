"""Paired before/after wall clock of denoise_step's mask path (T = 0, [1, 32, 126464] fp32, every
position masked, 1 thread): the compiled op called directly (the 13 schema arguments both builds
share), so only the kernel and its glue are timed.

    python mask_path_paired.py ROUNDS OLD_ROOT NEW_ROOT   # the driver: alternates processes
    python mask_path_paired.py --one                       # one process: prints its median (ms)

Each process imports dllm_kernels from the PYTHONPATH the driver gives it, warms up, times CALLS
calls one by one and prints the median; the driver runs old, new, new, old, ... and reports the
median of each side's medians and their ratio (which side runs first alternates by round; OLD_ROOT
= NEW_ROOT gives the A/A noise floor).
"""
import os
import statistics
import subprocess
import sys
import time

CALLS = 30
B, L, V, MASK = 1, 32, 126_464, 126_336


def one() -> None:
    import torch
    torch.set_num_threads(1)
    import dllm_kernels  # noqa: F401  (loads the extension)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, L, V, generator=g) * 3
    x = torch.full((B, L), MASK, dtype=torch.int64)
    op = torch.ops.dllm_kernels.denoise_step
    args = (logits, x, MASK, 0.0, 0, 1.0, "top_k_first", "prob", "raw", False, None, 0, 0)
    for _ in range(5):
        op(*args)
    times = []
    for _ in range(CALLS):
        t = time.perf_counter()
        op(*args)
        times.append(time.perf_counter() - t)
    print(f"{statistics.median(times) * 1e3:.4f}")


def main() -> None:
    rounds, old, new = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    med = {"old": [], "new": []}
    for r in range(rounds):
        pair = (("old", old), ("new", new))
        for side, root in (pair if r % 2 == 0 else pair[::-1]):  # who goes first alternates
            env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
            out = subprocess.run([sys.executable, __file__, "--one"], env=env, cwd="/tmp",
                                 capture_output=True, text=True, check=True).stdout
            med[side].append(float(out.split()[-1]))
        print(f"round {r + 1}: old {med['old'][-1]:.3f} ms  new {med['new'][-1]:.3f} ms",
              flush=True)
    o, n = statistics.median(med["old"]), statistics.median(med["new"])
    print(f"median of {rounds} rounds ({CALLS} calls each): old {o:.3f} ms, new {n:.3f} ms, "
          f"new / old = {n / o:.3f}")


if __name__ == "__main__":
    one() if sys.argv[1:] == ["--one"] else main()
