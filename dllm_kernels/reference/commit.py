"""Reference commit_: the write-back of a denoising step."""

from __future__ import annotations

import torch

from .. import _checks


def commit_(x: torch.Tensor, x0: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    """x[transfer] = x0[transfer], in place.

    Args:
        x: [B, L] int64 (or int32) token ids; positions where `transfer` is set are overwritten.
        x0: [B, L] candidate token ids, same dtype and device as `x`.
        transfer: [B, L] bool, True where the position commits its candidate.

    Returns:
        `x` (mutated).
    """
    _checks.commit_(x, x0, transfer)
    return x.copy_(torch.where(transfer, x0, x))  # no data-dependent shape (torch.compile-able)
