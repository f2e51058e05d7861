"""cache_write_: new k / v tokens into their paged-cache slots.

Cache pools (all cache ops): one layer's cache is a pair [num_pages, page_size = 16, H_kv,
D = 128] in bf16 (the NHD layout). Pools are fragmented: a sequence fills its pages in order, but
the pages are a random permutation of the pool, the way a paged pool looks after churn. Values are
random (never zeros), so a copy that skips a token or writes the wrong slot cannot match by
accident.
"""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import (
    DTYPES,
    HEAD_DIM,
    PAGE_SIZE,
    Case,
    Inputs,
    OpSpec,
    cache_pair,
    rand_values,
    token_bytes,
)


def _cache_write_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """N new tokens: they fill ceil(N / 16) pages in order, drawn at random from a pool twice that
    size (so the pool holds at least N tokens and half of it is someone else's)."""
    N, H = int(params["N"]), int(params["H"])
    dtype = DTYPES[params.get("dtype", "bf16")]
    pages = -(-N // PAGE_SIZE)
    P = max(2 * pages, 64)
    k_cache, v_cache = cache_pair(P, H, dtype, device, gen)
    page = torch.randperm(P, generator=gen)[:pages]
    t = torch.arange(N)
    slots = page[t // PAGE_SIZE] * PAGE_SIZE + t % PAGE_SIZE  # distinct, every slot >= 0
    return {
        "k_cache": k_cache,
        "v_cache": v_cache,
        "k": rand_values(gen, (N, H, HEAD_DIM), dtype, device),
        "v": rand_values(gen, (N, H, HEAD_DIM), dtype, device),
        "slot_mapping": slots.to(device),
        "check": False,  # the per-step path: check=True reads slot_mapping back (a CUDA sync)
    }


def _cache_write_bytes(inputs: Inputs) -> int:
    # Read k and v of every kept token, write them into the caches, read 8 bytes per slot.
    slots = inputs["slot_mapping"]
    kept = int((slots >= 0).sum())
    return 2 * 2 * kept * token_bytes(inputs["k_cache"]) + 8 * slots.numel()


def _cache_write_case(N: int, H: int) -> Case:
    return Case(f"N={N} H_kv={H} D={HEAD_DIM} bf16", {"N": N, "H": H})


CACHE_WRITE = OpSpec(
    name="cache_write_",
    op=ops.cache_write_,
    reference=reference.cache_write_,
    make_inputs=_cache_write_inputs,
    cases=(
        _cache_write_case(32, 4),
        _cache_write_case(32, 32),
        _cache_write_case(1024, 4),
        _cache_write_case(1024, 32),
        _cache_write_case(32768, 4),
    ),
    cuda_cases=(_cache_write_case(32768, 32),),  # k + v alone are 0.5 GB: too slow for the CPU run
    outputs=lambda result, inputs: (inputs["k_cache"], inputs["v_cache"]),
    bytes_moved=_cache_write_bytes,
    mutates=("k_cache", "v_cache"),
    doc="k / v [N, H_kv, D] into their paged-cache slots, in place; timed with check=False "
    "(the per-step path: no slot validation, which on CUDA is a device sync)",
)
