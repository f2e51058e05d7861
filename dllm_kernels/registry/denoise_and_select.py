"""denoise_and_select: denoise_step + select_transfer (+ commit) in one call."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import LLADA_VOCAB, Case, Inputs, OpSpec
from .denoise_step import denoise_bytes, denoise_inputs


def _das_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    out = denoise_inputs(params, device, gen)
    out["num_transfer"] = int(params["k"])
    out["commit"] = False  # timing reruns the same inputs: a commit would shrink the masked set
    return out


DENOISE_AND_SELECT = OpSpec(
    name="denoise_and_select",
    op=ops.denoise_and_select,
    reference=lambda **kw: _reference_denoise_and_select(**kw),
    make_inputs=_das_inputs,
    cases=(
        Case("1x32x126464 bf16 k=4", {"B": 1, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16", "k": 4}),
    ),
    cuda_cases=(
        Case(
            "64x32x126464 bf16 k=4", {"B": 64, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16", "k": 4}
        ),
    ),
    outputs=lambda result, inputs: result,
    bytes_moved=lambda inputs: denoise_bytes(inputs) + inputs["x"].numel() * 5,
    atol=1e-6,
    rtol=1e-5,
    doc="denoise_step + select_transfer (+ commit) in one call",
)


def _reference_denoise_and_select(logits, x, mask_id, num_transfer, commit, **kw):
    """The reference composition that denoise_and_select must equal."""
    seed = kw.pop("seed", 0)
    x0, conf = reference.denoise_step(logits, x, mask_id, seed=seed, **kw)
    transfer = reference.select_transfer(conf, num_transfer=num_transfer, seed=seed)
    if commit:
        reference.commit_(x, x0, transfer)
    return x0, conf, transfer
