"""Reference denoise_and_select: denoise_step, select_transfer, commit and renoise in one call."""

from __future__ import annotations

import torch

from .. import _checks
from . import philox
from .commit import commit_
from .denoise_step import denoise_step
from .select_transfer import select_transfer


def denoise_and_select(
    logits: torch.Tensor,
    x: torch.Tensor,
    mask_id: int | None,
    *,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    filter_order: str = "top_k_first",
    confidence: str = "prob",
    confidence_source: str = "raw",
    shift_logits: bool = False,
    suppress_tokens=None,
    num_transfer=None,
    threshold=None,
    factor=None,
    probability=None,
    entropy_bound=None,
    strict: bool = False,
    commit: bool = False,
    seed: int | None = None,
    offset: int = 0,
    eligible: torch.Tensor | None = None,
    uncond_logits: torch.Tensor | None = None,
    cfg_scale: float = 0.0,
    renoise: bool = False,
    return_argmax: bool = False,
):
    """(x0, conf) = denoise_step(...); transfer = select_transfer(conf, <rule>); with commit
    x[transfer] = x0[transfer]; with renoise also x[eligible & ~transfer] = below(w, V), w the
    Philox word of slot SLOT_RENOISE of (seed, offset, b, l).

    The renoised token is uniform on [0, V) (V = logits.shape[-1]; the range of DiffusionGemma's
    EntropyBoundSampler.renoise_canvas, torch.randint(0, vocab_size)), from its own Philox stream
    (not the Gumbel noise's, nor the "random" confidence's or the probability rule's coin).

    Args: those of denoise_step and select_transfer (one seed / offset for both), and
        commit: write x in place (x: [B, L] int64, not an expanded view).
        renoise: needs commit=True and eligible (bool [B, L], not sharing memory with x).
        entropy_bound: the EB rule; needs confidence="neg_entropy".
        return_argmax: also return denoise_step's argmax (of x before the commit / renoise).

    Returns:
        (x0 [B, L] int64 (the candidates, before renoise), conf [B, L] float32,
        transfer [B, L] bool), and argmax [B, L] int64 with return_argmax.
    """
    op = "denoise_and_select"
    opts = _checks.denoise_step(
        logits,
        x,
        mask_id,
        temperature,
        top_k,
        top_p,
        filter_order,
        confidence,
        confidence_source,
        suppress_tokens,
        seed,
        offset,
        op=op,
        eligible=eligible,
        uncond_logits=uncond_logits,
        cfg_scale=cfg_scale,
    )
    rule = _checks.select_rule(
        x.shape[0],
        x.device,
        num_transfer,
        threshold,
        factor,
        probability,
        strict,
        opts["seed"],
        opts["offset"],
        op=op,
        entropy_bound=entropy_bound,
    )
    _checks.denoise_and_select_extras(x, eligible, confidence, rule["kind"], commit, renoise)
    if commit:
        _checks.check_writable(x, op, "x")
    x0, conf, *argmax = denoise_step(
        logits,
        x,
        opts["mask_id"] if eligible is None else None,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        filter_order=filter_order,
        confidence=confidence,
        confidence_source=confidence_source,
        shift_logits=shift_logits,
        suppress_tokens=opts["suppress"],
        seed=opts["seed"],
        offset=opts["offset"],
        eligible=eligible,
        uncond_logits=uncond_logits,
        cfg_scale=opts["cfg_scale"],
        return_argmax=return_argmax,
    )
    transfer = select_transfer(
        conf,
        **{rule["kind"]: rule["value"]},
        strict=strict,
        seed=opts["seed"],
        offset=opts["offset"],
    )
    if commit:
        commit_(x, x0, transfer)
    if renoise:
        B, L = x.shape
        b = torch.arange(B, device=x.device)[:, None].expand(B, L)
        l = torch.arange(L, device=x.device)[None, :].expand(B, L)
        words = philox.random_words(
            opts["seed"], opts["offset"], b, l, torch.full_like(b, philox.SLOT_RENOISE)
        )
        noise = philox.below(words, logits.shape[-1])
        where = eligible & ~transfer
        x[where] = noise[where]
    return (x0, conf, transfer, *argmax)
