"""cache_copy_pages_: copy-on-write page copies (pools: see cache_write)."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import DTYPES, Case, Inputs, OpSpec, cache_pair, token_bytes


def _cache_copy_pages_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """n (src, dst) pairs, copy-on-write of shared pages: 2n distinct random pages of a pool of
    4n."""
    n, H = int(params["n"]), int(params["H"])
    dtype = DTYPES[params.get("dtype", "bf16")]
    P = 4 * n
    k_cache, v_cache = cache_pair(P, H, dtype, device, gen)
    perm = torch.randperm(P, generator=gen)
    return {
        "k_cache": k_cache,
        "v_cache": v_cache,
        "pairs": torch.stack([perm[:n], perm[n : 2 * n]], dim=1).to(device),  # int64 [n, 2]
    }


def _cache_copy_pages_bytes(inputs: Inputs) -> int:
    # Read and write n pages of k and of v (2 * n * page_size * H * D * elem each way), plus the
    # pairs.
    k_cache, pairs = inputs["k_cache"], inputs["pairs"]
    n = pairs.shape[0]
    return 2 * 2 * n * k_cache.shape[1] * token_bytes(k_cache) + 16 * n


CACHE_COPY_PAGES = OpSpec(
    name="cache_copy_pages_",
    op=ops.cache_copy_pages_,
    reference=reference.cache_copy_pages_,
    make_inputs=_cache_copy_pages_inputs,
    cases=(
        Case("64 pairs H_kv=8 bf16", {"n": 64, "H": 8}),
        Case("1024 pairs H_kv=8 bf16", {"n": 1024, "H": 8}),
    ),
    outputs=lambda result, inputs: (inputs["k_cache"], inputs["v_cache"]),
    bytes_moved=_cache_copy_pages_bytes,
    mutates=("k_cache", "v_cache"),
    doc="k_cache[dst] = k_cache[src] (and v) for (src, dst) page pairs, in place (copy-on-write)",
)
