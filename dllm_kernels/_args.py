"""Argument normalisation: the Python values the public ops accept -> what the op schemas take.

Shared by the native path of ops.py and the reference checks (_checks.py), so that both convert,
and reject what cannot be converted, with the same messages. Nothing here is a check of a rule the
C++ checks (csrc/torch/checks.cpp) make, with one exception, stated in ops.py's header: a value the
C++ checks cannot read without a device sync once it is a tensor (suppress ids and a scalar
num_transfer converted for a non-CPU device) or whose rule only exists for the Python form (a
scalar probability in [0, 1]) is checked here while it is converted.
"""

from __future__ import annotations

import operator

import torch


def fail(op: str, arg: str, problem: str) -> None:
    """Raises RuntimeError("dllm_kernels.<op>: <arg> <problem>"), like TORCH_CHECK."""
    raise RuntimeError(f"dllm_kernels.{op}: {arg} {problem}")


def as_int(value, op: str, arg: str) -> int:
    """An integer argument: int, numpy integer or 0-d integer tensor; never bool or float."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        fail(op, arg, f"must be an int, got {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        fail(op, arg, f"must be an int, got {type(value).__name__}")


def as_float(value, op: str, arg: str) -> float:
    """A float argument: int, float, numpy float or 0-d tensor; never bool. NaN passes (the range
    checks reject it, naming the range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy floats, 0-d tensors
        except (TypeError, ValueError):
            fail(op, arg, f"must be a number, got {type(value).__name__}")
    return float(value)


def seed_offset(seed, offset, op: str) -> tuple[int, int]:
    """(seed as uint64, offset as int); seed None draws one from torch's default generator
    (host-side: no device sync). The offset's range is checked by the op."""
    if seed is None:
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
    return as_int(seed, op, "seed") & ((1 << 64) - 1), as_int(offset, op, "offset")


def mask_id(value, eligible, op: str) -> int:
    """mask_id as an int; with eligible (which replaces x == mask_id) it is unused: None -> -1."""
    if eligible is not None and value is None:
        return -1
    return as_int(value, op, "mask_id")


def signed64(seed: int) -> int:
    """The uint64 seed as the two's-complement int64 the schemas carry."""
    return seed - (1 << 64) if seed >= (1 << 63) else seed


def suppress_ids(suppress_tokens, logits, op: str) -> torch.Tensor | None:
    """suppress_tokens as the schema's Tensor? (int64 [n] on logits' device, None if empty).

    A 1-D int64 tensor on logits' device is used as given (made contiguous). Anything else (a
    sequence of ints, a tensor on another device or of another integer dtype) is converted to a
    sorted tensor of unique ids on logits' device; its ids are checked here to be in [0, V) unless
    logits are on the CPU, where the op's checks read them (on another device they could not
    without a sync)."""
    if suppress_tokens is None or not isinstance(logits, torch.Tensor):
        return suppress_tokens
    if (
        isinstance(suppress_tokens, torch.Tensor)
        and suppress_tokens.dtype == torch.int64
        and suppress_tokens.dim() == 1
        and suppress_tokens.device == logits.device
    ):
        return suppress_tokens.contiguous() if suppress_tokens.numel() else None
    if isinstance(suppress_tokens, torch.Tensor):
        if suppress_tokens.dtype not in (torch.int64, torch.int32) or suppress_tokens.dim() > 1:
            fail(
                op,
                "suppress_tokens",
                "must be a 1-D int tensor or a sequence of ints, got "
                f"{suppress_tokens.dtype} {list(suppress_tokens.shape)}",
            )
        ids = [int(t) for t in suppress_tokens.reshape(-1).tolist()]
    else:
        seq = suppress_tokens if hasattr(suppress_tokens, "__iter__") else [suppress_tokens]
        ids = [as_int(t, op, "suppress_tokens") for t in seq]
    if not ids:
        return None
    if logits.device.type != "cpu" and logits.dim() == 3:
        V = logits.shape[-1]
        if not 0 <= min(ids) <= max(ids) < V:
            fail(
                op, "suppress_tokens", f"must be token ids in [0, {V}), got {min(ids)}..{max(ids)}"
            )
    return torch.tensor(sorted(set(ids)), dtype=torch.int64, device=logits.device)


RULES = ("num_transfer", "threshold", "factor", "probability", "entropy_bound")


def select_rule(
    num_transfer, threshold, factor, probability, strict, op: str, entropy_bound=None
) -> tuple[str, object]:
    """The one selection rule given as a keyword: (its name, its value as given)."""
    given = [
        (name, v)
        for name, v in zip(RULES, (num_transfer, threshold, factor, probability, entropy_bound))
        if v is not None
    ]
    if len(given) != 1:
        fail(
            op,
            "num_transfer/threshold/factor/probability/entropy_bound",
            f"exactly one selection rule must be given, got {[n for n, _ in given] or 'none'}",
        )
    if not isinstance(strict, bool):
        fail(op, "strict", f"must be a bool, got {type(strict).__name__}")
    return given[0]


def per_row(value, kind: str, B: int, device: torch.device, op: str) -> torch.Tensor:
    """num_transfer / probability as the schema's per-row tensor ([B] int64 / float32).

    A tensor of dim >= 1 is passed on (int32 -> int64, float64 -> float32; its shape, dtype,
    device and values are the op's to check). A scalar is converted to a [B] tensor on `device`;
    a probability must be in [0, 1], a num_transfer >= 0 (checked here unless `device` is the CPU,
    where the op reads the tensor)."""
    if isinstance(value, torch.Tensor) and value.dim() >= 1:
        if kind == "num_transfer" and value.dtype == torch.int32:
            return value.long()
        if kind == "probability" and value.dtype == torch.float64:
            return value.float()
        return value
    if kind == "num_transfer":
        k = as_int(value, op, kind)
        if k < 0 and device.type != "cpu":
            fail(op, "num_transfer", f"must be >= 0, got {k}")
        return torch.full((B,), k, dtype=torch.int64, device=device)
    p = as_float(value, op, kind)
    if p != p:
        fail(op, "probability", "must not be NaN")
    if not 0 <= p <= 1:
        fail(op, "probability", f"must be in [0, 1], got {p}")
    return torch.full((B,), p, dtype=torch.float32, device=device)


def page_pairs(pairs, device: torch.device, op: str = "cache_copy_pages_"):
    """A sequence of (src, dst) page ids as an int64 [n, 2] tensor on `device`; a tensor as given
    (its checks are the op's)."""
    if isinstance(pairs, torch.Tensor):
        return pairs
    try:
        rows = [(as_int(s, op, "pairs"), as_int(d, op, "pairs")) for s, d in pairs]
    except (TypeError, ValueError):
        fail(op, "pairs", "must be an int64 [n, 2] tensor or a sequence of (src, dst) page ids")
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 2).to(device)


def block_size(mask, value, op: str) -> int:
    """block_size as an int: required by mask='block_causal', unused (1) by the full mask."""
    if mask != "block_causal":
        return 1
    if value is None:
        fail(op, "block_size", "is required with mask='block_causal'")
    return as_int(value, op, "block_size")


def softmax_scale(value, q, op: str) -> float:
    """softmax_scale as a float; None: D ** -0.5 with D = q's last size."""
    if value is None:
        return q.shape[-1] ** -0.5 if isinstance(q, torch.Tensor) and q.dim() else 1.0
    if isinstance(value, (bool, str)):
        fail(op, "softmax_scale", f"must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError):
        fail(op, "softmax_scale", f"must be a number, got {type(value).__name__}")
