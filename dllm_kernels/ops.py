"""Public ops. Each runs the compiled kernel (torch.ops.dllm_kernels.<op>) for CPU and CUDA
tensors when the extension is loaded, else the reference in dllm_kernels.reference.

Argument checks have one source per path. A native call (CPU, CUDA, or meta / fake tensors under
torch.compile and torch.export, which run the Meta kernels of csrc/torch/meta.cpp) is checked by
the C++ checks alone (csrc/torch/checks.cpp); a reference call by dllm_kernels/_checks.py, their
mirror with the same messages. This module only normalises arguments into what the op schemas
take (dllm_kernels/_args.py).
"""

# The rule this module follows: on the native path it never checks what the C++ checks check. It
# converts Python values into schema values (ints from numpy ints / 0-d tensors, a drawn seed,
# a suppress list or a scalar num_transfer / probability into a tensor, page-pair lists into a
# tensor, the default softmax scale, the one selection rule given as a keyword) and reports what
# cannot be converted (a float given for an int, two selection rules, no block_size for
# mask='block_causal'). One kind of value check happens while converting, because the C++ checks
# cannot make it: the values of a Python list or scalar that becomes a tensor the op does not read
# (ids or counts on a non-CPU device: reading them would be a device sync; a probability scalar,
# whose [0, 1] rule the per-row tensor does not have). python_tests/test_backend.py proves that
# no _checks function runs on the native path. (_checks is called here only by the reference
# branch of denoise_and_select, so that a bad selection fails before anything runs.)

from __future__ import annotations

import warnings

import torch

from . import _args, reference
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
            warnings.warn(
                f"dllm_kernels._C {why}; using the reference ops on {kind} (slow).",
                RuntimeWarning,
                stacklevel=3,
            )
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
        steps = _args.as_int(steps, "num_transfer_tokens", "steps")  # numpy / 0-d tensor ok
        return torch.ops.dllm_kernels.num_transfer_tokens(mask_index, steps)
    return reference.num_transfer_tokens(mask_index, steps)


def denoise_step(
    logits: torch.Tensor,
    x: torch.Tensor,
    mask_id: int,
    *,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    filter_order: str = "top_k_first",
    confidence: str = "prob",
    confidence_source: str = "raw",
    shift_logits: bool = False,
    suppress_tokens=None,
    seed: int | None = None,
    offset: int = 0,
    eligible: torch.Tensor | None = None,
    uncond_logits: torch.Tensor | None = None,
    cfg_scale: float = 0.0,
    return_argmax: bool = False,
    group=None,
    vocab_start: int = 0,
) -> tuple[torch.Tensor, ...]:
    """x0 = argmax (T = 0) or Gumbel-max sample (T > 0) of softmax(filter(z / T)) per masked
    (or eligible) position, and its confidence; one pass over each such position's logits.
    With CFG z = u + (s + 1)(c - u) is formed on the fly in that pass (no [B, L, V] temporary).

    The full semantics (filters, confidences, NaN/inf handling, RNG streams) are those of
    dllm_kernels.reference.denoise_step, the specification.

    Args:
        logits: [B, L, V] float32/bfloat16/float16; V contiguous, any strides on B and L (a slice
            such as full_logits[:, start:end] is read in place).
        x: [B, L] int64 current tokens; masked where x == mask_id.
        mask_id: the mask token id; unused (may be None) when `eligible` is given.
        temperature: 0 = argmax; > 0 samples from softmax(filter(z / T)) with Philox noise.
        top_k, top_p, filter_order: the filters (0 / 1 = off); "top_k_first" or "top_p_first".
        confidence: "prob" | "margin" | "neg_entropy" | "random".
        confidence_source: "raw" (softmax of the raw logits) | "sampling" (the filtered one).
        shift_logits: position l reads the logits of l - 1 (Dream, Fast-dLLM v2).
        suppress_tokens: ids never produced (e.g. EOS): a sequence of ints (checked, sorted and
            copied to the device per call), or a 1-D int64 tensor on the logits' device of
            in-range ids, used with no device sync (its values are not checked; make it once).
        seed, offset: the Philox stream; seed None draws one from torch's default generator.
        eligible: None (the mask path) or bool [B, L] on x's device, any strides: the positions
            denoised, replacing x == mask_id (uniform-noise canvases, token editing).
        uncond_logits: None or the unconditional logits u: like `logits` (same shape, dtype and
            device, V contiguous, own strides).
        cfg_scale: s >= 0 (LLaDA's cfg_scale); z = u + (s + 1)(c - u) in float32; 0 reads the
            conditional logits unchanged. Must be 0 without uncond_logits.
        return_argmax: also return argmax [B, L] int64, the first id maximising z (after CFG,
            suppress_tokens and sanitising; before temperature and filters), x where not
            denoised or where every z is -inf; formed in the same call (DiffusionGemma's argmax
            canvas at T > 0, where x0 is a sample).
        group, vocab_start: tensor parallelism (dllm_kernels.tp): logits (and uncond_logits)
            are this rank's vocabulary shard [B, L, V_shard], tokens [vocab_start, vocab_start
            + V_shard) (vocab_start a multiple of 4), of the torch.distributed group `group`; the
            result is the whole vocabulary's, bit for bit, on every rank, without gathering the
            logits. suppress_tokens and mask_id stay global ids.

    Returns:
        x0: [B, L] int64 (x where not denoised); conf: [B, L] float32 (-inf where not denoised);
        with return_argmax also argmax: [B, L] int64.
    """
    op = "denoise_step"
    # Keyword options of the sharded op and of the reference.
    named = dict(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        filter_order=filter_order,
        confidence=confidence,
        confidence_source=confidence_source,
        shift_logits=shift_logits,
        suppress_tokens=suppress_tokens,
        seed=seed,
        offset=offset,
        eligible=eligible,
        uncond_logits=uncond_logits,
        cfg_scale=cfg_scale,
        return_argmax=bool(return_argmax),
    )
    if group is not None:
        from . import tp

        return tp.denoise_step(logits, x, mask_id, group=group, vocab_start=vocab_start, **named)
    _no_shard(vocab_start, op)
    if _use_native(logits, x, eligible, uncond_logits):
        argmax = _argmax_out(x, return_argmax)
        out = torch.ops.dllm_kernels.denoise_step(
            logits,
            x,
            *_denoise_args(
                logits,
                mask_id,
                temperature,
                top_k,
                top_p,
                filter_order,
                confidence,
                confidence_source,
                shift_logits,
                suppress_tokens,
                op,
                eligible,
            ),
            *_seed_args(seed, offset, op),
            eligible,
            uncond_logits,
            _args.as_float(cfg_scale, op, "cfg_scale"),
            argmax,
        )
        return (*out, argmax) if return_argmax else out
    return reference.denoise_step(logits, x, mask_id, **named)


def _no_shard(vocab_start, op: str) -> None:
    """vocab_start means a shard: it needs a group."""
    if vocab_start not in (0, None):
        raise ValueError(
            f"dllm_kernels.{op}: vocab_start={vocab_start} needs group= (the process group whose "
            "ranks hold the other vocabulary shards)"
        )


def _argmax_out(x, return_argmax) -> torch.Tensor | None:
    """return_argmax's output buffer [B, L] int64 (the op writes it), or None."""
    if not return_argmax or not isinstance(x, torch.Tensor):
        return None
    return torch.empty(x.shape, dtype=torch.int64, device=x.device)


def _denoise_args(
    logits,
    mask_id,
    temperature,
    top_k,
    top_p,
    filter_order,
    confidence,
    confidence_source,
    shift_logits,
    suppress_tokens,
    op: str,
    eligible=None,
) -> tuple:
    """denoise_step's schema arguments after x (up to suppress_tokens), normalised (mask_id None
    with eligible: -1, unused)."""
    return (
        _args.mask_id(mask_id, eligible, op),
        _args.as_float(temperature, op, "temperature"),
        _args.as_int(top_k, op, "top_k"),
        _args.as_float(top_p, op, "top_p"),
        filter_order,
        confidence,
        confidence_source,
        bool(shift_logits),
        _args.suppress_ids(suppress_tokens, logits, op),
    )


def _seed_args(seed, offset, op: str) -> tuple[int, int]:
    """(seed, offset) for a schema: seed None drawn, as the int64 the schema carries."""
    seed, offset = _args.seed_offset(seed, offset, op)
    return _args.signed64(seed), offset


def _select_args(
    conf_rows: torch.Tensor,
    num_transfer,
    threshold,
    factor,
    probability,
    strict,
    op: str,
    entropy_bound=None,
) -> tuple:
    """(rule, per_row, value) of the select_transfer schema; B and device from conf_rows (conf,
    or x for denoise_and_select)."""
    kind, v = _args.select_rule(
        num_transfer, threshold, factor, probability, strict, op, entropy_bound=entropy_bound
    )
    if kind in ("threshold", "factor", "entropy_bound"):
        return kind, None, _args.as_float(v, op, kind)
    B = conf_rows.shape[0] if isinstance(conf_rows, torch.Tensor) and conf_rows.dim() else 0
    device = conf_rows.device if isinstance(conf_rows, torch.Tensor) else torch.device("cpu")
    return kind, _args.per_row(v, kind, B, device, op), 0.0


def select_transfer(
    conf: torch.Tensor,
    *,
    num_transfer=None,
    threshold=None,
    factor=None,
    probability=None,
    entropy_bound=None,
    strict: bool = False,
    seed: int | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """transfer[b, l]: which eligible positions (conf > -inf) commit, by exactly one rule.

    num_transfer=k (int or int64 [B]): the k most confident per row; threshold=tau: conf >= tau
    (> with strict) plus the row's best; factor=f: Fast-dLLM's factor rule; probability=p (float
    or float [B]): each eligible position with probability p; entropy_bound=gamma > 0 (conf from
    confidence="neg_entropy", H = -conf): in ascending H, every k with
    sum_{j<=k} H_j - max_{j<=k} H_j <= gamma (transformers' EntropyBoundSampler.accept_canvas).
    Ties go to the lower position. See dllm_kernels.reference.select_transfer for the exact rules.

    Args:
        conf: [B, L] float32, -inf where not eligible (as denoise_step returns).

    Returns:
        [B, L] bool. No device -> host synchronisation (CUDA-graph capturable for fixed shapes).
    """
    if _use_native(conf, *(v for v in (num_transfer, probability) if isinstance(v, torch.Tensor))):
        op = "select_transfer"
        rule, per_row, value = _select_args(
            conf, num_transfer, threshold, factor, probability, strict, op, entropy_bound
        )
        # seed and offset only feed the probability rule (its stream), as in the reference
        seed, offset = _seed_args(seed, offset, op) if rule == "probability" else (0, 0)
        return torch.ops.dllm_kernels.select_transfer(
            conf, rule, per_row, value, strict, seed, offset
        )
    return reference.select_transfer(
        conf,
        num_transfer=num_transfer,
        threshold=threshold,
        factor=factor,
        probability=probability,
        entropy_bound=entropy_bound,
        strict=strict,
        seed=seed,
        offset=offset,
    )


def denoise_and_select(
    logits: torch.Tensor,
    x: torch.Tensor,
    mask_id: int,
    *,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    filter_order: str = "top_k_first",
    confidence: str = "prob",
    confidence_source: str = "raw",
    shift_logits: bool = False,
    suppress_tokens=None,
    num_transfer=None,
    threshold=None,
    factor=None,
    probability=None,
    strict: bool = False,
    commit: bool = False,
    seed: int | None = None,
    offset: int = 0,
    eligible: torch.Tensor | None = None,
    uncond_logits: torch.Tensor | None = None,
    cfg_scale: float = 0.0,
    entropy_bound=None,
    renoise: bool = False,
    return_argmax: bool = False,
    group=None,
    vocab_start: int = 0,
):
    """denoise_step then select_transfer in one call (same seed and offset for both); with
    commit=True also x[transfer] = x0[transfer] in place; with renoise=True (needs commit and
    eligible) also x[eligible & ~transfer] = a token uniform on [0, V) from Philox (slot
    SLOT_RENOISE of the same seed / offset): DiffusionGemma's accept + renoise in one call.

    eligible, uncond_logits, cfg_scale: as in denoise_step. entropy_bound: select_transfer's EB
    rule (needs confidence="neg_entropy"). return_argmax: as in denoise_step (of x before the
    commit / renoise). See dllm_kernels.reference.denoise_and_select. group, vocab_start: as in
    denoise_step (tensor parallelism over vocabulary shards; renoise draws from the whole
    vocabulary).

    Returns:
        (x0 [B, L] int64 (candidates, before renoise), conf [B, L] float32, transfer [B, L] bool),
        and argmax [B, L] int64 last with return_argmax.
    """
    per_row_tensors = [v for v in (num_transfer, probability) if isinstance(v, torch.Tensor)]
    op = "denoise_and_select"
    if group is not None or not _use_native(logits, x, eligible, uncond_logits, *per_row_tensors):
        # Keyword options of the sharded op and of the reference (which checks them itself).
        named = dict(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            filter_order=filter_order,
            confidence=confidence,
            confidence_source=confidence_source,
            shift_logits=shift_logits,
            suppress_tokens=suppress_tokens,
            num_transfer=num_transfer,
            threshold=threshold,
            factor=factor,
            probability=probability,
            entropy_bound=entropy_bound,
            strict=strict,
            commit=commit,
            seed=seed,
            offset=offset,
            eligible=eligible,
            uncond_logits=uncond_logits,
            cfg_scale=cfg_scale,
            renoise=renoise,
            return_argmax=bool(return_argmax),
        )
        if group is not None:
            from . import tp

            return tp.denoise_and_select(
                logits, x, mask_id, group=group, vocab_start=vocab_start, **named
            )
        _no_shard(vocab_start, op)
        return reference.denoise_and_select(logits, x, mask_id, **named)  # checks everything
    _no_shard(vocab_start, op)
    argmax = _argmax_out(x, return_argmax)
    out = torch.ops.dllm_kernels.denoise_and_select(
        logits,
        x,
        *_denoise_args(
            logits,
            mask_id,
            temperature,
            top_k,
            top_p,
            filter_order,
            confidence,
            confidence_source,
            shift_logits,
            suppress_tokens,
            op,
            eligible,
        ),
        *_select_args(x, num_transfer, threshold, factor, probability, strict, op, entropy_bound),
        strict,
        bool(commit),
        *_seed_args(seed, offset, op),
        eligible,
        uncond_logits,
        _args.as_float(cfg_scale, op, "cfg_scale"),
        bool(renoise),
        argmax,
    )
    return (*out, argmax) if return_argmax else out


# ---- paged KV cache ------------------------------------------------------------------------------


def cache_write_(
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slot_mapping: torch.Tensor,
    *,
    check: bool = True,
) -> None:
    """k_cache[s // S, s % S] = k[i], v_cache[s // S, s % S] = v[i] for each
    s = slot_mapping[i] >= 0.

    Writing a slot again overwrites it (a dLLM block refreshed in place).

    Args:
        k_cache, v_cache: [num_pages, page_size, H_kv, D] float32/bfloat16/float16, head_dim
            contiguous, any other strides; written in place.
        k, v: [N, H_kv, D] or [B, L, H_kv, D], the cache's dtype, any strides (views of a fused
            qkv tensor are read in place).
        slot_mapping: int64 [N] or [B, L] (k's leading shape): slot = page * page_size + offset;
            < 0 skips the token (padding).
        check: True (default) rejects a slot >= num_pages * page_size or a repeated slot before
            anything is written; on CUDA that reads slot_mapping back (a device sync). False (the
            per-step path, for mappings built by PagedKVCache): no sync; such slots are skipped,
            never written out of bounds (a repeated slot then holds an undefined mix).
    """
    if _use_native(k_cache, v_cache, k, v, slot_mapping):
        torch.ops.dllm_kernels.cache_write_(k_cache, v_cache, k, v, slot_mapping, bool(check))
        return
    reference.cache_write_(k_cache, v_cache, k, v, slot_mapping, check=check)


def cache_gather(
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    kv_lens: torch.Tensor,
    max_len: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """k[b, t] = k_cache[block_table[b, t // S], t % S] for t < kv_lens[b], zeros after (and v).

    Args:
        k_cache, v_cache: [num_pages, page_size, H_kv, D].
        block_table: int32 [B, max_pages], row b's pages in logical order.
        kv_lens: int32 [B], tokens of row b (<= max_pages * page_size); the pages a row uses must
            be valid page ids (checked: reads the tensors, a device sync on CUDA).
        max_len: output length; None = max(kv_lens). A longer row is cut to max_len tokens.

    Returns:
        (k, v): contiguous [B, max_len, H_kv, D] in the cache's dtype, zero padded.
    """
    if _use_native(k_cache, v_cache, block_table, kv_lens):
        if max_len is not None:
            max_len = _args.as_int(max_len, "cache_gather", "max_len")
        elif isinstance(kv_lens, torch.Tensor) and kv_lens.numel():  # (the op reports bad lengths)
            max_len = max(0, int(kv_lens.max()))
        else:
            max_len = 0
        return torch.ops.dllm_kernels.cache_gather(k_cache, v_cache, block_table, kv_lens, max_len)
    return reference.cache_gather(k_cache, v_cache, block_table, kv_lens, max_len)


def cache_copy_pages_(k_cache: torch.Tensor, v_cache: torch.Tensor, pairs) -> None:
    """k_cache[dst] = k_cache[src], v_cache[dst] = v_cache[src] for each (src, dst) page pair.

    The copies PageAllocator.writable asks for (copy-on-write of shared pages).

    Args:
        k_cache, v_cache: [num_pages, page_size, H_kv, D], written in place.
        pairs: int64 [n, 2] on the cache's device, or a sequence of (src, dst) ints. Page ids in
            range, every dst distinct and never also a src (checked; a device sync for a CUDA
            tensor).
    """
    if isinstance(k_cache, torch.Tensor) and not isinstance(pairs, torch.Tensor):
        pairs = _args.page_pairs(pairs, k_cache.device)  # (checked by the op)
    if _use_native(k_cache, v_cache, pairs):
        torch.ops.dllm_kernels.cache_copy_pages_(k_cache, v_cache, pairs)
        return
    reference.cache_copy_pages_(k_cache, v_cache, pairs)


# ---- attention -----------------------------------------------------------------------------------


def block_attention(
    q: torch.Tensor,
    k: torch.Tensor | None = None,
    v: torch.Tensor | None = None,
    *,
    k_cache: torch.Tensor | None = None,
    v_cache: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    cache_lens: torch.Tensor | None = None,
    kv_lens: torch.Tensor | None = None,
    q_start: torch.Tensor | None = None,
    mask: str = "full",
    block_size: int | None = None,
    softmax_scale: float | None = None,
    return_lse: bool = False,
    check: bool = True,
):
    """out[b, i, h] = softmax_j(scale · q[b, i, h] · key_j) · value_j over the keys query i of row b
    sees: the first cache_lens[b] tokens of the paged cache (positions 0 ..), then the first
    kv_lens[b] tokens of k / v (positions cache_lens[b] ..), masked by `mask`.

    Args:
        q: [B, Lq, Hq, D] float32 (CPU) / bfloat16 / float16, head_dim contiguous, D in
            {64, 96, 128, 256}.
        k, v: [B, Lk, Hkv, D] or None (Hq a multiple of Hkv: GQA / MQA).
        k_cache, v_cache: [num_pages, page_size, Hkv, D] or None, with block_table int32
            [B, max_pages] and cache_lens int32 [B] (default 0).
        kv_lens: int32 [B] valid tokens of k / v (default Lk).
        q_start: int32 [B] position of row b's first query (default cache_lens); may be negative
            (left padding: with "block_causal", queries before position 0 see no key).
        mask: "full" | "block_causal" (query at position p sees key position t iff
            t // block_size <= p // block_size; fully masked key tiles are skipped).
        softmax_scale: default D ** -0.5.
        return_lse: also return the log-sum-exp [B, Hq, Lq] float32 (-inf: no key).
        check: read cache_lens / kv_lens / q_start / the used page ids and reject bad values (a
            device sync on CUDA). check=False (the per-step path, for plans built by
            PagedKVCache) never syncs; bad values are clamped, never read out of bounds.

    Returns:
        out [B, Lq, Hq, D] in q's dtype (zeros for a query that sees no key), and lse if asked.
    """
    tensors = [
        t
        for t in (q, k, v, k_cache, v_cache, block_table, cache_lens, kv_lens, q_start)
        if isinstance(t, torch.Tensor)
    ]
    if _use_native(*tensors):
        op = "block_attention"
        out, lse = torch.ops.dllm_kernels.block_attention(
            q,
            k,
            v,
            k_cache,
            v_cache,
            block_table,
            cache_lens,
            kv_lens,
            q_start,
            mask,
            _args.block_size(mask, block_size, op),
            _args.softmax_scale(softmax_scale, q, op),
            bool(check),
        )
        return (out, lse) if return_lse else out
    return reference.block_attention(
        q,
        k,
        v,
        k_cache=k_cache,
        v_cache=v_cache,
        block_table=block_table,
        cache_lens=cache_lens,
        kv_lens=kv_lens,
        q_start=q_start,
        mask=mask,
        block_size=block_size,
        softmax_scale=softmax_scale,
        return_lse=return_lse,
        check=check,
    )
