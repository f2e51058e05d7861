"""denoise_and_select: denoise_step + select_transfer (+ commit) in one call."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import LLADA_VOCAB, Case, Inputs, OpSpec
from .denoise_step import denoise_bytes, denoise_inputs


def _das_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    out = denoise_inputs(params, device, gen)
    if "entropy_bound" in params:  # DiffusionGemma's step: EB, commit, renoise (x is rewritten,
        out["entropy_bound"] = float(params["entropy_bound"])  # the eligible set stays)
        out["commit"] = out["renoise"] = True
        return out
    out["num_transfer"] = int(params["k"])
    out["commit"] = False  # timing reruns the same inputs: a commit would shrink the masked set
    return out


# DiffusionGemma's sampling step: all positions eligible, temperature, neg-entropy confidences of
# the tempered distribution, EB acceptance, renoise of the rest.
_DG_STEP = {
    "eligible": 1,
    "temperature": 0.8,
    "confidence": "neg_entropy",
    "confidence_source": "sampling",
    "entropy_bound": 2.0,
    "seed": 1234,
}


DENOISE_AND_SELECT = OpSpec(
    name="denoise_and_select",
    op=ops.denoise_and_select,
    reference=lambda **kw: _reference_denoise_and_select(**kw),
    make_inputs=_das_inputs,
    cases=(
        Case("1x32x126464 bf16 k=4", {"B": 1, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16", "k": 4}),
        Case(
            "1x32x126464 bf16 k=4 cfg=1.5",
            {"B": 1, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16", "k": 4, "cfg": 1.5},
        ),
        Case(
            "1x32x262144 bf16 DiffusionGemma EB=2 renoise",
            {"B": 1, "L": 32, "V": 262_144, "dtype": "bf16", **_DG_STEP},
        ),
    ),
    cuda_cases=(
        Case(
            "64x32x126464 bf16 k=4", {"B": 64, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16", "k": 4}
        ),
        Case(
            "8x256x262144 bf16 DiffusionGemma EB=2 renoise",
            {"B": 8, "L": 256, "V": 262_144, "dtype": "bf16", **_DG_STEP},
        ),
    ),
    mutates=("x",),
    outputs=lambda result, inputs: (*result, inputs["x"]),
    bytes_moved=lambda inputs: denoise_bytes(inputs) + inputs["x"].numel() * 5,
    atol=1e-6,
    rtol=1e-5,
    doc="denoise_step + select_transfer (+ commit) in one call",
)


def _reference_denoise_and_select(logits, x, mask_id, commit, num_transfer=None, **kw):
    """The reference composition that denoise_and_select must equal (reference.denoise_and_select
    for the issue-16 options: eligible, CFG, entropy_bound, renoise)."""
    if num_transfer is None or "eligible" in kw or "uncond_logits" in kw:
        return reference.denoise_and_select(
            logits, x, mask_id, commit=commit, num_transfer=num_transfer, **kw
        )
    seed = kw.pop("seed", 0)
    x0, conf = reference.denoise_step(logits, x, mask_id, seed=seed, **kw)
    transfer = reference.select_transfer(conf, num_transfer=num_transfer, seed=seed)
    if commit:
        reference.commit_(x, x0, transfer)
    return x0, conf, transfer
