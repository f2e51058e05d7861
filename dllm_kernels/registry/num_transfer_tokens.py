"""num_transfer_tokens: the LLaDA linear schedule (tokens to commit per step)."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import Case, Inputs, OpSpec, rand_mask


def _ntt_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    return {"mask_index": rand_mask(gen, 0.7, (B, L), device), "steps": int(params["steps"])}


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
