"""Public ops. Each runs the compiled kernel (torch.ops.dllm_kernels.<op>) for CPU and CUDA
tensors when the extension is loaded, else the reference in dllm_kernels.reference.

Each op also has a fake (meta) implementation registered here, so it traces under torch.compile
and torch.export; the fake checks arguments like the kernels do.
"""

from __future__ import annotations

import warnings

import torch

from . import _checks, reference
from ._native import NATIVE, NATIVE_CUDA

_warned_devices: set[str] = set()


def _use_native(*tensors: torch.Tensor) -> bool:
    """True when the compiled op can run on the tensors' devices; warns once per device type
    otherwise. Mixed devices go to the reference, whose checks name the misplaced argument."""
    if not NATIVE:
        return False  # the import already warned
    kinds = {t.device.type for t in tensors if isinstance(t, torch.Tensor)}
    supported = {"cpu", "meta"} | ({"cuda"} if NATIVE_CUDA else set())
    if kinds <= supported:
        return True
    for kind in sorted(kinds - supported):
        if kind not in _warned_devices:
            _warned_devices.add(kind)
            why = "was built without CUDA" if kind == "cuda" else f"has no {kind} kernels"
            warnings.warn(f"dllm_kernels._C {why}; using the reference ops on {kind} (slow).",
                          RuntimeWarning, stacklevel=3)
    return False


def commit_(x: torch.Tensor, x0: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    """x[transfer] = x0[transfer], in place, in one pass with no host synchronisation.

    Args:
        x: [B, L] int64 (or int32) token ids, any strides (e.g. a slice of a longer sequence);
            written in place.
        x0: [B, L] candidate token ids, same dtype and device as `x`.
        transfer: [B, L] bool, True where the position commits its candidate.

    Returns:
        `x`, mutated.
    """
    if _use_native(x, x0, transfer):
        torch.ops.dllm_kernels.commit_(x, x0, transfer)
        return x
    return reference.commit_(x, x0, transfer)


def num_transfer_tokens(mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    """n[b, i] = floor(M_b / steps) + (1 if i < M_b mod steps else 0), M_b = mask_index[b].sum().

    LLaDA's linear schedule: how many masked tokens row b commits at each of `steps` steps.

    Args:
        mask_index: [B, L] bool, True where masked; any strides.
        steps: number of denoising steps, an int >= 1 (numpy ints and 0-d tensors accepted).

    Returns:
        [B, steps] int64 on the device of `mask_index`.
    """
    if _use_native(mask_index):
        steps = _checks.as_int(steps, "num_transfer_tokens", "steps")  # numpy / 0-d tensor ok
        return torch.ops.dllm_kernels.num_transfer_tokens(mask_index, steps)
    return reference.num_transfer_tokens(mask_index, steps)


# ---- fake (meta) implementations: shapes, dtypes and argument checks, no data -------------------
if NATIVE:

    @torch.library.register_fake("dllm_kernels::commit_")
    def _commit_fake(x, x0, transfer):
        _checks.commit_(x, x0, transfer)
        return None

    @torch.library.register_fake("dllm_kernels::num_transfer_tokens")
    def _num_transfer_tokens_fake(mask_index, steps):
        _checks.num_transfer_tokens(mask_index, steps)
        return mask_index.new_empty((mask_index.shape[0], steps), dtype=torch.int64)
