"""ML-GSAI/LLaDA's `generate` (generate.py), call-compatible, on dllm_kernels' ops."""

from __future__ import annotations

import torch

from .. import ops
from ._step import LLADA_EOS, commit_step, commit_step_eos_eot, llada_confidence


def _device(model) -> torch.device:
    dev = getattr(model, "device", None)
    if dev is None:
        try:
            dev = next(model.parameters()).device
        except (AttributeError, StopIteration):
            dev = torch.device("cpu")
    return torch.device(dev)


@torch.no_grad()
def generate(
    model,
    prompt,
    attention_mask=None,
    steps=128,
    gen_length=128,
    block_length=128,
    temperature=0.0,
    cfg_scale=0.0,
    remasking="low_confidence",
    mask_id=126336,
    logits_eos_inf=False,
    confidence_eos_eot_inf=False,
):
    """LLaDA's semi-autoregressive masked-diffusion sampler; returns x [B, P + gen_length].

    Same arguments, defaults and result as LLaDA's generate: each step calls
    model(x, attention_mask=...).logits (with cfg_scale > 0 on [x; x with the prompt masked] in
    one batch, logits = u + (cfg_scale + 1)(c - u)); every masked position up to the end of the
    current block gets its candidate and confidence, and the num_transfer_tokens most confident
    are committed. The candidate / confidence / top-k / commit run in one fused op per step.

    Args:
        model: returns .logits [B, L, V] for model(x, attention_mask=...).
        prompt: int [B, P]; attention_mask: [B, P] or None (left padding).
        steps, gen_length, block_length: as LLaDA (gen_length a multiple of block_length, steps
            a multiple of the number of blocks).
        temperature: 0 = greedy; > 0 Gumbel-max sampling (Philox stream seeded from torch's
            default generator).
        cfg_scale: classifier-free guidance; remasking: 'low_confidence' | 'random'.
        mask_id: the mask token; logits_eos_inf: EOS (126081) is never a candidate;
        confidence_eos_eot_inf: EOS / EoT (126348) get no confidence, as LLaDA computes it.
    """
    confidence = llada_confidence(remasking)
    dev = _device(model)
    B, P = prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long, device=dev)
    x[:, :P] = prompt.clone()
    if attention_mask is not None:
        attention_mask = torch.cat(
            [
                attention_mask,
                torch.ones(
                    (B, gen_length), dtype=attention_mask.dtype, device=attention_mask.device
                ),
            ],
            dim=-1,
        ).to(dev)
    prompt_index = x != mask_id
    if gen_length % block_length:
        raise ValueError(
            f"compat.llada.generate: gen_length ({gen_length}) must be a multiple of "
            f"block_length ({block_length})"
        )
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise ValueError(
            f"compat.llada.generate: steps ({steps}) must be a multiple of the number "
            f"of blocks ({num_blocks})"
        )
    steps = steps // num_blocks
    suppress = [LLADA_EOS] if logits_eos_inf else None
    mask2 = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
    for k in range(num_blocks):
        end = P + (k + 1) * block_length
        schedule = ops.num_transfer_tokens(x[:, end - block_length : end] == mask_id, steps)
        for i in range(steps):
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                logits = model(torch.cat([x, un_x]), attention_mask=mask2).logits
                c, u = torch.chunk(logits, 2, dim=0)
                logits = u + (cfg_scale + 1) * (c - u)
            else:
                logits = model(x, attention_mask=attention_mask).logits
            # every masked position before the block's end is a candidate (as in LLaDA)
            step = commit_step_eos_eot if confidence_eos_eot_inf else commit_step
            step(
                logits[:, :end],
                x[:, :end],
                mask_id,
                temperature=temperature,
                confidence=confidence,
                suppress_tokens=suppress,
                num_transfer=schedule[:, i],
            )
    return x


__all__ = ["generate"]
