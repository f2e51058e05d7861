"""denoise_step: logits -> candidate token and confidence per masked position."""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import DTYPES, LLADA_MASK_ID, LLADA_VOCAB, Case, Inputs, OpSpec

_DENOISE_KEYS = ("temperature", "top_k", "top_p", "confidence", "confidence_source", "seed")


def denoise_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """A fresh block: every position masked (the first step of a block is the largest).
    params "cfg": s adds CFG's unconditional logits (cfg_scale s); "eligible": 1 makes a
    uniform-noise canvas (DiffusionGemma: random tokens, no mask, all positions eligible)."""
    B, L, V = int(params["B"]), int(params["L"]), int(params["V"])
    dtype = DTYPES[params.get("dtype", "bf16")]
    logits = (torch.randn(B, L, V, generator=gen) * 3).to(dtype)
    x = torch.full((B, L), LLADA_MASK_ID, dtype=torch.int64)
    x[:, ::4] = torch.randint(0, V, (B, (L + 3) // 4), generator=gen)  # a quarter already decoded
    out = {"logits": logits.to(device), "x": x.to(device), "mask_id": LLADA_MASK_ID}
    if params.get("eligible"):
        out["x"] = torch.randint(0, V, (B, L), generator=gen).to(device)
        out["eligible"] = torch.ones(B, L, dtype=torch.bool, device=device)
        out["mask_id"] = None
    if params.get("cfg"):
        out["uncond_logits"] = (torch.randn(B, L, V, generator=gen) * 3).to(dtype).to(device)
        out["cfg_scale"] = float(params["cfg"])
    out.update({k: params[k] for k in _DENOISE_KEYS if k in params})
    # Always a seed, as a generation loop passes one per step: with seed=None every call would
    # draw a fresh one on the host, and torch.compile of the reference would recompile for each.
    out.setdefault("seed", 1234)
    return out


def denoise_bytes(inputs: Inputs) -> int:
    logits, x = inputs["logits"], inputs["x"]
    eligible = inputs.get("eligible")
    masked = int(eligible.sum()) if eligible is not None else int((x == inputs["mask_id"]).sum())
    reads = 2 if inputs.get("uncond_logits") is not None else 1
    extra = 1 if eligible is not None else 0
    return masked * logits.shape[-1] * logits.element_size() * reads + x.numel() * (20 + extra)


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
        denoise_case(1, 32, LLADA_VOCAB, "bf16", cfg=1.5),  # LLaDA CFG
        denoise_case(
            1,
            32,
            262_144,
            "bf16",
            eligible=1,
            temperature=0.8,  # DiffusionGemma
            confidence="neg_entropy",
            confidence_source="sampling",
        ),
    ),
    cuda_cases=(
        denoise_case(
            8,
            256,
            262_144,
            "bf16",
            eligible=1,
            temperature=0.8,
            confidence="neg_entropy",
            confidence_source="sampling",
        ),
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
