"""cache_gather: paged cache + block table -> contiguous zero-padded k / v (pools: see
cache_write)."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import DTYPES, PAGE_SIZE, Case, Inputs, OpSpec, cache_pair, token_bytes


def _cache_gather_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """B rows of ragged length, evenly spread over [min_len, max_len] in random order, each on its
    own random pages of a pool with a quarter more pages than the rows use; unused block-table
    entries are 0. The lengths are fixed per case (only their order, the pages and the values are
    random), so every input set the benchmark rotates over has the same shapes and work: one
    compile of the reference, and bytes_moved holds for all of them."""
    B, H = int(params["B"]), int(params["H"])
    dtype = DTYPES[params.get("dtype", "bf16")]
    spread = torch.linspace(int(params["min_len"]), int(params["max_len"]), B, dtype=torch.float64)
    lens = spread.round().long()[torch.randperm(B, generator=gen)]
    need = (lens + PAGE_SIZE - 1) // PAGE_SIZE
    P = int(need.sum()) * 5 // 4 + 1
    k_cache, v_cache = cache_pair(P, H, dtype, device, gen)
    perm = torch.randperm(P, generator=gen)
    table = torch.zeros(B, int(need.max()), dtype=torch.int32)
    start = 0
    for b, n in enumerate(need.tolist()):
        table[b, :n] = perm[start : start + n].to(torch.int32)
        start += n
    return {
        "k_cache": k_cache,
        "v_cache": v_cache,
        "block_table": table.to(device),
        "kv_lens": lens.to(torch.int32).to(device),
        "max_len": int(lens.max()),  # known on the host, as a scheduler knows it: no max() sync
    }


def _cache_gather_bytes(inputs: Inputs) -> int:
    # Read the valid tokens of k and v, write the zero-padded [B, max_len] outputs, read the
    # block-table entries in use and kv_lens.
    lens, max_len = inputs["kv_lens"].long().clamp(max=inputs["max_len"]), inputs["max_len"]
    token = token_bytes(inputs["k_cache"])
    used_pages = int(((lens + PAGE_SIZE - 1) // PAGE_SIZE).sum())
    return 2 * (int(lens.sum()) + lens.numel() * max_len) * token + 4 * (used_pages + lens.numel())


def _cache_gather_case(B: int, lo: int, hi: int, H: int = 8) -> Case:
    lens = f"len={lo}" if lo == hi else f"len {lo}..{hi}"
    return Case(f"B={B} {lens} H_kv={H} bf16", {"B": B, "min_len": lo, "max_len": hi, "H": H})


CACHE_GATHER = OpSpec(
    name="cache_gather",
    op=ops.cache_gather,
    reference=reference.cache_gather,
    make_inputs=_cache_gather_inputs,
    cases=(
        _cache_gather_case(1, 2048, 2048),
        _cache_gather_case(8, 512, 2048),
        _cache_gather_case(32, 512, 1024),
    ),
    cuda_cases=(
        _cache_gather_case(1, 8192, 8192),
        _cache_gather_case(8, 512, 8192),
        _cache_gather_case(32, 512, 8192),
    ),
    outputs=lambda result, inputs: result,
    bytes_moved=_cache_gather_bytes,
    doc="paged cache + block table -> contiguous zero-padded [B, max_len, H_kv, D] k and v "
    "(max_len passed in, as the scheduler knows it)",
)
