"""denoise_step: logits -> candidate token and confidence per masked position."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import DTYPES, LLADA_MASK_ID, LLADA_VOCAB, Case, Inputs, OpSpec

_DENOISE_KEYS = ("temperature", "top_k", "top_p", "confidence", "confidence_source", "seed")


def denoise_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """A fresh block: every position masked (the first step of a block is the largest)."""
    B, L, V = int(params["B"]), int(params["L"]), int(params["V"])
    logits = (torch.randn(B, L, V, generator=gen) * 3).to(DTYPES[params.get("dtype", "bf16")])
    x = torch.full((B, L), LLADA_MASK_ID, dtype=torch.int64)
    x[:, ::4] = torch.randint(0, V, (B, (L + 3) // 4), generator=gen)  # a quarter already decoded
    out = {"logits": logits.to(device), "x": x.to(device), "mask_id": LLADA_MASK_ID}
    out.update({k: params[k] for k in _DENOISE_KEYS if k in params})
    # Always a seed, as a generation loop passes one per step: with seed=None every call would
    # draw a fresh one on the host, and torch.compile of the reference would recompile for each.
    out.setdefault("seed", 1234)
    return out


def denoise_bytes(inputs: Inputs) -> int:
    logits, x = inputs["logits"], inputs["x"]
    masked = int((x == inputs["mask_id"]).sum())
    return masked * logits.shape[-1] * logits.element_size() + x.numel() * (8 + 8 + 4)


def denoise_case(B, L, V, dtype="bf16", **opts) -> Case:
    tag = " ".join(f"{k}={v}" for k, v in opts.items() if k != "seed")
    return Case(
        f"{B}x{L}x{V} {dtype}" + (f" {tag}" if tag else ""),
        {"B": B, "L": L, "V": V, "dtype": dtype, **opts},
    )


DENOISE_STEP = OpSpec(
    name="denoise_step",
    op=ops.denoise_step,
    reference=reference.denoise_step,
    make_inputs=denoise_inputs,
    cases=(
        denoise_case(1, 32, LLADA_VOCAB, "fp32"),
        denoise_case(1, 32, LLADA_VOCAB, "bf16"),
        denoise_case(1, 32, LLADA_VOCAB, "bf16", confidence="neg_entropy"),
        denoise_case(1, 32, LLADA_VOCAB, "bf16", temperature=1.0),
        denoise_case(1, 32, LLADA_VOCAB, "bf16", temperature=1.0, top_p=0.9, confidence="margin"),
    ),
    cuda_cases=(
        denoise_case(8, 32, LLADA_VOCAB, "bf16"),
        denoise_case(64, 32, LLADA_VOCAB, "bf16"),
        denoise_case(64, 32, LLADA_VOCAB, "fp32"),
        denoise_case(1, 256, LLADA_VOCAB, "bf16"),
        denoise_case(32, 32, 151_936, "bf16", confidence="margin"),
        denoise_case(64, 32, LLADA_VOCAB, "bf16", temperature=1.0),
        denoise_case(64, 32, LLADA_VOCAB, "bf16", temperature=1.0, top_p=0.9),
    ),
    outputs=lambda result, inputs: result,
    bytes_moved=denoise_bytes,
    atol=1e-6,
    rtol=1e-5,
    doc="logits -> candidate token and confidence per masked position (one pass)",
)
