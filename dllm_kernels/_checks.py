"""Argument checks shared by the reference ops and the fake (meta) kernels.

They mirror csrc/torch/*.cpp so that every path (native CPU/CUDA, reference fallback, meta/fake
tensors under torch.compile) rejects the same inputs with a message naming the op and argument:
"dllm_kernels.<op>: <argument> <problem>, got <value>". Like TORCH_CHECK they raise RuntimeError.
"""

from __future__ import annotations

import operator

import torch
from torch._subclasses.fake_tensor import is_fake


def fail(op: str, arg: str, problem: str) -> None:
    raise RuntimeError(f"dllm_kernels.{op}: {arg} {problem}")


def check_tensor(t, op: str, arg: str) -> None:
    if not isinstance(t, torch.Tensor):
        fail(op, arg, f"must be a torch.Tensor, got {type(t).__name__}")


def check_dim(t: torch.Tensor, dim: int, op: str, arg: str) -> None:
    check_tensor(t, op, arg)
    if t.dim() != dim:
        fail(op, arg, f"must be {dim}-D, got shape {list(t.shape)}")


def check_dtype(t: torch.Tensor, dtypes, op: str, arg: str) -> None:
    dtypes = (dtypes,) if isinstance(dtypes, torch.dtype) else tuple(dtypes)
    if t.dtype not in dtypes:
        want = " or ".join(str(d) for d in dtypes)
        fail(op, arg, f"must have dtype {want}, got {t.dtype}")


def check_same_device(t: torch.Tensor, ref: torch.Tensor, op: str, arg: str, ref_arg: str) -> None:
    check_tensor(t, op, arg)
    if t.device != ref.device:
        fail(op, arg, f"must be on the same device as {ref_arg} ({ref.device}), got {t.device}")


def check_same_shape(t: torch.Tensor, ref: torch.Tensor, op: str, arg: str, ref_arg: str) -> None:
    if t.shape != ref.shape:
        fail(op, arg, f"must have the same shape as {ref_arg} {list(ref.shape)}, got {list(t.shape)}")


def check_writable(t: torch.Tensor, op: str, arg: str) -> None:
    # A zero stride on a dimension of size > 1 means several elements share memory (expand()).
    if any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape)):
        fail(op, arg, f"is written in place and must not have internal overlap (e.g. an expanded tensor), got strides {list(t.stride())}")


def check_no_overlap(out: torch.Tensor, inp: torch.Tensor, op: str, arg: str, out_arg: str) -> None:
    """`out` is written while `inp` is read: the very same view, or no shared memory."""
    if out.numel() == 0 or inp.numel() == 0 or out.device.type == "meta" or is_fake(out) or is_fake(inp):
        return  # no data to overlap (fake tensors are checked when they become real)
    if out.untyped_storage().data_ptr() != inp.untyped_storage().data_ptr():
        return
    if (out.dtype, out.storage_offset(), out.shape, out.stride()) == (inp.dtype, inp.storage_offset(), inp.shape, inp.stride()):
        return

    def span(t):  # [first, last) byte of t within its storage
        last = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
        return t.storage_offset() * t.element_size(), (last + 1) * t.element_size()

    (a0, a1), (b0, b1) = span(out), span(inp)
    if a0 < b1 and b0 < a1:
        fail(op, arg, f"must not share memory with {out_arg}, which is written in place (pass a copy)")


def as_int(value, op: str, arg: str) -> int:
    """An integer argument: int, numpy integer or 0-d integer tensor; never bool or float."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        fail(op, arg, f"must be an int, got {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        fail(op, arg, f"must be an int, got {type(value).__name__}")


# ---- per-op checks -------------------------------------------------------------------------------

def commit_(x, x0, transfer) -> None:
    op = "commit_"
    check_dim(x, 2, op, "x")
    check_dtype(x, (torch.int64, torch.int32), op, "x")
    check_same_device(x0, x, op, "x0", "x")
    check_same_device(transfer, x, op, "transfer", "x")
    check_dtype(x0, x.dtype, op, "x0")
    check_dtype(transfer, torch.bool, op, "transfer")
    check_same_shape(x0, x, op, "x0", "x")
    check_same_shape(transfer, x, op, "transfer", "x")
    check_writable(x, op, "x")
    check_no_overlap(x, x0, op, "x0", "x")
    check_no_overlap(x, transfer, op, "transfer", "x")


def num_transfer_tokens(mask_index, steps) -> int:
    """Checks the arguments; returns steps as a Python int."""
    op = "num_transfer_tokens"
    check_dim(mask_index, 2, op, "mask_index")
    check_dtype(mask_index, torch.bool, op, "mask_index")
    steps = as_int(steps, op, "steps")
    if steps < 1:
        fail(op, "steps", f"must be >= 1, got {steps}")
    return steps
