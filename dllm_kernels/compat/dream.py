"""Dream's `diffusion_generate` (generation_utils.py of Dream-v0), call-compatible, on
dllm_kernels' ops.

    from dllm_kernels.compat.dream import diffusion_generate
    out = diffusion_generate(model, input_ids, attention_mask=mask, max_new_tokens=256,
                             steps=256, temperature=0.2, top_p=0.95, alg="entropy", alg_temp=0.)

The model is called as Dream calls it, model(x, attention_mask, tok_idx).logits (attention_mask
is the string "full" without padding, else a [B, 1, N, N] bool mask; tok_idx the positions), and
its logits are shifted one column right (position i reads the logits of i - 1). Each step the
fused op samples every masked position (temperature, top-p then top-k, confidences from the
sampling distribution) and commits Dream's count int(mean_masked * (1 - s/t)) of the most
confident (alg "maskgit_plus" | "topk_margin" | "entropy"), or each with probability 1 - s/t
("origin"). alg_temp > 0 draws the positions from softmax(confidence / alg_temp) in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import ops
from ..schedules import dream_timesteps

ALGS = {"origin": "prob", "maskgit_plus": "prob", "topk_margin": "margin", "entropy": "neg_entropy"}
DEFAULTS = dict(
    temperature=0.0,
    top_p=None,
    top_k=None,
    max_length=20,
    max_new_tokens=None,
    eps=1e-3,
    steps=512,
    alg="origin",
    alg_temp=None,
    num_return_sequences=1,
    return_dict_in_generate=False,
    output_history=False,
    mask_token_id=None,
)


@dataclass
class DreamModelOutput:
    """Dream's output with return_dict_in_generate=True."""

    sequences: torch.Tensor
    history: tuple | None = None


def _option(name, kwargs, generation_config, model):
    if name in kwargs and kwargs[name] is not None:
        return kwargs[name]
    for src in (generation_config, getattr(model, "generation_config", None)):
        v = getattr(src, name, None) if src is not None else None
        if v is not None:
            return v
    if name == "mask_token_id":
        return getattr(getattr(model, "config", None), "mask_token_id", None)
    return DEFAULTS[name]


@torch.no_grad()
def diffusion_generate(model, inputs=None, generation_config=None, **kwargs):
    """Dream's sampler; returns sequences [B, max_length] (or DreamModelOutput with
    return_dict_in_generate=True). Arguments as Dream's: inputs (input ids [B, P]),
    attention_mask, max_new_tokens / max_length, steps, eps, alg, alg_temp, temperature, top_p,
    top_k, num_return_sequences, return_dict_in_generate, output_history, mask_token_id,
    generation_tokens_hook_func, generation_logits_hook_func; from kwargs, else
    generation_config, else model.generation_config, else Dream's defaults."""
    tokens_hook = kwargs.pop("generation_tokens_hook_func", None)
    logits_hook = kwargs.pop("generation_logits_hook_func", None)
    attention_mask = kwargs.pop("attention_mask", None)
    if inputs is None:
        inputs = kwargs.pop("input_ids", None)
    if inputs is None:
        raise ValueError("compat.dream.diffusion_generate: inputs (the prompt ids) is required")
    opt = {n: _option(n, kwargs, generation_config, model) for n in DEFAULTS}
    alg, steps, eps = opt["alg"], int(opt["steps"]), float(opt["eps"])
    if alg not in ALGS:
        raise ValueError(
            f"compat.dream.diffusion_generate: alg must be one of {list(ALGS)}, got {alg!r}"
        )
    mask_id = opt["mask_token_id"]
    if mask_id is None:
        raise ValueError(
            "compat.dream.diffusion_generate: no mask_token_id (give it, or a model "
            "config / generation_config that has one)"
        )
    mask_id = int(mask_id)
    P = inputs.shape[-1]
    if opt["max_new_tokens"] is not None:
        max_length = int(opt["max_new_tokens"]) + P
    elif "max_length" in kwargs or (
        generation_config is not None and getattr(generation_config, "max_length", None)
    ):
        max_length = int(opt["max_length"])
    else:  # Dream's default: 20 new tokens, within the model's positions
        max_length = DEFAULTS["max_length"] + P
        mpe = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if mpe is not None:
            max_length = min(max_length, int(mpe))
    if max_length <= P:
        raise ValueError(
            f"compat.dream.diffusion_generate: max_length ({max_length}) leaves no "
            f"room after the {P}-token prompt"
        )
    n = int(opt["num_return_sequences"])
    input_ids = inputs.repeat_interleave(n, dim=0)
    if attention_mask is not None:
        attention_mask = attention_mask.repeat_interleave(n, dim=0)

    x = F.pad(input_ids, (0, max_length - P), value=mask_id)
    if attention_mask is not None and bool((attention_mask == 0).any()):
        am = F.pad(attention_mask, (0, max_length - P), value=1.0)
        tok_idx = am.long().cumsum(-1) - 1
        tok_idx.masked_fill_(am == 0, 1)
        am = torch.logical_and(am.unsqueeze(1).unsqueeze(-2), am.unsqueeze(1).unsqueeze(-1))
    else:
        tok_idx, am = None, "full"
    t = dream_timesteps(steps, eps)
    history = [] if (opt["return_dict_in_generate"] and opt["output_history"]) else None
    if tokens_hook is not None:
        x = tokens_hook(None, x, None)
    sampling = dict(
        temperature=float(opt["temperature"]),
        top_p=float(opt["top_p"] or 1.0),
        top_k=int(opt["top_k"] or 0),
        filter_order="top_p_first",
        confidence=ALGS[alg],
        confidence_source="sampling",
    )
    seed = None if sampling["temperature"] > 0 or alg == "origin" or opt["alg_temp"] else 0
    for i in range(steps):
        mask_index = x == mask_id
        logits = model(x, am, tok_idx).logits
        shifted = logits_hook is not None or tokens_hook is not None
        if shifted:  # the hooks see Dream's shifted logits
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
            if logits_hook is not None:
                logits = logits_hook(i, x, logits)
        last = i == steps - 1
        if alg == "origin":
            p = 1.0 if last else float(1 - t[i + 1] / t[i])
            ops.denoise_and_select(
                logits,
                x,
                mask_id,
                **sampling,
                shift_logits=not shifted,
                probability=p,
                commit=True,
                seed=seed,
                offset=i,
            )
        else:
            mean_masked = float(mask_index.sum()) / mask_index.shape[0]
            k = int(mean_masked) if last else int(mean_masked * (1 - float(t[i + 1] / t[i])))
            if k > 0:
                if not opt["alg_temp"]:
                    ops.denoise_and_select(
                        logits,
                        x,
                        mask_id,
                        **sampling,
                        shift_logits=not shifted,
                        num_transfer=k,
                        commit=True,
                        seed=seed,
                        offset=i,
                    )
                else:
                    x0, conf = ops.denoise_step(
                        logits,
                        x,
                        mask_id,
                        **sampling,
                        shift_logits=not shifted,
                        seed=seed,
                        offset=i,
                    )
                    w = F.softmax(conf / float(opt["alg_temp"]), dim=-1)
                    idx = torch.multinomial(w, num_samples=k)
                    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
                    x[rows, idx] = torch.where(mask_index[rows, idx], x0[rows, idx], x[rows, idx])
        if tokens_hook is not None:
            x = tokens_hook(i, x, logits)
        if history is not None:
            history.append(x.clone())
    if opt["return_dict_in_generate"]:
        return DreamModelOutput(
            sequences=x, history=tuple(history) if history is not None else None
        )
    return x


__all__ = ["DreamModelOutput", "diffusion_generate"]
