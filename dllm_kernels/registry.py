"""The op registry: one entry per op, used by `python -m dllm_kernels verify|bench`, the
benchmarks/ scripts and the tests.

Each OpSpec says how to build realistic random inputs for a named case, how to call the op and its
reference, which outputs to compare (and how strictly), and how many bytes / FLOPs a call must
move at least (the napkin model the benchmark turns into GB/s and % of peak).

Adding an op: write its reference, kernels and ops.py wrapper, then append an OpSpec to SPECS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import ops, reference

Inputs = dict[str, Any]

LLADA_VOCAB = 126_464
LLADA_MASK_ID = 126_336


@dataclass(frozen=True)
class Case:
    """One input configuration: a label for tables and the parameters make_inputs reads."""

    label: str
    params: dict[str, int | float]


@dataclass(frozen=True)
class OpSpec:
    name: str
    op: Callable[..., Any]          # the public op (dllm_kernels.ops.*)
    reference: Callable[..., Any]   # its specification (dllm_kernels.reference.*)
    make_inputs: Callable[[dict, torch.device, torch.Generator], Inputs]  # kwargs for op/reference
    cases: tuple[Case, ...]         # default, realistic shapes
    outputs: Callable[[Any, Inputs], tuple[torch.Tensor, ...]]  # what to compare after a call
    bytes_moved: Callable[[Inputs], int]  # fewest bytes a call must read + write
    flops: Callable[[Inputs], int] | None = None  # None: a memory-bound op with no FLOP model
    mutates: tuple[str, ...] = ()   # inputs written in place (cloned before each verify call)
    atol: float = 0.0               # float outputs: |a - b| <= atol + rtol * |b|; ints exact
    rtol: float = 0.0
    doc: str = ""

    def call(self, fn: Callable[..., Any], inputs: Inputs) -> Any:
        return fn(**inputs)


def _randint(gen: torch.Generator, high: int, shape, device) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=gen, dtype=torch.int64).to(device)


def _rand_mask(gen: torch.Generator, p: float, shape, device) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) < p).to(device)


# ---- commit_ ---------------------------------------------------------------------------------------

def _commit_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    x = _randint(gen, LLADA_VOCAB, (B, L), device)
    x[_rand_mask(gen, 0.5, (B, L), device)] = LLADA_MASK_ID  # half the positions still masked
    return {
        "x": x,
        "x0": _randint(gen, LLADA_VOCAB, (B, L), device),
        "transfer": _rand_mask(gen, float(params.get("p", 0.25)), (B, L), device),
    }


def _commit_bytes(inputs: Inputs) -> int:
    # Read transfer, read x0 and write x: at the default f = 0.25 nearly every 32-byte sector of
    # x / x0 holds a transferred position, so whole rows move (see csrc/include/dllm/commit.h).
    x = inputs["x"]
    return x.numel() * (1 + 2 * x.element_size())


COMMIT = OpSpec(
    name="commit_",
    op=ops.commit_,
    reference=reference.commit_,
    make_inputs=_commit_inputs,
    cases=(
        Case("B=1 L=320 (LLaDA 64+256)", {"B": 1, "L": 320}),
        Case("B=8 L=2048", {"B": 8, "L": 2048}),
        Case("B=64 L=4096", {"B": 64, "L": 4096}),
    ),
    outputs=lambda result, inputs: (inputs["x"],),
    bytes_moved=_commit_bytes,
    mutates=("x",),
    doc="x[transfer] = x0[transfer], in place",
)


# ---- num_transfer_tokens ----------------------------------------------------------------------------

def _ntt_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    return {"mask_index": _rand_mask(gen, 0.7, (B, L), device), "steps": int(params["steps"])}


def _ntt_bytes(inputs: Inputs) -> int:
    m = inputs["mask_index"]
    return m.numel() * m.element_size() + m.shape[0] * inputs["steps"] * 8


NUM_TRANSFER_TOKENS = OpSpec(
    name="num_transfer_tokens",
    op=ops.num_transfer_tokens,
    reference=reference.num_transfer_tokens,
    make_inputs=_ntt_inputs,
    cases=(
        Case("B=1 L=32 steps=8 (one block)", {"B": 1, "L": 32, "steps": 8}),
        Case("B=8 L=256 steps=128", {"B": 8, "L": 256, "steps": 128}),
        Case("B=64 L=4096 steps=256", {"B": 64, "L": 4096, "steps": 256}),
    ),
    outputs=lambda result, inputs: (result,),
    bytes_moved=_ntt_bytes,
    doc="LLaDA linear schedule: tokens to commit per step",
)


SPECS: tuple[OpSpec, ...] = (COMMIT, NUM_TRANSFER_TOKENS)


def get(name: str) -> OpSpec:
    for spec in SPECS:
        if spec.name == name or spec.name.rstrip("_") == name:
            return spec
    raise KeyError(f"unknown op {name!r}; registered: {[s.name for s in SPECS]}")


def clone_inputs(inputs: Inputs) -> Inputs:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def compare(spec: OpSpec, got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...]) -> tuple[bool, float]:
    """(match, max abs error). Integer and bool outputs must match exactly."""
    ok, worst = True, 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape or g.dtype != w.dtype:
            return False, float("inf")
        g, w = g.cpu(), w.cpu()
        if g.dtype.is_floating_point:
            err = (g.double() - w.double()).abs()
            worst = max(worst, float(err.max()) if err.numel() else 0.0)
            ok &= bool(torch.allclose(g, w, atol=spec.atol, rtol=spec.rtol, equal_nan=False))
        else:
            diff = (g != w)
            worst = max(worst, float(diff.sum()))  # number of mismatching elements
            ok &= not bool(diff.any())
    return ok, worst
