"""Reference num_transfer_tokens: LLaDA's linear transfer schedule."""

from __future__ import annotations

import torch

from .. import _checks


def num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """n[b, i] = floor(M_b / steps) + (1 if i < M_b mod steps else 0), M_b = mask_index[b].sum().

    Row b commits exactly M_b tokens over `steps` denoising steps; the remainder goes to the
    earliest steps.

    Args:
        mask_index: [B, L] bool, True where the position is still masked.
        steps: number of denoising steps (>= 1).

    Returns:
        [B, steps] int64 on the device of `mask_index`.
    """
    steps = _checks.num_transfer_tokens(mask_index, steps)
    masked = mask_index.sum(dim=1, keepdim=True)  # [B, 1] M_b
    base = masked // steps  # [B, 1]
    remainder = masked % steps  # [B, 1]
    step = torch.arange(steps, device=mask_index.device)  # [steps]
    return base + (step < remainder).to(torch.int64)  # [B, steps]
