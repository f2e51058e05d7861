"""Argument checks of the reference ops: the Python mirror of csrc/torch/checks.cpp.

They run only where the reference runs (no extension, or a device without kernels); native and
fake (meta) calls are checked by the C++ checks alone. Same order and messages as the C++, so
that every path rejects the same inputs with the same text, naming the op and the argument:
"dllm_kernels.<op>: <argument> <problem>, got <value>" (the BAD tables in python_tests run every
path and prove it). Like TORCH_CHECK they raise RuntimeError. Python values are first converted
as the native path converts them (_args.py).
"""

from __future__ import annotations

import math

import torch
from torch._subclasses.fake_tensor import is_fake

from . import _args
from ._args import as_float, as_int, fail


def check_tensor(t, op: str, arg: str) -> None:
    if not isinstance(t, torch.Tensor):
        fail(op, arg, f"must be a torch.Tensor, got {type(t).__name__}")


def check_dim(t: torch.Tensor, dim: int, op: str, arg: str) -> None:
    check_tensor(t, op, arg)
    if t.dim() != dim:
        fail(op, arg, f"must be {dim}-D, got shape {list(t.shape)}")


_C10_NAMES = {
    torch.float32: "Float",
    torch.float64: "Double",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    torch.int64: "Long",
    torch.int32: "Int",
    torch.int16: "Short",
    torch.int8: "Char",
    torch.uint8: "Byte",
    torch.bool: "Bool",
}


def dtype_name(d: torch.dtype) -> str:
    """The dtype as torch's C++ prints it (Float, BFloat16, Long, ...), like the native checks."""
    return _C10_NAMES.get(d, str(d))


def check_dtype(t: torch.Tensor, dtypes, op: str, arg: str) -> None:
    dtypes = (dtypes,) if isinstance(dtypes, torch.dtype) else tuple(dtypes)
    if t.dtype not in dtypes:
        names = [dtype_name(d) for d in dtypes]
        want = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        fail(op, arg, f"must have dtype {want}, got {dtype_name(t.dtype)}")


def check_same_device(t: torch.Tensor, ref: torch.Tensor, op: str, arg: str, ref_arg: str) -> None:
    check_tensor(t, op, arg)
    if t.device != ref.device:
        fail(op, arg, f"must be on the same device as {ref_arg} ({ref.device}), got {t.device}")


def check_same_shape(t: torch.Tensor, ref: torch.Tensor, op: str, arg: str, ref_arg: str) -> None:
    if t.shape != ref.shape:
        fail(
            op, arg, f"must have the same shape as {ref_arg} {list(ref.shape)}, got {list(t.shape)}"
        )


def check_writable(t: torch.Tensor, op: str, arg: str) -> None:
    # A zero stride on a dimension of size > 1 means several elements share memory (expand()).
    if any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape)):
        fail(
            op,
            arg,
            "is written in place and must not have internal overlap (e.g. an expanded tensor), "
            f"got strides {list(t.stride())}",
        )


def byte_span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last) byte of t within its storage."""
    last = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return t.storage_offset() * t.element_size(), (last + 1) * t.element_size()


# Checks that read data pointers or values run eagerly under torch.compile
# (torch.compiler.disable): a pointer or a value read on the host is not a graph value; traced,
# dynamo would break the graph there and guard on it, recompiling for every new input tensor.
@torch.compiler.disable
def check_no_overlap(out: torch.Tensor, inp: torch.Tensor, op: str, arg: str, out_arg: str) -> None:
    """`out` is written while `inp` is read: the very same view, or no shared memory."""
    if (
        out.numel() == 0
        or inp.numel() == 0
        or out.device.type == "meta"
        or is_fake(out)
        or is_fake(inp)
    ):
        return  # no data to overlap (fake tensors are checked when they become real)
    if out.untyped_storage().data_ptr() != inp.untyped_storage().data_ptr():
        return
    if (out.dtype, out.storage_offset(), out.shape, out.stride()) == (
        inp.dtype,
        inp.storage_offset(),
        inp.shape,
        inp.stride(),
    ):
        return

    (a0, a1), (b0, b1) = byte_span(out), byte_span(inp)
    if a0 < b1 and b0 < a1:
        fail(
            op,
            arg,
            f"must not share memory with {out_arg}, which is written in place (pass a copy)",
        )


@torch.compiler.disable  # eager: see check_no_overlap
def check_disjoint(out: torch.Tensor, inp: torch.Tensor, op: str, arg: str, out_arg: str) -> None:
    """`inp` is read at other positions than `out` is written (scatter / gather): no shared
    memory at all, not even the very same view."""
    if (
        out.numel() == 0
        or inp.numel() == 0
        or out.device.type == "meta"
        or is_fake(out)
        or is_fake(inp)
    ):
        return
    if out.untyped_storage().data_ptr() != inp.untyped_storage().data_ptr():
        return

    (a0, a1), (b0, b1) = byte_span(out), byte_span(inp)
    if a0 < b1 and b0 < a1:
        fail(
            op,
            arg,
            f"must not share memory with {out_arg}, which is written in place (pass a copy)",
        )


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


def _choice(value, allowed, op, arg) -> None:
    if value not in allowed:
        fail(op, arg, f"must be one of {list(allowed)}, got {value!r}")


def seed_and_offset(seed, offset, op: str) -> tuple[int, int]:
    """seed None draws one from torch's default generator (host-side: no device sync)."""
    seed, offset = _args.seed_offset(seed, offset, op)
    if not 0 <= offset < 2**32:
        fail(op, "offset", f"must be in [0, 2^32), got {offset}")
    return seed, offset


def denoise_step(
    logits,
    x,
    mask_id,
    temperature,
    top_k,
    top_p,
    filter_order,
    confidence,
    confidence_source,
    suppress_tokens,
    seed,
    offset,
    op: str = "denoise_step",
    eligible=None,
    uncond_logits=None,
    cfg_scale=0.0,
) -> dict:
    """Checks every argument; returns the normalised ones (seed drawn if None, suppress tensor,
    mask_id -1 when eligible replaces it, cfg_scale a float)."""
    suppress = _args.suppress_ids(suppress_tokens, logits, op)
    check_dim(logits, 3, op, "logits")
    check_dtype(logits, (torch.float32, torch.bfloat16, torch.float16), op, "logits")
    if logits.shape[-1] < 1:
        fail(op, "logits", f"must have a vocabulary of at least 1, got shape {list(logits.shape)}")
    if logits.shape[-1] > 1 and logits.stride(-1) != 1:
        fail(
            op,
            "logits",
            f"must be contiguous in the last (vocabulary) dim, got strides {list(logits.stride())}",
        )
    check_dim(x, 2, op, "x")
    check_dtype(x, torch.int64, op, "x")
    check_same_device(x, logits, op, "x", "logits")
    if tuple(x.shape) != tuple(logits.shape[:2]):
        fail(
            op, "x", f"must have shape [B, L] like logits {list(logits.shape)}, got {list(x.shape)}"
        )
    if eligible is not None:
        check_tensor(eligible, op, "eligible")
        check_dtype(eligible, torch.bool, op, "eligible")
        check_same_device(eligible, logits, op, "eligible", "logits")
        if tuple(eligible.shape) != tuple(x.shape):
            fail(
                op,
                "eligible",
                f"must have shape [B, L] = {list(x.shape)} like x, got {list(eligible.shape)}",
            )
    mask_id = _args.mask_id(mask_id, eligible, op)
    if eligible is None and mask_id < 0:
        fail(op, "mask_id", f"must be >= 0, got {mask_id}")
    cfg_scale = as_float(cfg_scale, op, "cfg_scale")
    if uncond_logits is not None:
        check_tensor(uncond_logits, op, "uncond_logits")
        check_same_device(uncond_logits, logits, op, "uncond_logits", "logits")
        check_dtype(uncond_logits, logits.dtype, op, "uncond_logits")
        check_same_shape(uncond_logits, logits, op, "uncond_logits", "logits")
        if uncond_logits.shape[-1] > 1 and uncond_logits.stride(-1) != 1:
            fail(
                op,
                "uncond_logits",
                "must be contiguous in the last (vocabulary) dim, got strides "
                f"{list(uncond_logits.stride())}",
            )
        if not 0 <= cfg_scale < float("inf"):
            fail(op, "cfg_scale", f"must be finite and >= 0, got {cfg_scale}")
    elif cfg_scale != 0.0:
        fail(op, "cfg_scale", f"must be 0 without uncond_logits, got {cfg_scale}")
    temperature = as_float(temperature, op, "temperature")
    if not 0 <= temperature < float("inf"):
        fail(op, "temperature", f"must be finite and >= 0, got {temperature}")
    top_k = as_int(top_k, op, "top_k")
    if top_k < 0:
        fail(op, "top_k", f"must be >= 0 (0 = off), got {top_k}")
    top_p = as_float(top_p, op, "top_p")
    if not 0 < top_p <= 1:
        fail(op, "top_p", f"must be in (0, 1], got {top_p}")
    if filter_order not in ("top_k_first", "top_p_first"):
        fail(op, "filter_order", f"must be 'top_k_first' or 'top_p_first', got '{filter_order}'")
    if confidence not in ("prob", "margin", "neg_entropy", "random"):
        fail(
            op,
            "confidence",
            f"must be one of 'prob', 'margin', 'neg_entropy', 'random', got '{confidence}'",
        )
    if confidence_source not in ("raw", "sampling"):
        fail(op, "confidence_source", f"must be 'raw' or 'sampling', got '{confidence_source}'")
    if suppress is not None:
        s = suppress
        check_dim(s, 1, op, "suppress_tokens")
        check_dtype(s, torch.int64, op, "suppress_tokens")
        check_same_device(s, logits, op, "suppress_tokens", "logits")
        if s.numel() and s.stride(0) != 1:
            fail(op, "suppress_tokens", "must be contiguous")
        if s.device.type == "cpu" and s.numel():  # on other devices: see _args.suppress_ids
            lo, hi = int(s.min()), int(s.max())
            if not (lo >= 0 and hi < logits.shape[-1]):
                fail(
                    op,
                    "suppress_tokens",
                    f"must be token ids in [0, {logits.shape[-1]}), got {lo}..{hi}",
                )
    seed, offset = seed_and_offset(seed, offset, op)
    return {
        "mask_id": mask_id,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "suppress": suppress,
        "seed": seed,
        "offset": offset,
        "cfg_scale": cfg_scale,
    }


def select_transfer(
    conf,
    num_transfer,
    threshold,
    factor,
    probability,
    strict,
    seed,
    offset,
    op: str = "select_transfer",
    entropy_bound=None,
) -> dict:
    """Checks the arguments; returns {"kind", "value", "seed", "offset"} with value normalised
    (num_transfer: int64 [B] on conf's device; probability: float32 [B]; threshold / factor /
    entropy_bound: float)."""
    check_dim(conf, 2, op, "conf")
    check_dtype(conf, torch.float32, op, "conf")
    return select_rule(
        conf.shape[0],
        conf.device,
        num_transfer,
        threshold,
        factor,
        probability,
        strict,
        seed,
        offset,
        op,
        entropy_bound=entropy_bound,
    )


@torch.compiler.disable  # eager: see check_no_overlap
def nonnegative_k(value: torch.Tensor, op: str) -> None:
    """num_transfer >= 0 in every row (reads the values)."""
    if bool((value < 0).any()):
        fail(op, "num_transfer", f"must be >= 0, got {value.min().item()}")


def select_rule(
    B: int,
    device: torch.device,
    num_transfer,
    threshold,
    factor,
    probability,
    strict,
    seed,
    offset,
    op: str,
    entropy_bound=None,
) -> dict:
    """The selection-rule part of select_transfer's checks, for B rows on `device` (also used by
    denoise_and_select, before any confidence tensor exists)."""
    kind, v = _args.select_rule(
        num_transfer, threshold, factor, probability, strict, op, entropy_bound=entropy_bound
    )
    if kind in ("num_transfer", "probability"):
        value = _args.per_row(v, kind, B, device, op)
        check_dim(value, 1, op, kind)
        check_dtype(value, torch.int64 if kind == "num_transfer" else torch.float32, op, kind)
        if value.device != device:
            fail(op, kind, f"must be on the same device as conf ({device}), got {value.device}")
        if value.shape[0] != B:
            fail(op, kind, f"must have shape [B] = [{B}], got {list(value.shape)}")
        # k >= 0 is read on CPU only (no device sync): on CUDA a negative k selects nothing, like
        # k = 0 (and p outside [0, 1] acts as clipped).
        if kind == "num_transfer" and value.device.type == "cpu" and value.numel():
            nonnegative_k(value, op)
    else:
        value = as_float(v, op, kind)
        if value != value:
            fail(op, kind, "must not be NaN")
        if kind in ("factor", "entropy_bound") and not value > 0:
            fail(op, kind, f"must be > 0, got {value}")
    seed, offset = seed_and_offset(seed, offset, op) if kind == "probability" else (0, 0)
    return {"kind": kind, "value": value, "seed": seed, "offset": offset}


# ---- paged KV cache ops ------------------------------------------------------------------------

CACHE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _has_data(*tensors) -> bool:
    """Values can be read (not meta / fake tensors, which only carry shapes)."""
    return all(t.device.type != "meta" and not is_fake(t) for t in tensors)


@torch.compiler.disable  # eager: see check_no_overlap
def cache_pair_overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """k_cache and v_cache share memory? Never False when they do. Exact for separate tensors, the
    two halves of one [P, 2, S, H, D] allocation and layers of a bigger one; other interleavings
    are rejected conservatively. Mirrors cache_pair_overlaps in checks.cpp."""
    if not a.numel() or not b.numel() or not _has_data(a, b):
        return False
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False

    def extent(t, first):
        return 1 + sum((n - 1) * s for n, s in zip(t.shape[first:], t.stride()[first:]))

    oa, ob = a.storage_offset(), b.storage_offset()
    if oa + extent(a, 0) <= ob or ob + extent(b, 0) <= oa:
        return False
    period, page = a.stride(0), extent(a, 1)
    if a.stride() != b.stride() or a.shape != b.shape or period <= 0 or page > period:
        return True
    d = (oa - ob) % period
    return d < page or period - d < page


def cache_pair(k_cache, v_cache, op: str, written: bool) -> tuple[int, int, int, int]:
    """k_cache / v_cache [num_pages, page_size, H_kv, D]: checks them; returns (P, S, H, D)."""
    check_dim(k_cache, 4, op, "k_cache")
    check_dtype(k_cache, CACHE_DTYPES, op, "k_cache")
    check_tensor(v_cache, op, "v_cache")
    check_same_device(v_cache, k_cache, op, "v_cache", "k_cache")
    check_dtype(v_cache, k_cache.dtype, op, "v_cache")
    check_same_shape(v_cache, k_cache, op, "v_cache", "k_cache")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        if t.shape[-1] > 1 and t.stride(-1) != 1:
            fail(
                op,
                name,
                f"must be contiguous in the last (head_dim) dim, got strides {list(t.stride())}",
            )
        if written:
            check_writable(t, op, name)
    if written and cache_pair_overlaps(k_cache, v_cache):
        fail(
            op,
            "v_cache",
            "must not share memory with k_cache, which is written in place (pass a copy)",
        )
    P, S, H, D = k_cache.shape
    if P < 1 or S < 1 or H < 1 or D < 1:
        fail(
            op,
            "k_cache",
            f"must have num_pages, page_size, H_kv and D >= 1, got shape {list(k_cache.shape)}",
        )
    if H * D > 1 << 24:
        fail(
            op,
            "k_cache",
            f"must have H_kv * D <= 2^24 elements per token, got shape {list(k_cache.shape)}",
        )
    return P, S, H, D


def cache_write_(k_cache, v_cache, k, v, slot_mapping, check: bool) -> None:
    """Shapes, dtypes, devices and aliasing; with check=True (and real tensors) also the slots:
    below num_pages * page_size, each non-negative slot at most once."""
    op = "cache_write_"
    P, S, H, D = cache_pair(k_cache, v_cache, op, written=True)
    check_tensor(k, op, "k")
    if k.dim() not in (3, 4):
        fail(op, "k", f"must be [N, H_kv, D] or [B, L, H_kv, D], got shape {list(k.shape)}")
    if tuple(k.shape[-2:]) != (H, D):
        fail(op, "k", f"must end in [H_kv, D] = [{H}, {D}] like k_cache, got shape {list(k.shape)}")
    check_same_device(k, k_cache, op, "k", "k_cache")
    check_dtype(k, k_cache.dtype, op, "k")
    check_tensor(v, op, "v")
    check_same_device(v, k_cache, op, "v", "k_cache")
    check_dtype(v, k_cache.dtype, op, "v")
    check_same_shape(v, k, op, "v", "k")
    check_tensor(slot_mapping, op, "slot_mapping")
    check_dtype(slot_mapping, torch.int64, op, "slot_mapping")
    check_same_device(slot_mapping, k_cache, op, "slot_mapping", "k_cache")
    if tuple(slot_mapping.shape) != tuple(k.shape[:-2]):
        fail(
            op,
            "slot_mapping",
            f"must have the shape of k without [H_kv, D], {list(k.shape[:-2])}, got "
            f"{list(slot_mapping.shape)}",
        )
    for cache_name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
        for name, t in (("k", k), ("v", v), ("slot_mapping", slot_mapping)):
            check_disjoint(cache, t, op, name, cache_name)
    if not isinstance(check, bool):
        fail(op, "check", f"must be a bool, got {type(check).__name__}")
    if check and slot_mapping.numel() and _has_data(slot_mapping):
        slots = slot_mapping.reshape(-1).cpu()
        capacity = P * S
        bad = (slots >= capacity).nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            fail(
                op,
                "slot_mapping",
                f"holds slot {int(slots[i])} at flat index {i}, beyond the cache's "
                f"{capacity} slots (num_pages {P} x page_size {S}); nothing was written",
            )
        valid = slots[slots >= 0]
        uniq, counts = torch.unique(valid, return_counts=True)
        if bool((counts > 1).any()):
            dup = int(uniq[counts > 1][0])
            fail(
                op,
                "slot_mapping",
                f"holds slot {dup} more than once (each slot may be written once "
                "per call); nothing was written",
            )


def block_table(
    block_table,
    kv_lens,
    P: int,
    S: int,
    B: int | None,
    op: str,
    lens_arg: str = "kv_lens",
    values: bool = True,
) -> None:
    """block_table int32 [B, max_pages], lengths int32 [B]; with real tensors also the values:
    0 <= len <= max_pages * page_size, and the pages a row uses are page ids < num_pages."""
    check_dim(block_table, 2, op, "block_table")
    check_dtype(block_table, torch.int32, op, "block_table")
    check_dim(kv_lens, 1, op, lens_arg)
    check_dtype(kv_lens, torch.int32, op, lens_arg)
    check_same_device(kv_lens, block_table, op, lens_arg, "block_table")
    if B is not None and block_table.shape[0] != B:
        fail(op, "block_table", f"must have B = {B} rows, got shape {list(block_table.shape)}")
    if kv_lens.shape[0] != block_table.shape[0]:
        fail(
            op,
            lens_arg,
            f"must have shape [B] = [{block_table.shape[0]}] like block_table, got "
            f"{list(kv_lens.shape)}",
        )
    if values and kv_lens.numel() and _has_data(block_table, kv_lens):
        table_values(kv_lens, block_table, P, S, op, lens_arg)


@torch.compiler.disable  # eager: see check_no_overlap
def table_values(lens, table, P: int, S: int, op: str, lens_arg: str) -> None:
    """Row by row: 0 <= lens[b] <= max_pages * page_size, then the page ids row b uses are in
    [0, P) (reads both tensors: a device sync on CUDA). Mirrors check_table_values in checks.cpp."""
    lens, table = lens.cpu().long().tolist(), table.cpu().long()
    cap = table.shape[1] * S
    for b, n in enumerate(lens):
        if not 0 <= n <= cap:
            fail(
                op,
                f"{lens_arg}[{b}]",
                f"= {n} must be in [0, max_pages {table.shape[1]} x page_size {S} = {cap}]",
            )
        used = (n + S - 1) // S
        for j in range(used):
            page = int(table[b, j])
            if not 0 <= page < P:
                fail(
                    op,
                    f"block_table[{b}, {j}]",
                    f"= {page} is not a page id in [0, {P}) (row {b} uses its first {used} "
                    "entries)",
                )


def cache_gather(
    k_cache, v_cache, block_table_, kv_lens, max_len, values: bool = True
) -> int | None:
    """Checks the arguments (values=False: not the lengths / page ids, which the native op
    checks itself); returns max_len as an int (None: the caller takes max(kv_lens))."""
    op = "cache_gather"
    P, S, _, _ = cache_pair(k_cache, v_cache, op, written=False)
    check_tensor(block_table_, op, "block_table")
    check_same_device(block_table_, k_cache, op, "block_table", "k_cache")
    block_table(block_table_, kv_lens, P, S, None, op, values=values)
    if max_len is not None:
        max_len = as_int(max_len, op, "max_len")
        if max_len < 0:
            fail(op, "max_len", f"must be >= 0, got {max_len}")
    return max_len


def cache_copy_pages_(k_cache, v_cache, pairs) -> torch.Tensor:
    """pairs int64 [n, 2] (a sequence of (src, dst) is converted first): page ids in range, every
    dst distinct and not also a src (so the result does not depend on the order of the copies).
    Returns pairs as a tensor."""
    op = "cache_copy_pages_"
    P, _, _, _ = cache_pair(k_cache, v_cache, op, written=True)
    pairs = _args.page_pairs(pairs, k_cache.device, op)
    check_dtype(pairs, torch.int64, op, "pairs")
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        fail(op, "pairs", f"must be [n, 2] (src, dst), got shape {list(pairs.shape)}")
    check_same_device(pairs, k_cache, op, "pairs", "k_cache")
    check_disjoint(k_cache, pairs, op, "pairs", "k_cache")
    check_disjoint(v_cache, pairs, op, "pairs", "v_cache")
    if not pairs.numel() or not _has_data(pairs):
        return pairs
    p = pairs.cpu()
    bad = ((p < 0) | (p >= P)).nonzero()
    if bad.numel():
        i, j = int(bad[0, 0]), int(bad[0, 1])
        fail(op, f"pairs[{i}, {j}]", f"= {int(p[i, j])} is not a page id in [0, {P})")
    src, dst = p[:, 0].tolist(), p[:, 1].tolist()
    if len(set(dst)) != len(dst):
        fail(op, "pairs", "must not copy to the same dst page twice")
    both = set(src) & set(dst)
    if both:
        fail(
            op,
            "pairs",
            f"page {min(both)} is both a src and a dst (copies would depend on their order)",
        )
    return pairs


# ---- block_attention -----------------------------------------------------------------------------

ATTN_HEAD_DIMS = (64, 96, 128, 256)


@torch.compiler.disable  # eager: see check_no_overlap
def kv_lens_values(kv_lens, B: int, Lk: int, op: str) -> None:
    """0 <= kv_lens[b] <= Lk for every row (reads the values: a device sync on CUDA)."""
    kl = kv_lens.cpu().long()
    for b in range(B):
        if not 0 <= int(kl[b]) <= Lk:
            fail(op, f"kv_lens[{b}]", f"= {int(kl[b])} must be in [0, Lk = {Lk}]")


def _lens(t, B, device, op, arg):
    check_tensor(t, op, arg)
    check_dim(t, 1, op, arg)
    check_dtype(t, torch.int32, op, arg)
    if t.device != device:
        fail(op, arg, f"must be on the same device as q ({device}), got {t.device}")
    if t.shape[0] != B:
        fail(op, arg, f"must have shape [B] = [{B}], got {list(t.shape)}")


def block_attention(
    q,
    k,
    v,
    k_cache,
    v_cache,
    block_table_,
    cache_lens,
    kv_lens,
    q_start,
    mask,
    block_size,
    softmax_scale,
    op: str = "block_attention",
    values: bool = True,
) -> dict:
    """Checks every argument in the order csrc/torch/checks.cpp does (same messages); returns
    {"scale", "block_size", "Hkv", and cache_lens / kv_lens / q_start as int32 [B] tensors on q's
    device (defaults filled in)}. values: also read the lengths and the used page ids (a device
    sync on CUDA; skipped for fake tensors)."""
    check_dim(q, 4, op, "q")
    check_dtype(q, CACHE_DTYPES, op, "q")
    if q.device.type == "cuda" and q.dtype == torch.float32:
        fail(op, "q", "must be BFloat16 or Half on CUDA (Float attention is CPU only), got Float")
    B, Lq, Hq, D = q.shape
    if D not in ATTN_HEAD_DIMS:
        fail(op, "q", f"head_dim must be one of {list(ATTN_HEAD_DIMS)}, got {D}")
    if q.stride(-1) != 1:
        fail(
            op,
            "q",
            f"must be contiguous in the last (head_dim) dim, got strides {list(q.stride())}",
        )
    if Hq < 1:
        fail(op, "q", f"must have at least one head, got shape {list(q.shape)}")
    Hkv = None
    if (k is None) != (v is None):
        fail(op, "k/v", "must be given together")
    if k is not None:
        for name, t in (("k", k), ("v", v)):
            check_dim(t, 4, op, name)
            check_same_device(t, q, op, name, "q")
            check_dtype(t, q.dtype, op, name)
            if t.shape[-1] > 1 and t.stride(-1) != 1:
                fail(
                    op,
                    name,
                    "must be contiguous in the last (head_dim) dim, got strides "
                    f"{list(t.stride())}",
                )
        if k.shape[0] != B or k.shape[3] != D:
            fail(
                op, "k", f"must be [B, Lk, Hkv, D] with B = {B}, D = {D}, got shape {list(k.shape)}"
            )
        check_same_shape(v, k, op, "v", "k")
        Hkv = k.shape[2]
    has_cache = k_cache is not None or v_cache is not None or block_table_ is not None
    if has_cache:
        if k_cache is None or v_cache is None or block_table_ is None:
            fail(op, "k_cache/v_cache/block_table", "must be given together")
        check_same_device(k_cache, q, op, "k_cache", "q")
        P, S, Hc, Dc = cache_pair(k_cache, v_cache, op, written=False)
        check_dtype(k_cache, q.dtype, op, "k_cache")
        if Dc != D:
            fail(
                op, "k_cache", f"must have head_dim D = {D} like q, got shape {list(k_cache.shape)}"
            )
        if Hkv is not None and Hc != Hkv:
            fail(
                op,
                "k_cache",
                f"must have Hkv = {Hkv} heads like k, got shape {list(k_cache.shape)}",
            )
        Hkv = Hc
        check_tensor(block_table_, op, "block_table")
        check_same_device(block_table_, q, op, "block_table", "q")
        check_dim(block_table_, 2, op, "block_table")
        check_dtype(block_table_, torch.int32, op, "block_table")
        if block_table_.shape[0] != B:
            fail(op, "block_table", f"must have B = {B} rows, got shape {list(block_table_.shape)}")
    elif cache_lens is not None:
        fail(op, "cache_lens", "needs k_cache / v_cache / block_table")
    if Hkv is None:
        Hkv = Hq  # no keys at all: every query sees nothing
    if Hkv < 1 or Hq % Hkv:
        fail(op, "q", f"heads Hq = {Hq} must be a multiple of the key/value heads Hkv = {Hkv}")
    Lk = k.shape[1] if k is not None else 0
    keys = (block_table_.shape[1] * S if has_cache else 0) + Lk
    if keys >= 1 << 31:
        fail(
            op,
            "k/k_cache",
            f"at most 2^31 - 1 keys per row (max_pages x page_size + Lk), got {keys}",
        )
    dev = q.device
    if cache_lens is None:
        cache_lens = torch.zeros(B, dtype=torch.int32, device=dev)
    else:
        _lens(cache_lens, B, dev, op, "cache_lens")
    if kv_lens is None:
        kv_lens = torch.full((B,), Lk, dtype=torch.int32, device=dev)
    else:
        if k is None:
            fail(op, "kv_lens", "needs k / v")
        _lens(kv_lens, B, dev, op, "kv_lens")
    if q_start is None:
        q_start = cache_lens
    else:
        _lens(q_start, B, dev, op, "q_start")
    _choice(mask, ("full", "block_causal"), op, "mask")
    block_size = _args.block_size(mask, block_size, op)  # 1 (unused) with the full mask
    if not 1 <= block_size <= 1 << 62:
        fail(op, "block_size", f"must be in [1, 2^62], got {block_size}")
    scale = _args.softmax_scale(softmax_scale, q, op)
    if not (math.isfinite(scale) and abs(scale) <= 3.4028234663852886e38):
        fail(op, "softmax_scale", f"must be finite (as float32), got {scale}")
    if values and B and _has_data(cache_lens, kv_lens, *([block_table_] if has_cache else [])):
        if has_cache:
            table_values(cache_lens, block_table_, P, S, op, "cache_lens")
        if k is not None:
            kv_lens_values(kv_lens, B, Lk, op)
    return {
        "scale": scale,
        "block_size": block_size,
        "cache_lens": cache_lens,
        "kv_lens": kv_lens,
        "q_start": q_start,
        "Hkv": Hkv,
    }


def denoise_and_select_extras(
    x, eligible, confidence, rule_kind, commit, renoise, op: str = "denoise_and_select"
) -> None:
    """denoise_and_select's own checks beyond denoise_step's and select_rule's: entropy_bound
    reads entropies (confidence="neg_entropy"); renoise needs commit=True and eligible; a
    committed x must not share memory with eligible."""
    if rule_kind == "entropy_bound" and confidence != "neg_entropy":
        fail(op, "entropy_bound", f"needs confidence='neg_entropy', got {confidence!r}")
    if not isinstance(renoise, bool):
        fail(op, "renoise", f"must be a bool, got {type(renoise).__name__}")
    if renoise and not commit:
        fail(op, "renoise", "needs commit=True (it writes x)")
    if renoise and eligible is None:
        fail(op, "renoise", "needs eligible (the positions renoised when not transferred)")
    if commit and eligible is not None:
        check_no_overlap(x, eligible, op, "eligible", "x")
