"""Runs a function on `world` CPU processes joined by a gloo process group (torch.multiprocessing
spawn), for the tensor-parallel tests: fn(rank, world, *args) runs in each process after
init_process_group, with one torch thread; its return value comes back to the parent, per rank."""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def available() -> tuple[bool, str]:
    """Whether gloo process groups can be made here, and why not."""
    if not dist.is_available():
        return False, "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return False, "torch.distributed has no gloo backend in this torch build"
    return True, ""


def _entry(rank, world, store_dir, fn, args):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store_dir}/store", rank=rank, world_size=world
    )
    try:
        out = fn(rank, world, *args)
    finally:
        dist.destroy_process_group()
    torch.save(out, os.path.join(store_dir, f"rank{rank}.pt"))


def run_ranks(fn, world: int, *args) -> list:
    """[fn's result on rank r for r in range(world)]; fn must be importable (a module-level
    function of an importable module) and its arguments picklable."""
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_entry, args=(world, d, fn, args), nprocs=world, join=True)
        return [torch.load(os.path.join(d, f"rank{r}.pt")) for r in range(world)]
