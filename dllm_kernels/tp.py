"""Tensor parallelism over torch.distributed: denoise_step / denoise_and_select on vocabulary
shards, bit-identical to the unsharded op.

Each rank of `group` holds the logits of a contiguous vocabulary range, [vocab_start,
vocab_start + V_shard) (a vocabulary-parallel LM head, as engines shard it); together the ranges
tile [0, V). `ops.denoise_step(logits_shard, x, ..., group=pg, vocab_start=vs)` returns on every
rank exactly (bit for bit) what `ops.denoise_step(full_logits, x, ...)` returns, for every option
(T = 0 and T > 0, every confidence, top-k, top-p, suppress_tokens, CFG, eligible, argmax), without
moving the logits:

    pass 1  each rank reduces its shard to a state per position (csrc/cpu/denoise_shard.cpp):
            the choice (argmax, or the Gumbel-max winner with Philox keyed by the GLOBAL token
            id), its logit, the max and two largest confidence logits, the argmax of z;
            one all_gather of [world, B, L, 8] float64; every rank merges them in vocabulary
            order (strict >, so ties go to the smaller id, as in one pass).
    pass 2  each rank sums exp(d - M) (and its entropy term) over its shard with the global max
            M, as integers (multiples of 2^-40: dllm::cpu::ExactSums); one all_reduce of
            [B, L, 2] int64. The unsharded kernel sums the same integers, so the order of the
            sum does not matter and the confidence is the same bits.
    filters top-k: each rank's k largest values, all_gather, the k-th largest of the union (the
            global threshold). top-p: all_reduce of the max, all_reduce of the 4096-bucket mass
            histogram (exact in double, hence in any order), the crossing bucket's members
            all_gathered in vocabulary order and walked as the unsharded kernel walks them (CPU;
            CUDA: below).

Bytes a rank sends per denoised position and step (unfiltered): 64 B (state) + 16 B (sums),
against V_shard * sizeof(logit) for an all-gather (63,232 bf16 logits at V = 126,464 and tp = 2:
126 KB, ~1600x more); top-k adds 4k B, top-p 32 KB (the histogram) + its members.

CPU and CUDA have shard kernels (csrc/cpu/denoise_shard.cpp, dllm/cuda/denoise_shard.cuh; the
CUDA ones have not run on a GPU yet). The filters follow each device's unsharded kernel: on CUDA
top-k is the k-th largest of the whole row and top-p the kernel's radix select, whose four levels
are [B, L, 256, 2] histograms of counts and integer masses (all-reduced, exact), picked as the
kernel picks (_pick_bin). On the reference backend the op all-gathers the logits and runs the
unsharded op: the same result, with the all-gather's bytes (a one-time warning says so).
"""

from __future__ import annotations

import threading
import warnings

import torch
import torch.distributed as dist

from . import _args, reference
from ._native import NATIVE, _has_kernel

NUM_BUCKETS = 4096  # dllm::cpu::kTopPBuckets
_warned: set[str] = set()


def vocab_range(vocab_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """(vocab_start, V_shard) of `rank`: contiguous ranges of ceil(V / world / 4) * 4 tokens (the
    shard kernels need starts that are multiples of 4), the last one shorter."""
    per = -(-vocab_size // world_size)
    per = -(-per // 4) * 4
    start = min(rank * per, vocab_size)
    return start, min(per, vocab_size - start)


def _layout(group, vocab_start: int, v_shard: int, device) -> tuple[int, list[int], list]:
    """(V, rank order by vocab_start, (vocab_start, V_shard) per rank) from every rank's shard;
    checks that the shards tile [0, V)."""
    mine = torch.tensor([vocab_start, v_shard], dtype=torch.int64, device=device)
    ranges = [(int(p[0]), int(p[1])) for p in _gather(mine, group)]
    return (*_tiling(ranges), ranges)


def _tiling(ranges) -> tuple[int, list[int]]:
    """(V, rank order by vocab_start) of the ranks' (vocab_start, V_shard); checks that they tile
    [0, V)."""
    order = sorted(range(len(ranges)), key=lambda r: ranges[r][0])
    end = 0
    for r in order:
        start, size = ranges[r]
        if start != end:
            raise ValueError(
                f"dllm_kernels.denoise_step: vocab_start: the ranks' vocabulary shards must tile "
                f"[0, V) contiguously, got (vocab_start, V_shard) per rank {ranges}"
            )
        end = start + size
    return end, order


class LocalGroup:
    """`world` ranks as threads of this process, in place of a torch.distributed group: tp.py's
    collectives on it exchange the tensors in memory. run(fn) calls fn(rank) on each rank's
    thread and returns the results in rank order (the first error, if any, is raised). Tests and
    sanitizer runs use it to run the sharded ops' real code path on one device, without
    torch.distributed or processes."""

    def __init__(self, world: int):
        self.world = world
        self._barrier = threading.Barrier(world)
        self._slots: list = [None] * world
        self._local = threading.local()

    def run(self, fn) -> list:
        self._barrier.reset()
        results, errors = [None] * self.world, [None] * self.world

        def body(rank):
            self._local.rank = rank
            try:
                results[rank] = fn(rank)
            except BaseException as e:  # re-raised below, after every thread ended
                errors[rank] = e
                self._barrier.abort()  # the other ranks stop waiting for this one

        threads = [threading.Thread(target=body, args=(r,)) for r in range(self.world)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        first = [e for e in errors if e is not None]
        first.sort(key=lambda e: isinstance(e, threading.BrokenBarrierError))
        if first:
            raise first[0]
        return results

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's t, in rank order (all ranks call)."""
        self._slots[self._local.rank] = t.clone()
        self._barrier.wait()
        parts = list(self._slots)
        self._barrier.wait()  # nobody overwrites a slot before every rank has read them
        return parts


def _through_host(t: torch.Tensor, group) -> bool:
    """A gloo group moves CUDA tensors through the host (gloo's collectives take CPU tensors), so
    the ranks may also share one GPU."""
    if isinstance(group, LocalGroup):
        return False
    return t.device.type != "cpu" and dist.get_backend(group) == "gloo"


def _gather(t: torch.Tensor, group) -> list[torch.Tensor]:
    """all_gather of t (any device; see _through_host)."""
    if isinstance(group, LocalGroup):
        return group.gather(t)
    if _through_host(t, group):
        return [p.to(t.device) for p in _gather(t.cpu(), group)]
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, t.contiguous(), group=group)
    return parts


def _all_reduce(t: torch.Tensor, group, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """all_reduce of t (any device; see _through_host), returned."""
    if isinstance(group, LocalGroup):
        parts = torch.stack(group.gather(t))
        return parts.amax(0) if op == dist.ReduceOp.MAX else parts.sum(0)
    if _through_host(t, group):
        return _all_reduce(t.cpu(), group, op).to(t.device)
    dist.all_reduce(t, op=op, group=group)
    return t


def _gather_shards(t: torch.Tensor, group, order, ranges) -> torch.Tensor:
    """The whole [B, L, V] from every rank's [B, L, V_shard] (shards padded to the largest for
    the all_gather, which needs equal sizes, then cut back)."""
    width = max(n for _, n in ranges)
    padded = torch.nn.functional.pad(t, (0, width - t.shape[-1]))
    parts = _gather(padded, group)
    return torch.cat([parts[r][..., : ranges[r][1]] for r in order], dim=-1)


def _merge_states(parts: list[torch.Tensor], order: list[int]) -> torch.Tensor:
    """The pass-1 states [B, L, 8] (dllm/cpu/denoise_shard.h) of the shards merged in vocabulary
    order, as one pass over the whole row would have kept them."""
    st = parts[order[0]].clone()
    for r in order[1:]:
        o = parts[r]
        st[..., 0] = torch.maximum(st[..., 0], o[..., 0])  # max of d
        win = o[..., 1] > st[..., 1]  # best score: a later shard wins only if strictly better
        st[..., 1:4] = torch.where(win[..., None], o[..., 1:4], st[..., 1:4])
        for k in (4, 5):  # insert the shard's two largest d into (top1, top2)
            v = o[..., k]
            st[..., 5] = torch.maximum(st[..., 5], torch.minimum(st[..., 4], v))
            st[..., 4] = torch.maximum(st[..., 4], v)
        am = (o[..., 7] >= 0) & ((st[..., 7] < 0) | (o[..., 6] > st[..., 6]))
        st[..., 6:8] = torch.where(am[..., None], o[..., 6:8], st[..., 6:8])
    return st


class _Shard:
    """One call's shard pieces: torch.ops.dllm_kernels.denoise_shard with the call's arguments."""

    def __init__(self, logits, x, schema_args, vocab_start, eligible, uncond_logits, cfg_scale):
        self.logits, self.x, self.args = logits, x, schema_args
        self.vocab_start = vocab_start
        self.eligible, self.uncond, self.cfg_scale = eligible, uncond_logits, cfg_scale

    def __call__(self, stage, threshold=None, anchor=None, bucket=None, with_argmax=False, shift=0):
        return torch.ops.dllm_kernels.denoise_shard(
            self.logits,
            self.x,
            *self.args,
            self.eligible,
            self.uncond,
            self.cfg_scale,
            self.vocab_start,
            stage,
            threshold,
            anchor,
            bucket,
            with_argmax,
            shift,
        )


def _top_k_threshold(shard: _Shard, k: int, thr, group, order) -> torch.Tensor:
    """The k-th largest filtered value of each row over all shards: [B, L] float32."""
    parts = _gather(shard("top_k", threshold=thr), group)
    union = torch.cat([parts[r] for r in order], dim=-1)
    return torch.topk(union, k, dim=-1).values[..., -1]


def _top_p_threshold(shard: _Shard, top_p: float, thr, group, order) -> torch.Tensor:
    """tau of each row (the unsharded kernel's top_p_threshold): [B, L] float32, -inf = none."""
    rng = shard("range", threshold=thr)  # [B, L, 2]: max, min of the finite values
    ext = torch.stack([rng[..., 0], -rng[..., 1]], dim=-1)
    ext = _all_reduce(ext, group, dist.ReduceOp.MAX)
    m, smallest = ext[..., 0].contiguous(), -ext[..., 1]
    hist = shard("hist", threshold=thr, anchor=m)  # exact bucket sums: any order adds up alike
    hist = _all_reduce(hist, group)
    B, L = m.shape
    hist = hist.view(B * L, NUM_BUCKETS)
    tau = torch.full((B * L,), float("nan"))
    start = torch.zeros(B * L, dtype=torch.int64)
    above = torch.zeros(B * L, dtype=torch.float64)
    live = (m.view(-1) > float("-inf")).clone()
    tau[~live] = float("-inf")  # nothing finite: no filter
    while True:  # one round per crossing bucket; rounding rarely sends a row to the next one
        bucket, above, need = torch.ops.dllm_kernels.top_p_shard_plan(hist, top_p, start, above)
        done = live & (bucket >= NUM_BUCKETS)
        tau[done] = smallest.reshape(-1)[done]  # the target unreached: the smallest value
        live &= ~done
        if not bool(live.any()):  # the same on every rank: the same numbers went in
            break
        b_rows = torch.where(live, bucket, torch.full_like(bucket, -1)).view(B, L)
        members = shard("members", threshold=thr, anchor=m, bucket=b_rows)
        width = _all_reduce(torch.tensor([members.shape[-1]]), group, dist.ReduceOp.MAX)
        pad = int(width) - members.shape[-1]
        members = torch.nn.functional.pad(members, (0, pad), value=float("nan"))
        parts = _gather(members, group)
        union = torch.cat([parts[r] for r in order], dim=-1).view(B * L, -1)
        t, above = torch.ops.dllm_kernels.top_p_shard_walk(union, m.view(-1), need, above)
        found = live & ~torch.isnan(t)
        tau[found] = t[found]
        live &= ~found
        start = torch.where(live, bucket + 1, start)
    return tau.view(B, L)


def _key_float(key: torch.Tensor) -> torch.Tensor:
    """The float32 of an order-preserving uint32 key held in int64 (dllm::cuda key_float)."""
    bits = torch.where(key >= 2**31, key - 2**31, (~key) & 0xFFFFFFFF)
    bits = torch.where(bits >= 2**31, bits - 2**32, bits)
    return bits.to(torch.int32).view(torch.float32)


def _pick_bin(cnt, mass, done, need):
    """The CUDA kernel's pick_bin on [..., 256] histograms (int64, exact): the highest bin d with
    cnt > 0 where float64(done + the mass of bins >= d) >= need, else the lowest non-empty bin;
    returns (d, the mass of the bins above d)."""
    c, w = cnt.flip(-1), mass.flip(-1)  # index j = bin 255 - j: from the top
    incl = w.cumsum(-1)
    ok = (c > 0) & ((done[..., None] + incl).double() >= need[..., None])
    first = ok.int().argmax(-1)
    lowest = 255 - (c > 0).flip(-1).int().argmax(-1)
    j = torch.where(ok.any(-1), first, lowest)
    above = (incl - w).gather(-1, j[..., None])[..., 0]
    return 255 - j, above


def _top_p_threshold_cuda(shard: _Shard, top_p: float, lo, group) -> torch.Tensor:
    """tau of each row as the unsharded CUDA kernel finds it (dllm/cuda/denoise_step.cuh,
    top_p_value): the max over the shards, then four levels of the radix select, each on the
    all-reduced [B, L, 256, 2] histogram of counts and integer masses (exact in any order).
    lo: top_k_first's k-th values (the set's lower bound), or None. [B, L] float32."""
    m = _all_reduce(shard("range")[..., 0].contiguous(), group, dist.ReduceOp.MAX)
    prefix = torch.zeros(m.shape, dtype=torch.int64, device=m.device)
    done = torch.zeros_like(prefix)
    need = None
    for shift in (24, 16, 8, 0):
        h = shard("top_p_level", threshold=lo, anchor=m, bucket=prefix, shift=shift)
        h = _all_reduce(h, group)
        cnt, mass = h[..., 0], h[..., 1]
        if need is None:  # every token of the set is in the first level
            need = top_p * mass.sum(-1).double()
        d, above = _pick_bin(cnt, mass, done, need)
        done = done + above
        prefix = prefix | (d << shift)
    return torch.where(m > float("-inf"), _key_float(prefix), float("-inf"))


def _filter_threshold_cuda(shard, top_k, top_p, filter_order, V, group, order):
    """As the unsharded CUDA kernel combines the filters: kth = the k-th largest of the whole
    row; top_k_first: max(kth, tau of top-p over the values >= kth); top_p_first: max(kth, tau
    of the whole row)."""
    use_k = 0 < top_k < V
    kth = _top_k_threshold(shard, top_k, None, group, order) if use_k else None
    if top_p >= 1.0:
        return kth.contiguous()
    lo = kth.contiguous() if use_k and filter_order == "top_k_first" else None
    tau = _top_p_threshold_cuda(shard, top_p, lo, group)
    return (tau if kth is None else torch.maximum(kth, tau)).contiguous()


def _filter_threshold(shard, top_k, top_p, filter_order, V, B, L, group, order):
    """The filters' combined global threshold [B, L] (values below it are cut; on the logits'
    device), or None when no filter acts (the unsharded kernel's is_filtered)."""
    use_k = 0 < top_k < V
    if not use_k and top_p >= 1.0:
        return None
    if shard.logits.device.type == "cuda":
        return _filter_threshold_cuda(shard, top_k, top_p, filter_order, V, group, order)
    thr = torch.full((B, L), float("-inf"), device=shard.logits.device)
    steps = ("top_k", "top_p") if filter_order == "top_k_first" else ("top_p", "top_k")
    for step in steps:
        if step == "top_k" and use_k:
            t = _top_k_threshold(shard, top_k, thr, group, order)
        elif step == "top_p" and top_p < 1.0:
            t = _top_p_threshold(shard, top_p, thr, group, order)
        else:
            continue
        thr = torch.maximum(thr, t)
    return thr.contiguous()


OPTIONS = (
    "temperature",
    "top_k",
    "top_p",
    "filter_order",
    "confidence",
    "confidence_source",
    "shift_logits",
    "suppress_tokens",
    "seed",
    "offset",
    "eligible",
    "uncond_logits",
    "cfg_scale",
    "return_argmax",
)


def denoise_step(logits: torch.Tensor, x: torch.Tensor, mask_id, *, group, vocab_start, **opts):
    """ops.denoise_step on this rank's vocabulary shard (module docstring); ops.denoise_step(...,
    group=, vocab_start=) calls it with every keyword option of its own (OPTIONS), and

    Args:
        logits: [B, L, V_shard], the logits of tokens [vocab_start, vocab_start + V_shard)
            (uncond_logits likewise).
        group: the torch.distributed process group whose ranks hold the shards (every rank calls
            with the same x, options and seed).
        vocab_start: this rank's first token id (a multiple of 4; see vocab_range).
        opts: suppress_tokens and mask_id are GLOBAL token ids.

    Returns:
        what ops.denoise_step returns for the whole vocabulary, on every rank.
    """
    (
        temperature,
        top_k,
        top_p,
        filter_order,
        confidence,
        confidence_source,
        shift_logits,
        suppress_tokens,
        seed,
        offset,
        eligible,
        uncond_logits,
        cfg_scale,
        return_argmax,
    ) = (opts[k] for k in OPTIONS)
    op = "denoise_step"
    vocab_start = _args.as_int(vocab_start, op, "vocab_start")
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"dllm_kernels.{op}: logits must be a [B, L, V_shard] tensor")
    native = _has_shard_kernels(logits.device.type)
    filtered = _args.as_int(top_k, op, "top_k") > 0 or float(top_p) < 1.0
    V = None  # unfiltered native calls learn the layout with the states (one collective fewer)
    if filtered or not native:
        V, order, ranges = _layout(group, vocab_start, logits.shape[-1], logits.device)
        if native:
            _check_vocab(V, op)
    seed = _shared_seed(seed, offset, group, op, logits.device)
    local_suppress = _local_ids(suppress_tokens, vocab_start, logits.shape[-1], V, op)
    if not native:  # all-gather, then the unsharded op
        what = f"{logits.device.type} tensors (or the reference backend)"
        _warn_once(
            what,
            f"dllm_kernels.{op}(group=...): no shard kernels for {what}; all-gathering the "
            "logits instead (same result, more bytes)",
        )
        full = _gather_shards(logits, group, order, ranges)
        full_u = None
        if uncond_logits is not None:
            full_u = _gather_shards(uncond_logits, group, order, ranges)
        from . import ops

        return ops.denoise_step(full, x, mask_id, **{**opts, "seed": seed, "uncond_logits": full_u})
    from .ops import _denoise_args

    shard_logits, shard_uncond, shard_start = logits, uncond_logits, vocab_start
    if logits.shape[-1] == 0:
        # An empty shard (a vocabulary smaller than the group's ranges): one -inf token, never
        # chosen and adding nothing, so that this rank checks the arguments and joins every
        # collective like the others.
        shard_logits = logits.new_full((*logits.shape[:2], 1), float("-inf"))
        if uncond_logits is not None:
            shard_uncond = uncond_logits.new_full((*logits.shape[:2], 1), float("-inf"))
        shard_start = 0
    args = (
        *_denoise_args(
            shard_logits,
            mask_id,
            temperature,
            top_k,
            top_p,
            filter_order,
            confidence,
            confidence_source,
            shift_logits,
            local_suppress,
            op,
            eligible,
        ),
        _args.signed64(seed),
        offset,
    )
    cfg = _args.as_float(cfg_scale, op, "cfg_scale")
    shard = _Shard(shard_logits, x, args, shard_start, eligible, shard_uncond, cfg)
    B, L = x.shape
    top_k = _args.as_int(top_k, op, "top_k")
    thr = None
    if filtered:
        thr = _filter_threshold(shard, top_k, float(top_p), filter_order, V, B, L, group, order)
    state = shard("state", threshold=thr, with_argmax=bool(return_argmax))
    if V is None:  # the layout rides along with the states
        shape = state.shape
        layout = torch.tensor(
            [vocab_start, logits.shape[-1]], dtype=torch.float64, device=state.device
        )
        parts = _gather(torch.cat([state.reshape(-1), layout]), group)
        V, order = _tiling([(int(p[-2]), int(p[-1])) for p in parts])
        _check_vocab(V, op)
        _local_ids(suppress_tokens, vocab_start, logits.shape[-1], V, op)  # the range check
        states = [p[:-2].view(shape) for p in parts]
    else:
        states = _gather(state, group)
    merged = _merge_states(states, order)
    M = merged[..., 0].float().contiguous()
    sums = _all_reduce(shard("sums", threshold=thr, anchor=M), group)
    x0, conf, argmax = torch.ops.dllm_kernels.denoise_shard_finalize(
        merged, sums, x, args[0], confidence, args[-2], offset, eligible
    )
    return (x0, conf, argmax) if return_argmax else (x0, conf)


def denoise_and_select(logits, x, mask_id, *, group, vocab_start, **kw):
    """ops.denoise_and_select on this rank's vocabulary shard: the sharded denoise_step, then
    select_transfer, commit and renoise (with the global V) on the identical confidences."""
    from . import ops

    select = {
        k: kw.pop(k)
        for k in ("num_transfer", "threshold", "factor", "probability", "entropy_bound")
        if k in kw
    }
    strict = kw.pop("strict", False)
    commit = kw.pop("commit", False)
    renoise = kw.pop("renoise", False)
    return_argmax = kw.pop("return_argmax", False)
    op = "denoise_and_select"
    if renoise and (not commit or kw.get("eligible") is None):
        raise ValueError(f"dllm_kernels.{op}: renoise needs commit=True and eligible")
    kw["seed"] = _shared_seed(kw.get("seed"), kw.get("offset", 0), group, op, logits.device)
    x0, conf, argmax = denoise_step(
        logits, x, mask_id, group=group, vocab_start=vocab_start, return_argmax=True, **kw
    )
    transfer = ops.select_transfer(
        conf, **select, strict=strict, seed=kw["seed"], offset=kw.get("offset", 0)
    )
    if commit:
        ops.commit_(x, x0, transfer)
    if renoise:
        V = _layout(group, vocab_start, logits.shape[-1], logits.device)[0]
        B, L = x.shape
        b = torch.arange(B, device=x.device)[:, None].expand(B, L)
        l = torch.arange(L, device=x.device)[None, :].expand(B, L)
        philox = reference.philox
        slot = torch.full_like(b, philox.SLOT_RENOISE)
        words = philox.random_words(kw["seed"], kw.get("offset", 0), b, l, slot)
        where = kw["eligible"] & ~transfer
        x[where] = philox.below(words, V)[where]
    return (x0, conf, transfer, argmax) if return_argmax else (x0, conf, transfer)


def _check_vocab(V: int, op: str) -> None:
    """As the unsharded op: the shards' exact sums (and CUDA top-p masses) add up in int64."""
    if V >= 2**23:
        raise ValueError(
            f"dllm_kernels.{op}: logits: the vocabulary must have < 2^23 tokens (the exact "
            f"confidence sums are int64), got V = {V}"
        )


def _has_shard_kernels(device_type: str) -> bool:
    """Does this call run the shard kernels (else: all-gather, then the unsharded op)?"""
    if device_type == "cpu":
        return NATIVE
    return NATIVE and device_type == "cuda" and _has_kernel("denoise_shard", "CUDA")


def _shared_seed(seed, offset, group, op: str, device=None) -> int:
    """The call's seed, the same on every rank: seed None is drawn on every rank and the group's
    first rank's draw is taken (device: the logits', so that NCCL groups get a CUDA tensor)."""
    if seed is not None:
        return _args.seed_offset(seed, offset, op)[0]
    drawn = torch.tensor([_args.signed64(_args.seed_offset(None, offset, op)[0])], device=device)
    return int(_gather(drawn, group)[0][0]) & (2**64 - 1)


def _local_ids(ids, vocab_start: int, v_shard: int, V: int | None, op: str):
    """GLOBAL suppress ids -> this shard's local ids (an int64 tensor), checked in [0, V) (V None:
    only >= 0, the caller checks the bound once it knows V)."""
    if ids is None:
        return None
    t = torch.as_tensor(list(ids) if not isinstance(ids, torch.Tensor) else ids.cpu())
    t = t.to(torch.int64).reshape(-1)
    if t.numel() and (int(t.min()) < 0 or (V is not None and int(t.max()) >= V)):
        raise ValueError(
            f"dllm_kernels.{op}: suppress_tokens must be token ids in [0, {V or 'V'}), got "
            f"{int(t.min())}..{int(t.max())}"
        )
    keep = (t >= vocab_start) & (t < vocab_start + v_shard)
    return (t[keep] - vocab_start).contiguous()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
