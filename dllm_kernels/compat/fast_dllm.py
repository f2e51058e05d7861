"""NVlabs/Fast-dLLM's LLaDA entry points (llada/generate.py), call-compatible, on dllm_kernels.

generate (no cache), generate_with_prefix_cache and generate_with_dual_cache take the original
arguments and return (x, nfe). The model is driven as Fast-dLLM drives it, so Fast-dLLM's own
LLaDA model (model(x, use_cache=True).past_key_values, the cache as per-layer (k, v) tuples
[B, H, T, D], replace_position for the dual cache) works unchanged; a model the runtime can
serve (dllm_kernels.generate's kinds: the runtime interface or a transformers model using
AttentionInterface) runs the cache functions on the runtime's paged cache instead (same loop,
same NFE). The step's sampling and selection run in one fused op.
"""

from __future__ import annotations

import torch

from .. import ops
from ..runtime import generate as _runtime_generate
from ..runtime import model_kind
from ._step import commit_step, llada_confidence
from .llada import _device


def _rule(schedule, i, threshold, factor) -> dict:
    if factor is not None:
        return {"factor": factor}
    if threshold is not None:
        return {"threshold": threshold}
    return {"num_transfer": schedule[:, i]}


def _setup(model, prompt, steps, gen_length, block_length, mask_id, fn):
    if gen_length % block_length:
        raise ValueError(
            f"compat.fast_dllm.{fn}: gen_length ({gen_length}) must be a multiple of "
            f"block_length ({block_length})"
        )
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise ValueError(
            f"compat.fast_dllm.{fn}: steps ({steps}) must be a multiple of the "
            f"number of blocks ({num_blocks})"
        )
    x = torch.full(
        (prompt.shape[0], prompt.shape[1] + gen_length),
        mask_id,
        dtype=torch.long,
        device=_device(model),
    )
    x[:, : prompt.shape[1]] = prompt.clone()
    return x, num_blocks, steps // num_blocks


def _block_done(x, s0, s1, mask_id) -> bool:
    return not bool((x[:, s0:s1] == mask_id).any())


def _on_runtime(model) -> bool:
    return model_kind(model) in ("runtime", "transformers")


def _runtime(
    model,
    prompt,
    steps,
    gen_length,
    block_length,
    temperature,
    remasking,
    mask_id,
    threshold,
    factor,
    cache,
):
    parallel = threshold is not None or factor is not None
    out = _runtime_generate(
        model,
        prompt,
        gen_length=gen_length,
        block_length=block_length,
        steps=None if parallel else steps,
        temperature=temperature,
        remasking=remasking,
        threshold=threshold,
        factor=factor,
        mask_id=mask_id,
        cache=cache,
    )
    return out.tokens, out.nfe


@torch.no_grad()
def generate(
    model,
    prompt,
    steps=128,
    gen_length=128,
    block_length=128,
    temperature=0.0,
    remasking="low_confidence",
    mask_id=126336,
    threshold=None,
    factor=None,
):
    """Fast-dLLM's uncached sampler: per block, steps of model(x).logits until the block has no
    mask; each step commits the schedule's count (threshold / factor: Fast-dLLM's parallel
    rules) among the masked positions before the block's end. Returns (x, nfe)."""
    confidence = llada_confidence(remasking)
    x, num_blocks, spb = _setup(model, prompt, steps, gen_length, block_length, mask_id, "generate")
    P = prompt.shape[1]
    nfe = 0
    for k in range(num_blocks):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        schedule = ops.num_transfer_tokens(x[:, s0:s1] == mask_id, spb)
        i = 0
        while True:
            nfe += 1
            logits = model(x).logits
            commit_step(
                logits[:, :s1],
                x[:, :s1],
                mask_id,
                temperature=temperature,
                confidence=confidence,
                **_rule(schedule, i, threshold, factor),
            )
            i += 1
            if _block_done(x, s0, s1, mask_id) or (
                threshold is None and factor is None and i >= spb
            ):
                break
    return x, nfe


def _trim(past_key_values, end: int):
    """Fast-dLLM's prefix: every layer's cached tensors cut to the first `end` positions."""
    return [tuple(t[:, :, :end] for t in layer) for layer in past_key_values]


def _cached(
    model,
    prompt,
    steps,
    gen_length,
    block_length,
    temperature,
    remasking,
    mask_id,
    threshold,
    factor,
    dual: bool,
    fn: str,
):
    """The cache loop of both Fast-dLLM functions on the model's own past_key_values protocol:
    per block a full forward (its logits make the first step) caches K/V; the other steps feed
    block + suffix over the trimmed prefix (prefix), or only the block with replace_position over
    everything (dual)."""
    confidence = llada_confidence(remasking)
    x, num_blocks, spb = _setup(model, prompt, steps, gen_length, block_length, mask_id, fn)
    P = prompt.shape[1]
    nfe = 0
    for k in range(num_blocks):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        schedule = ops.num_transfer_tokens(x[:, s0:s1] == mask_id, spb)
        out = model(x, use_cache=True)
        nfe += 1
        commit_step(
            out.logits[:, :s1],
            x[:, :s1],
            mask_id,
            temperature=temperature,
            confidence=confidence,
            **_rule(schedule, 0, threshold, factor),
        )
        if dual:
            past = out.past_key_values
            replace = torch.zeros_like(x, dtype=torch.bool)
            replace[:, s0:s1] = True
            feed = dict(past_key_values=past, use_cache=True, replace_position=replace)
        else:
            feed = dict(past_key_values=_trim(out.past_key_values, s0), use_cache=True)
        i = 1
        while not _block_done(x, s0, s1, mask_id) and (
            threshold is not None or factor is not None or i < spb
        ):
            nfe += 1
            logits = model(x[:, s0:s1] if dual else x[:, s0:], **feed).logits
            commit_step(
                logits[:, :block_length],
                x[:, s0:s1],
                mask_id,
                temperature=temperature,
                confidence=confidence,
                **_rule(schedule, i, threshold, factor),
            )
            i += 1
    return x, nfe


@torch.no_grad()
def generate_with_prefix_cache(
    model,
    prompt,
    steps=128,
    gen_length=128,
    block_length=128,
    temperature=0.0,
    remasking="low_confidence",
    mask_id=126336,
    threshold=None,
    factor=None,
):
    """Fast-dLLM's prefix cache: a full forward at each block start (its logits make the block's
    first step) caches the prefix; the block's other steps feed block + suffix over the cached
    prefix. Returns (x, nfe)."""
    args = (
        model,
        prompt,
        steps,
        gen_length,
        block_length,
        temperature,
        remasking,
        mask_id,
        threshold,
        factor,
    )
    if _on_runtime(model):
        return _runtime(*args, "prefix")
    return _cached(*args, dual=False, fn="generate_with_prefix_cache")


@torch.no_grad()
def generate_with_dual_cache(
    model,
    prompt,
    steps=128,
    gen_length=128,
    block_length=128,
    temperature=0.0,
    remasking="low_confidence",
    mask_id=126336,
    threshold=None,
    factor=None,
):
    """Fast-dLLM's dual cache: a full forward at each block start caches every position; the
    block's other steps feed only the block, whose fresh K/V replace its cached ones
    (replace_position), over the cached prefix and suffix. Returns (x, nfe)."""
    args = (
        model,
        prompt,
        steps,
        gen_length,
        block_length,
        temperature,
        remasking,
        mask_id,
        threshold,
        factor,
    )
    if _on_runtime(model):
        return _runtime(*args, "dual")
    return _cached(*args, dual=True, fn="generate_with_dual_cache")


__all__ = ["generate", "generate_with_dual_cache", "generate_with_prefix_cache"]
