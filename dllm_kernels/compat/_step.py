"""The step the compat loops share: pick candidates and commit, in place, with the fused op."""

from __future__ import annotations

import torch

from .. import ops

LLADA_EOS, LLADA_EOT = 126081, 126348


def _seed(temperature: float, confidence: str) -> int | None:
    """None (the op draws from torch's default generator, so torch.manual_seed reproduces a run)
    when something is random; 0 otherwise."""
    return None if temperature > 0 or confidence == "random" else 0


def llada_confidence(remasking: str) -> str:
    if remasking == "low_confidence":
        return "prob"
    if remasking == "random":
        return "random"
    raise NotImplementedError(remasking)


def commit_step(
    logits, x, mask_id: int, *, temperature: float, confidence: str, suppress_tokens=None, **rule
) -> torch.Tensor:
    """x[transfer] = x0[transfer] in place over the columns of x (a [B, L] view) from logits
    [B, L, V]; returns transfer."""
    _, _, transfer = ops.denoise_and_select(
        logits,
        x,
        mask_id,
        temperature=temperature,
        confidence=confidence,
        suppress_tokens=suppress_tokens,
        commit=True,
        seed=_seed(temperature, confidence),
        **rule,
    )
    return transfer


def commit_step_eos_eot(
    logits, x, mask_id: int, *, temperature: float, confidence: str, suppress_tokens, num_transfer
) -> torch.Tensor:
    """LLaDA's confidence_eos_eot_inf=True: candidates from the logits as given, confidence
    p(x0) from a softmax in which EoT (and, at T = 0 where LLaDA's noisy logits are the logits
    themselves, EOS) are -inf. Eager, like the original: the op computes x0, torch the rest."""
    if logits.shape[-1] <= LLADA_EOT:
        raise ValueError(
            f"compat.llada.generate: confidence_eos_eot_inf needs LLaDA's vocabulary "
            f"(EoT id {LLADA_EOT}), got V = {logits.shape[-1]}"
        )
    seed = _seed(temperature, confidence)
    x0, conf = ops.denoise_step(
        logits,
        x,
        mask_id,
        temperature=temperature,
        confidence=confidence,
        suppress_tokens=suppress_tokens,
        seed=seed,
    )
    if confidence == "prob":
        z = logits.float().clone()
        z[..., LLADA_EOT] = -torch.inf
        if temperature == 0:
            z[..., LLADA_EOS] = -torch.inf
        p = torch.softmax(z, dim=-1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        conf = torch.where(conf > -torch.inf, p, conf)
    transfer = ops.select_transfer(conf, num_transfer=num_transfer, seed=seed)
    ops.commit_(x, x0, transfer)
    return transfer
