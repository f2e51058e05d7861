"""Transfer schedules: how many masked tokens each denoising step commits, as the published
decoders compute them. Pure Python on purpose: a schedule is a handful of integers per block.

- LLaDA (linear per block): dllm_kernels.num_transfer_tokens(mask_index, steps) -> [B, steps],
  floor(M_b / steps) per step plus one for the first (M_b mod steps) steps.
- Dream (timestep ratio): dream_num_transfer(...) below.
"""

from __future__ import annotations

import torch

from .ops import num_transfer_tokens

__all__ = ["dream_num_transfer", "dream_timesteps", "num_transfer_tokens"]


def dream_timesteps(steps: int, eps: float = 1e-3) -> torch.Tensor:
    """Dream's timesteps: linspace(1, eps, steps + 1) (float32, CPU)."""
    if steps < 1:
        raise ValueError(f"dllm_kernels.dream_timesteps: steps must be >= 1, got {steps}")
    return torch.linspace(1, eps, steps + 1)


def dream_num_transfer(mask_index: torch.Tensor, step: int, steps: int, eps: float = 1e-3) -> int:
    """k = int(mean_masked * (1 - s / t)) with t, s = timesteps[step], timesteps[step + 1]; at the
    last step every remaining masked token (int(mean_masked)).

    mean_masked is the masked count averaged over the batch, as Dream computes it, so every row
    gets the same k (pass it as select_transfer(num_transfer=k)). Note: this reads the mask
    count on the host (one device sync per step, as in Dream).

    Args:
        mask_index: [B, L] bool, True where still masked.
        step: 0 <= step < steps.
        steps: number of denoising steps.
        eps: Dream's final timestep.

    Returns:
        k (int).
    """
    if not 0 <= step < steps:
        raise ValueError(
            f"dllm_kernels.dream_num_transfer: step must be in [0, {steps}), got {step}"
        )
    mean_masked = float(mask_index.sum()) / mask_index.shape[0]
    if step == steps - 1:
        return int(mean_masked)
    t = dream_timesteps(steps, eps)
    s_over_t = float(t[step + 1] / t[step])
    return int(mean_masked * (1 - s_over_t))
