"""Reference denoise_step: logits -> candidate token x0 and a confidence per masked position."""

from __future__ import annotations

import torch

from .. import _checks
from . import philox

FLT_MAX = torch.finfo(torch.float32).max
CONFIDENCES = ("prob", "margin", "neg_entropy", "random")
SOURCES = ("raw", "sampling")
FILTER_ORDERS = ("top_k_first", "top_p_first")


def sanitize(z: torch.Tensor) -> torch.Tensor:
    """NaN -> -inf (never chosen), +inf -> the largest float32 (chosen, ties share the mass)."""
    return torch.nan_to_num(z, nan=float("-inf"), posinf=FLT_MAX, neginf=float("-inf"))


def top_k_filter(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keeps every logit >= the k-th largest of its row (ties kept); others -> -inf."""
    if k <= 0 or k >= z.shape[-1]:
        return z
    kth = torch.topk(z, k, dim=-1).values[..., -1:]
    return z.masked_fill(z < kth, float("-inf"))


def top_p_filter(z: torch.Tensor, top_p: float) -> torch.Tensor:
    """Sort the row's logits descending; tau = the logit at which the cumulative probability
    (float64) first reaches top_p; keep every logit >= tau (the smallest such set, ties kept,
    always >= 1 token); others -> -inf."""
    if top_p >= 1.0:
        return z
    sorted_z = torch.sort(z, dim=-1, descending=True).values
    cum = torch.cumsum(torch.softmax(sorted_z.double(), dim=-1), dim=-1)
    first = torch.searchsorted(cum, torch.full_like(cum[..., :1], top_p))  # first cum >= top_p
    tau = sorted_z.gather(-1, first.clamp(max=z.shape[-1] - 1))
    return z.masked_fill(z < tau, float("-inf"))


def _gumbel(seed: int, offset: int, b: torch.Tensor, l: torch.Tensor, V: int) -> torch.Tensor:
    """[N, V] Gumbel noise -log(-log U) of the Philox stream, slot v for token v."""
    v = torch.arange(V, dtype=torch.int64, device=b.device)
    return philox.gumbel(philox.random_words(seed, offset, b[:, None], l[:, None], v[None, :]))


def denoise_step(
    logits: torch.Tensor,
    x: torch.Tensor,
    mask_id: int,
    *,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    filter_order: str = "top_k_first",
    confidence: str = "prob",
    confidence_source: str = "raw",
    shift_logits: bool = False,
    suppress_tokens=None,
    seed: int | None = None,
    offset: int = 0,
    eligible: torch.Tensor | None = None,
    uncond_logits: torch.Tensor | None = None,
    cfg_scale: float = 0.0,
    return_argmax: bool = False,
    chunk: int = 1 << 22,
) -> tuple[torch.Tensor, ...]:
    """x0 = argmax (T = 0) or Gumbel-max sample (T > 0) of softmax(filter(z / T)) per masked
    (or eligible) position; z = u + (s + 1)(c - u) with classifier-free guidance.

    z is the position's logits c (with uncond_logits u and cfg_scale s != 0: the float32 sequence
    d = c - u, e = fl32(s + 1) * d, z = u + e, LLaDA's formula in float32, never fused into an FMA),
    then suppress_tokens at -inf, NaN at -inf and +inf at the largest float32. With shift_logits
    position l reads the logits (and uncond_logits) of l - 1 (position 0 its own).

    Args:
        logits: [B, L, V] float32/bfloat16/float16, last dim contiguous.
        x: [B, L] int64; masked where x == mask_id.
        mask_id: the mask token id (>= 0); unused (may be None) when `eligible` is given.
        temperature: >= 0. 0 = argmax (ties to the smallest id); the filters then act on z.
            z / T is computed as z * fl32(1 / T).
        top_k: keep logits >= the k-th largest (0 = off).
        top_p: in (0, 1]; keep the smallest most-probable set with mass >= top_p (1 = off),
            ties kept.
        filter_order: "top_k_first" or "top_p_first".
        confidence: "prob" p(x0), "margin" p1 - p2, "neg_entropy" sum p log p, "random" U[0, 1).
        confidence_source: "raw" (p = softmax(z)) or "sampling" (p = the filtered distribution).
        suppress_tokens: token ids (sequence or int64 tensor) never produced.
        seed, offset: Philox stream (see reference/philox.py); seed None draws one from torch.
        eligible: None or bool [B, L]: the positions denoised, instead of x == mask_id
            (uniform-noise canvases such as DiffusionGemma's have no mask token).
        uncond_logits: None or the unconditional logits u, like `logits` (shape, dtype, device).
        cfg_scale: s >= 0, finite; 0 (LLaDA's "no CFG") reads the conditional logits unchanged.
        return_argmax: also return argmax [B, L] int64: the first id maximising z (the logits
            after CFG, suppress_tokens and sanitize; before temperature and filters), x where
            not denoised or where every z is -inf (DiffusionGemma's argmax canvas).
        chunk: rows are processed this many logits at a time (memory bound for the reference).

    Returns:
        x0: [B, L] int64, x at positions not denoised (and at rows whose logits are all -inf).
        conf: [B, L] float32, -inf at positions not denoised (and at all -inf rows).
        argmax (return_argmax only): [B, L] int64.
    """
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
        eligible=eligible,
        uncond_logits=uncond_logits,
        cfg_scale=cfg_scale,
    )
    seed = opts["seed"]
    V = logits.shape[-1]
    # Temperature as a float32 multiply by fl32(1/T), so every backend rounds the same way.
    inv_t = torch.tensor(1.0 / temperature if temperature > 0 else 1.0, dtype=torch.float32)
    x0 = x.clone()
    argmax = x.clone()
    conf = torch.full(x.shape, float("-inf"), dtype=torch.float32, device=x.device)
    where = eligible if eligible is not None else x == mask_id
    b_all, l_all = torch.nonzero(where, as_tuple=True)
    cfg = uncond_logits is not None and opts["cfg_scale"] != 0.0
    s1 = torch.tensor(opts["cfg_scale"] + 1.0, dtype=torch.float32)  # fl32(s + 1)
    step = max(1, chunk // max(V, 1))
    for start in range(0, b_all.numel(), step):
        b, l = b_all[start : start + step], l_all[start : start + step]
        src = (l - 1).clamp(min=0) if shift_logits else l  # shift: l reads l - 1
        z = logits[b, src].float()  # [n, V] c
        if cfg:
            u = uncond_logits[b, src].float()
            z = u + s1.to(z.device) * (z - u)  # float32, op by op
        z = sanitize(z)
        if opts["suppress"] is not None:
            z[:, opts["suppress"]] = float("-inf")
        has_z = (z > float("-inf")).any(-1)  # not all -inf
        argmax[b[has_z], l[has_z]] = torch.argmax(z, dim=-1)[has_z]  # first max: smallest id
        scaled = sanitize(z * inv_t.to(z.device))
        if filter_order == "top_k_first":
            filtered = top_p_filter(top_k_filter(scaled, top_k), top_p)
        else:
            filtered = top_k_filter(top_p_filter(scaled, top_p), top_k)
        if temperature > 0:
            choice = torch.argmax(filtered + _gumbel(seed, offset, b, l, V), dim=-1)
        else:
            choice = torch.argmax(filtered, dim=-1)  # first max: smallest id
        # Confidences in float64 (the spec), returned as float32.
        p = torch.softmax((z if confidence_source == "raw" else filtered).double(), dim=-1)
        if confidence == "prob":
            c = p.gather(-1, choice[:, None])[:, 0]
        elif confidence == "margin":
            top2 = torch.topk(p, min(2, V), dim=-1).values
            c = top2[:, 0] - (top2[:, 1] if V > 1 else 0.0)
        elif confidence == "neg_entropy":
            c = torch.special.xlogy(p, p).sum(-1)
        else:  # random
            slot = torch.full_like(b, philox.SLOT_CONFIDENCE)
            c = philox.closed0(philox.random_words(seed, offset, b, l, slot)).double()
        valid = torch.isfinite(filtered).any(-1)  # not all -inf
        x0[b[valid], l[valid]] = choice[valid]
        conf[b[valid], l[valid]] = c[valid].float()
    return (x0, conf, argmax) if return_argmax else (x0, conf)
