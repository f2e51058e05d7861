"""The op registry: one entry per op, used by `python -m dllm_kernels verify|bench`, the
benchmarks/ scripts and the tests.

Each OpSpec says how to build realistic random inputs for a named case, how to call the op and its
reference, which outputs to compare (and how strictly), and how many bytes / FLOPs a call must
move at least (the napkin model the benchmark turns into GB/s and % of peak).

Layout: `core` holds the Case / OpSpec types and the shared input helpers; one module per op,
named like the op (`denoise_step.py`, `cache_write.py` for `cache_write_`, ...), holds its spec.

Adding an op: write its reference, kernels and ops.py wrapper, then a module here with its OpSpec,
appended to SPECS below.
"""

from __future__ import annotations

import torch

from .block_attention import (
    BLOCK_ATTENTION,
    DREAM_HEADS,
    LLADA_HEADS,
    block_attention_kv_bytes,
    block_attention_visible_keys,
)
from .cache_copy_pages import CACHE_COPY_PAGES
from .cache_gather import CACHE_GATHER
from .cache_write import CACHE_WRITE
from .commit import COMMIT
from .core import (
    DTYPES,
    HEAD_DIM,
    LLADA_MASK_ID,
    LLADA_VOCAB,
    PAGE_SIZE,
    Case,
    Inputs,
    OpSpec,
)
from .denoise_and_select import DENOISE_AND_SELECT
from .denoise_step import DENOISE_STEP
from .num_transfer_tokens import NUM_TRANSFER_TOKENS
from .select_transfer import SELECT_TRANSFER

SPECS: tuple[OpSpec, ...] = (
    COMMIT,
    NUM_TRANSFER_TOKENS,
    DENOISE_STEP,
    SELECT_TRANSFER,
    DENOISE_AND_SELECT,
    CACHE_WRITE,
    CACHE_GATHER,
    CACHE_COPY_PAGES,
    BLOCK_ATTENTION,
)

__all__ = [
    "SPECS",
    "get",
    "clone_inputs",
    "compare",
    "Case",
    "Inputs",
    "OpSpec",
    "DTYPES",
    "HEAD_DIM",
    "LLADA_MASK_ID",
    "LLADA_VOCAB",
    "PAGE_SIZE",
    "LLADA_HEADS",
    "DREAM_HEADS",
    "block_attention_kv_bytes",
    "block_attention_visible_keys",
    "COMMIT",
    "NUM_TRANSFER_TOKENS",
    "DENOISE_STEP",
    "SELECT_TRANSFER",
    "DENOISE_AND_SELECT",
    "CACHE_WRITE",
    "CACHE_GATHER",
    "CACHE_COPY_PAGES",
    "BLOCK_ATTENTION",
]


def get(name: str) -> OpSpec:
    """The spec of op `name` (the trailing underscore of an in-place op may be left off)."""
    for spec in SPECS:
        if spec.name == name or spec.name.rstrip("_") == name:
            return spec
    raise KeyError(f"unknown op {name!r}; registered: {[s.name for s in SPECS]}")


def clone_inputs(inputs: Inputs) -> Inputs:
    """A copy of `inputs` with every tensor cloned (for ops that write their inputs)."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def compare(
    spec: OpSpec, got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...]
) -> tuple[bool, float]:
    """(match, max abs error). Integer and bool outputs must match exactly."""
    ok, worst = True, 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape or g.dtype != w.dtype:
            return False, float("inf")
        g, w = g.cpu(), w.cpu()
        if g.dtype.is_floating_point:
            same_inf = torch.isinf(g) & (g == w)  # -inf conf at unmasked positions
            err = (g.double() - w.double()).abs().masked_fill(same_inf, 0)
            worst = max(worst, float(err.max()) if err.numel() else 0.0)
            atol, rtol = spec.tolerance(g.dtype)
            ok &= bool(torch.allclose(g, w, atol=atol, rtol=rtol, equal_nan=False))
        else:
            diff = g != w
            worst = max(worst, float(diff.sum()))  # number of mismatching elements
            ok &= not bool(diff.any())
    return ok, worst
