"""commit_: x[transfer] = x0[transfer], in place."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import LLADA_MASK_ID, LLADA_VOCAB, Case, Inputs, OpSpec, rand_mask, randint


def _commit_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    x = randint(gen, LLADA_VOCAB, (B, L), device)
    x[rand_mask(gen, 0.5, (B, L), device)] = LLADA_MASK_ID  # half the positions still masked
    return {
        "x": x,
        "x0": randint(gen, LLADA_VOCAB, (B, L), device),
        "transfer": rand_mask(gen, float(params.get("p", 0.25)), (B, L), device),
    }


def _commit_bytes(inputs: Inputs) -> int:
    # Read transfer, read x0 and write x: at the default f = 0.25 nearly every 32-byte sector of
    # x / x0 holds a transferred position, so whole rows move (see csrc/include/dllm/cpu/commit.h).
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
