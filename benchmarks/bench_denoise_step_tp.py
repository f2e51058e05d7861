"""Benchmark vocabulary-parallel denoise_step (dllm_kernels.tp) against all-gather-then-sample, at
tp = 2 (or 4): on gloo over CPU processes that this script spawns (one torch thread per rank), or
on CUDA (--device cuda: one process on one GPU, then NCCL with one process per GPU).

    python benchmarks/bench_denoise_step_tp.py [--device cpu|cuda] [--world 2|4] [--reps N]
                                               [--rounds N] [--shapes BxLxV,...]
                                               [--dtypes bf16,fp32] [--configs NAME,...]
                                               [--json PATH] [--profile CASE] [--smoke]

Per case (shape x dtype x config), on the same inputs on every rank (each rank holds the logits
of its vocabulary range, dllm_kernels.tp.vocab_range):
  sharded    ops.denoise_step(logits_shard, x, ..., group=WORLD, vocab_start=vs): per-position
             states, sums (and filter candidates / histograms) exchanged, never the logits;
  all-gather dist.all_gather of the logits shards, torch.cat along V, then the unsharded
             ops.denoise_step on the full logits (what eager tensor-parallel code does);
  1 rank     the unsharded ops.denoise_step on the full logits on rank 0 alone (the other ranks
             wait in a barrier): the single-process baseline.
Before timing, x0 and conf of the three are checked equal (torch.equal) on every rank.

Timing: --rounds rounds of --reps calls of each method, the methods called in turn, each call
after a barrier; a call's time is the slowest rank's (the step is done when every rank has its
result). The table gives the median of the round medians, and the median over rounds of the
per-round ratio all-gather / sharded (and 1 rank / sharded).

Bytes: one untimed call per method runs with torch.distributed's collectives wrapped
(all_gather, all_reduce, broadcast, ...): the bytes of the tensor each rank contributes (its
all_gather input, its all_reduce tensor, a broadcast's tensor on the source) are added up, with
the number of collectives; rank 0's count is reported (every rank's is in the JSON,
sent_per_rank; a "*" marks a case where they differ). Next to it, the napkin value from the
shapes (dllm_kernels/tp.py's docstring; the top-p members exchange is data-dependent and left out
of the napkin). These are payloads: a ring all_gather puts (world - 1) x the payload on the wire
per rank, a ring all_reduce 2 (world - 1) / world x.

--profile CASE[,CASE] (substrings of case labels, e.g. "8x32x126464 bf16 T=1 top_p") also splits
the sharded call of each matching case into the shard kernels (torch.ops.dllm_kernels.*, by
stage), the collectives (including waiting for the other ranks) and the rest (Python, argument
checks, the merge of states, torch glue), and the all-gather call into all_gather, cat and the
unsharded op; plus gloo's cost of a 16-byte all_reduce and of the all_gather of one logits shard
alone (the ranks in step after a barrier; rank 0's means; gloo only).

--device cuda runs two tables. First, in one process on cuda:0 (so that a one-GPU machine times
the CUDA shard kernels; nothing is sent), per case without top_p (this emulation of a rank's
work has no top-p levels; the NCCL table has them):
  shard work  rank 0's tp.denoise_step at tp = --world but for the collectives: its argument
              handling, its shard kernels on its [B, L, V/world] shard (top_k, state, sums,
              finalize) and the torch glue (the union's k-th value, the merge of the states, the
              sum of the sums); the other ranks' parts of each exchange made beforehand;
  kernels     those shard kernels alone;
  unsharded   ops.denoise_step on the whole V.
CUDA events around each call, the three in turn (dllm_kernels.benchmark.time_paired), --rounds
rounds of --reps calls; bytes per rank are the napkin's. Before timing, every rank's x0 and conf
must be torch.equal to the unsharded op's, else FAIL in the row and exit status 1. Second, with
>= --world GPUs, the multi-process table above over NCCL (rank r on cuda:r; a call ends with
torch.cuda.synchronize), else a "skipped: needs N GPUs" line. Without a CUDA device or the CUDA
shard kernels, --device cuda exits 1 with a message.

--json is rewritten after each case. --smoke: a tiny run (1x4x4099, fp32, every config, 2 reps,
1 round). Default: 2 shapes x 2 dtypes x 5 configs, ~4 minutes on 2 shared EPYC cores; CUDA:
--reps 20, under a minute on one GPU (the input sets are made on the host).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dllm_kernels import _args, ops, registry, tp
from dllm_kernels import benchmark as bm

SHAPES = [(1, 32, 126_464), (8, 32, 126_464)]
CONFIGS = {
    "T=0 prob": {},
    "T=1 prob": {"temperature": 1.0},
    "T=1 top_p=0.9": {"temperature": 1.0, "top_p": 0.9},
    "T=0 neg_entropy": {"confidence": "neg_entropy"},
    "T=1 top_k=50": {"temperature": 1.0, "top_k": 50},
}
METHODS = ("sharded", "allgather", "single")
COLLECTIVES = (
    "all_gather",
    "all_gather_into_tensor",
    "all_reduce",
    "broadcast",
    "reduce",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "all_to_all",
    "all_to_all_single",
    "gather",
    "scatter",
    "send",
    "isend",
)


# ---- bytes: torch.distributed's collectives wrapped -------------------------------------------


def _nbytes(t) -> int:
    if isinstance(t, torch.Tensor):
        return t.numel() * t.element_size()
    if isinstance(t, (list, tuple)):
        return sum(_nbytes(u) for u in t)
    return 0


def _sent(name: str, args, kw) -> int:
    """Bytes this rank contributes to one collective call (its payload)."""
    if name in ("all_gather", "all_gather_into_tensor", "reduce_scatter", "all_to_all"):
        return _nbytes(args[1] if len(args) > 1 else kw.get("tensor", kw.get("input_tensor")))
    if name in ("broadcast", "scatter"):
        src = args[1] if len(args) > 1 else kw.get("src", 0)
        group = kw.get("group")
        root = dist.get_global_rank(group, src) if group not in (None, dist.group.WORLD) else src
        payload = args[0] if name == "broadcast" else (args[1] if len(args) > 1 else None)
        return _nbytes(payload) if dist.get_rank() == root else 0
    if name == "reduce_scatter_tensor":
        return _nbytes(args[1] if len(args) > 1 else kw.get("input"))
    return _nbytes(args[0] if args else kw.get("tensor"))


@contextlib.contextmanager
def count_collectives(log: list, timed: bool = False):
    """Wraps torch.distributed's collectives while inside: each call appends (name, bytes this
    rank sent, seconds if timed) to log."""
    saved = {n: getattr(dist, n) for n in COLLECTIVES if hasattr(dist, n)}

    def wrap(name, fn):
        def inner(*args, **kw):
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            log.append((name, _sent(name, args, kw), time.perf_counter() - t0 if timed else 0.0))
            return out

        return inner

    for n, fn in saved.items():
        setattr(dist, n, wrap(n, fn))
    try:
        yield log
    finally:
        for n, fn in saved.items():
            setattr(dist, n, fn)


@contextlib.contextmanager
def time_kernels(log: list):
    """Wraps the shard kernels (torch.ops.dllm_kernels.denoise_shard*, top_p_shard_*): each call
    appends (name, seconds) to log."""
    ns = torch.ops.dllm_kernels
    names = ("denoise_shard", "denoise_shard_finalize", "top_p_shard_plan", "top_p_shard_walk")
    saved = {n: getattr(ns, n) for n in names}

    def wrap(name, fn):
        def inner(*args, **kw):
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            stage = f"[{args[-6]}]" if name == "denoise_shard" else ""  # tp._Shard's order
            log.append((name + stage, time.perf_counter() - t0))
            return out

        return inner

    for n, fn in saved.items():
        setattr(ns, n, wrap(n, fn))
    try:
        yield log
    finally:
        for n, fn in saved.items():
            setattr(ns, n, fn)


def napkin(B, L, V, world, dtype_size, opts, device_type="cpu") -> dict:
    """Payload bytes per rank and step from the shapes (dllm_kernels/tp.py): sharded = layout
    (2 int64) + states [B, L, 8] f64 + sums [B, L, 2] int64 (+ top-k candidates [B, L, k] f32,
    + top-p: on CPU the range [B, L, 2] f32 and histogram [B, L, 4096] f64, members not counted;
    on CUDA the max [B, L] f32 and four levels [B, L, 256, 2] int64); all-gather = the rank's
    logits shard."""
    _, v_shard = tp.vocab_range(V, 0, world)
    sharded = 16 + B * L * (8 * 8 + 2 * 8)
    top_k, top_p = opts.get("top_k", 0), opts.get("top_p", 1.0)
    if 0 < top_k < V:
        sharded += B * L * top_k * 4
    if top_p < 1.0 and device_type == "cuda":
        sharded += B * L * (4 + 4 * 256 * 2 * 8)
    elif top_p < 1.0:
        sharded += B * L * (2 * 4 + tp.NUM_BUCKETS * 8)
    return {"sharded": sharded, "allgather": B * L * v_shard * dtype_size}


# ---- the ranks ----------------------------------------------------------------------------------


def _median(xs):
    return statistics.median(xs) if xs else None


def _label(B, L, V, dtype, config):
    return f"{B}x{L}x{V} {dtype} {config}"


def run_case(rank, world, device, B, L, V, dtype, config, reps, rounds, profile, seed):
    """One case on this rank (its tensors on `device`): check, count bytes, time; rank 0 returns
    the row."""
    opts = {**CONFIGS[config], "seed": 1234}
    vs, vn = tp.vocab_range(V, rank, world)
    params = {"B": B, "L": L, "V": V, "dtype": dtype}
    shard_size = B * L * vn * registry.DTYPES[dtype].itemsize
    # input sets rotated past the last-level cache (as the other benches do), within 256 MB
    # (2 GB on a GPU)
    fit = -(-2 * bm.cache_bytes(device) // shard_size)
    cap = (256 << 20) if device.type == "cpu" else (2 << 30)
    n_sets = max(1, min(8, cap // shard_size, fit))
    gen = torch.Generator().manual_seed(seed)  # the same inputs on every rank
    # all_gather needs equal parts: the all-gather method's shards are padded to the first
    # rank's size (a padded vocabulary, as engines keep it; only the last shard is ever short)
    per = tp.vocab_range(V, 0, world)[1]
    shards, padded, fulls, xs = [], [], [], []
    for _ in range(n_sets):
        inp = registry.DENOISE_STEP.make_inputs(params, torch.device("cpu"), gen)
        shards.append(inp["logits"][..., vs : vs + vn].contiguous().to(device))
        padded.append(
            torch.nn.functional.pad(shards[-1], (0, per - vn)) if vn < per else shards[-1]
        )
        fulls.append(inp["logits"].to(device) if rank == 0 else None)
        xs.append(inp["x"].to(device))
    mask_id = registry.LLADA_MASK_ID
    group = dist.group.WORLD

    def sharded(i):
        s = i % n_sets
        return ops.denoise_step(shards[s], xs[s], mask_id, group=group, vocab_start=vs, **opts)

    def allgather(i):
        s = i % n_sets
        parts = [torch.empty_like(padded[s]) for _ in range(world)]
        dist.all_gather(parts, padded[s])
        return ops.denoise_step(torch.cat(parts, dim=-1)[..., :V], xs[s], mask_id, **opts)

    def single(i):
        s = i % n_sets
        return ops.denoise_step(fulls[s], xs[s], mask_id, **opts)

    fns = {"sharded": sharded, "allgather": allgather, "single": single}

    # Check (x0, conf) equal on every rank, counting each method's collectives on the way.
    counts = {}
    results = {}
    for m in ("sharded", "allgather"):
        log: list = []
        with count_collectives(log):
            results[m] = fns[m](0)
        counts[m] = log
    if rank == 0:
        results["single"] = single(0)
    ok = all(torch.equal(results["sharded"][k], results[m][k]) for m in results for k in (0, 1))
    flag = torch.tensor([int(ok)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    if not int(flag):
        raise AssertionError(f"{_label(B, L, V, dtype, config)}: results differ on some rank")
    sent = {m: sum(b for _, b, _ in counts[m]) for m in counts}
    every = [torch.zeros(2, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(every, torch.tensor([sent["sharded"], sent["allgather"]], device=device))
    sent_per_rank = [[int(v) for v in t] for t in every]

    # Time: each call after a barrier, until its results are on the host or the device is done
    # (the barrier synchronizes NCCL's stream); the single-rank call runs on rank 0 alone.
    times = {m: [[] for _ in range(rounds)] for m in METHODS}
    for _ in range(2):  # warm-up
        for m in METHODS:
            dist.barrier()
            if m != "single" or rank == 0:
                fns[m](0)
    for r in range(rounds):
        for i in range(reps):
            for k, m in enumerate(METHODS):
                dist.barrier()
                if m == "single" and rank != 0:
                    times[m][r].append(0.0)
                    continue
                t0 = time.perf_counter()
                fns[m](i * len(METHODS) + k)
                bm._sync(device)
                times[m][r].append(time.perf_counter() - t0)
    flat = [t for m in METHODS for rr in times[m] for t in rr]
    flat = torch.tensor(flat, dtype=torch.float64, device=device)
    dist.all_reduce(flat, op=dist.ReduceOp.MAX)  # a call's time: the slowest rank's
    flat = flat.view(len(METHODS), rounds, reps)

    prof = None
    if profile and any(p and p in _label(B, L, V, dtype, config) for p in profile.split(",")):
        prof = profile_case(rank, world, fns, padded, xs, mask_id, opts, reps * rounds, V)

    if rank != 0:
        return None
    med = {
        m: [statistics.median(flat[j, r].tolist()) for r in range(rounds)]
        for j, m in enumerate(METHODS)
    }
    ratio_ag = sorted(a / s for a, s in zip(med["allgather"], med["sharded"]))
    ratio_1 = sorted(a / s for a, s in zip(med["single"], med["sharded"]))
    nap = napkin(B, L, V, world, registry.DTYPES[dtype].itemsize, opts, device.type)
    row = {
        "case": _label(B, L, V, dtype, config),
        "B": B,
        "L": L,
        "V": V,
        "dtype": dtype,
        "config": config,
        "options": opts,
        "world": world,
        "input_sets": n_sets,
        "sharded_s": _median(med["sharded"]),
        "allgather_s": _median(med["allgather"]),
        "single_s": _median(med["single"]),
        "ratio_allgather_over_sharded": _median(ratio_ag),
        "ratio_single_over_sharded": _median(ratio_1),
        "sent_sharded_bytes": sent["sharded"],
        "sent_allgather_bytes": sent["allgather"],
        "sent_per_rank": sent_per_rank,
        "napkin_sharded_bytes": nap["sharded"],
        "napkin_allgather_bytes": nap["allgather"],
        "collectives_sharded": [(n, b) for n, b, _ in counts["sharded"]],
        "collectives_allgather": [(n, b) for n, b, _ in counts["allgather"]],
        "rounds": [{m: med[m][r] for m in METHODS} for r in range(rounds)],
        "profile": prof,
    }
    return row


def profile_case(rank, world, fns, shards, xs, mask_id, opts, n, V):
    """Mean seconds per call (rank 0's, the ranks in step after a barrier) of the sharded call's
    shard kernels, collectives and the rest; of the all-gather call's all_gather, cat and
    unsharded op; gloo's 16-byte all_reduce and one shard's all_gather alone."""
    tot = {"sharded": 0.0, "kernels": 0.0, "collectives": 0.0, "n_collectives": 0}
    per_kernel: dict = {}
    per_coll: dict = {}
    for i in range(n):
        klog: list = []
        clog: list = []
        dist.barrier()
        with time_kernels(klog), count_collectives(clog, timed=True):
            t0 = time.perf_counter()
            fns["sharded"](i)
            tot["sharded"] += time.perf_counter() - t0
        tot["kernels"] += sum(t for _, t in klog)
        tot["collectives"] += sum(t for _, _, t in clog)
        tot["n_collectives"] += len(clog)
        for name, t in klog:
            per_kernel[name] = per_kernel.get(name, 0.0) + t
        for name, _, t in clog:
            per_coll[name] = per_coll.get(name, 0.0) + t
    ag = {"allgather": 0.0, "all_gather": 0.0, "cat": 0.0, "op": 0.0}
    group_n = len(shards)
    for i in range(n):
        s = i % group_n
        dist.barrier()
        t0 = time.perf_counter()
        parts = [torch.empty_like(shards[s]) for _ in range(world)]
        dist.all_gather(parts, shards[s])
        t1 = time.perf_counter()
        full = torch.cat(parts, dim=-1)[..., :V]
        t2 = time.perf_counter()
        ops.denoise_step(full, xs[s], mask_id, **opts)
        t3 = time.perf_counter()
        ag["allgather"] += t3 - t0
        ag["all_gather"] += t1 - t0
        ag["cat"] += t2 - t1
        ag["op"] += t3 - t2
    small = torch.zeros(2, dtype=torch.int64)
    t_small = []
    t_shard = []
    for i in range(n):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(small)
        t_small.append(time.perf_counter() - t0)
        parts = [torch.empty_like(shards[0]) for _ in range(world)]
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_gather(parts, shards[0])
        t_shard.append(time.perf_counter() - t0)
    out = {k: v / n for k, v in tot.items()}
    out["n_collectives"] = tot["n_collectives"] / n
    out["other"] = out["sharded"] - out["kernels"] - out["collectives"]
    out["per_kernel"] = {k: v / n for k, v in per_kernel.items()}
    out["per_collective"] = {k: v / n for k, v in per_coll.items()}
    out["allgather_path"] = {k: v / n for k, v in ag.items()}
    out["gloo_all_reduce_16B_s"] = statistics.median(t_small)
    out["gloo_all_gather_shard_s"] = statistics.median(t_shard)
    out["shard_bytes"] = shards[0].numel() * shards[0].element_size()
    out["calls"] = n
    return out


# ---- one process on one GPU: a rank's shard work, without the collectives ---------------------


def _shard(logits, x, vocab_start, opts) -> tp._Shard:
    """tp.denoise_step's shard pieces on `logits` (tokens [vocab_start, + V_shard)), with the
    argument handling (ops._denoise_args) it does per call; no top_p, suppress_tokens, CFG or
    eligible."""
    from dllm_kernels.ops import _denoise_args

    args = _denoise_args(
        logits,
        registry.LLADA_MASK_ID,
        opts.get("temperature", 0.0),
        opts.get("top_k", 0),
        1.0,
        "top_k_first",
        opts.get("confidence", "prob"),
        "raw",
        False,
        None,
        "denoise_step",
    )
    return tp._Shard(
        logits, x, (*args, _args.signed64(opts["seed"]), 0), vocab_start, None, None, 0.0
    )


def shard_step(shards, k, others=None):
    """tp.denoise_step over `shards` (one tp._Shard per rank, in vocabulary order) but for the
    collectives: each given shard's kernels and tp.py's torch glue between them. A rank whose
    shard is None contributes `others`' part of each exchange (what the collectives would bring;
    a previous call's second output). k: top_k when it filters (0 < top_k < V), else 0.
    Returns ((x0, conf), the exchanges' parts per rank and the merged values)."""
    sh = next(s for s in shards if s is not None)
    order = list(range(len(shards)))
    parts: dict = {}

    def exchange(stage, **kw):
        parts[stage] = [
            others[stage][r] if s is None else s(stage, **kw) for r, s in enumerate(shards)
        ]
        return parts[stage]

    thr = None
    if k:
        parts["thr0"] = torch.full(sh.x.shape, float("-inf"), device=sh.x.device)
        union = torch.cat(exchange("top_k", threshold=parts["thr0"]), dim=-1)
        thr = torch.maximum(parts["thr0"], torch.topk(union, k, dim=-1).values[..., -1])
        thr = thr.contiguous()
    merged = tp._merge_states(exchange("state", threshold=thr), order)
    M = merged[..., 0].float().contiguous()
    total = sum(exchange("sums", threshold=thr, anchor=M))
    parts.update(thr=thr, merged=merged, M=M, total=total)
    mask_id, confidence, seed = sh.args[0], sh.args[5], sh.args[-2]
    fin = torch.ops.dllm_kernels.denoise_shard_finalize
    return fin(merged, total, sh.x, mask_id, confidence, seed, 0, None)[:2], parts


def run_pieces(device, world, B, L, V, dtype, configs, reps, rounds, seed):
    """The one-process rows of one shape and dtype (module docstring), per config."""
    itemsize = registry.DTYPES[dtype].itemsize
    ranges = [tp.vocab_range(V, r, world) for r in range(world)]
    full_bytes = B * L * V * itemsize
    shard_bytes = B * L * ranges[0][1] * itemsize
    # input sets rotated past twice the L2 (rank 0's shards), within 2 GB
    fit = -(-2 * bm.cache_bytes(device) // shard_bytes)
    n_sets = max(1, min(16, fit, (2 << 30) // (full_bytes + shard_bytes)))
    gen = torch.Generator().manual_seed(seed)
    params = {"B": B, "L": L, "V": V, "dtype": dtype}
    sets = [registry.DENOISE_STEP.make_inputs(params, device, gen) for _ in range(n_sets)]
    mine = [inp["logits"][..., : ranges[0][1]].contiguous() for inp in sets]

    def case(config) -> dict:
        opts = {**CONFIGS[config], "seed": 1234}
        k = opts.get("top_k", 0) if 0 < opts.get("top_k", 0) < V else 0
        others, bad = [], []
        for s, inp in enumerate(sets):
            every = [
                _shard(inp["logits"][..., vs : vs + n].contiguous(), inp["x"], vs, opts)
                for vs, n in ranges
            ]
            p = shard_step(every, k)[1]
            others.append(p)
            if s == 0:  # the check: every rank's step against the unsharded op
                want = ops.denoise_step(inp["logits"], inp["x"], registry.LLADA_MASK_ID, **opts)
                for r in range(world):
                    alone = [e if i == r else None for i, e in enumerate(every)]
                    got = shard_step(alone, k, p)[0]
                    bad += [
                        f"rank {r} {n}"
                        for n, g, w in zip(("x0", "conf"), got, want)
                        if not torch.equal(g, w)
                    ]

        def work(i):
            s = i % n_sets
            sh = _shard(mine[s], sets[s]["x"], 0, opts)
            return shard_step([sh] + [None] * (world - 1), k, others[s])

        def kernels(i):
            s, p = i % n_sets, others[i % n_sets]
            sh = _shard(mine[s], sets[s]["x"], 0, opts)
            if k:
                sh("top_k", threshold=p["thr0"])
            sh("state", threshold=p["thr"])
            sh("sums", threshold=p["thr"], anchor=p["M"])
            torch.ops.dllm_kernels.denoise_shard_finalize(
                p["merged"], p["total"], sh.x, sh.args[0], sh.args[5], sh.args[-2], 0, None
            )

        def unsharded(i):
            inp = sets[i % n_sets]
            return ops.denoise_step(inp["logits"], inp["x"], registry.LLADA_MASK_ID, **opts)

        med = [
            bm.time_paired([work, kernels, unsharded], device, warmup=3, reps=reps)
            for _ in range(rounds)
        ]
        nap = napkin(B, L, V, world, itemsize, opts, device.type)
        return {
            "case": _label(B, L, V, dtype, config),
            "options": opts,
            "world": world,
            "input_sets": n_sets,
            "shard_work_s": _median([m[0] for m in med]),
            "shard_kernels_s": _median([m[1] for m in med]),
            "unsharded_s": _median([m[2] for m in med]),
            "ratio_unsharded_over_shard_work": _median([m[2] / m[0] for m in med]),
            "napkin_sharded_bytes": nap["sharded"],
            "napkin_allgather_bytes": nap["allgather"],
            "check": "ok" if not bad else "FAIL: " + ", ".join(bad),
            "rounds": med,
        }

    rows = []
    for config in configs:
        try:
            rows.append(case(config))
        except RuntimeError as e:  # a kernel's error: the row says so, the others still run
            why = (str(e).strip().splitlines() or [""])[0][:160]
            rows.append({"case": _label(B, L, V, dtype, config), "check": f"FAIL: {why}"})
        print(format_pieces_row(rows[-1]), flush=True)
    return rows


def _entry(rank, world, backend, store_dir, cases, reps, rounds, profile, head, json_path, extra):
    """One rank: gloo on the CPU (one torch thread), or NCCL on cuda:rank."""
    init = {"init_method": f"file://{store_dir}/store", "rank": rank, "world_size": world}
    if backend == "nccl":
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
        init["device_id"] = device
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)
    dist.init_process_group(backend, **init)
    rows = []
    try:
        for n, (B, L, V, dtype, cfg) in enumerate(cases):
            row = run_case(rank, world, device, B, L, V, dtype, cfg, reps, rounds, profile, 100 + n)
            if rank == 0:
                rows.append(row)
                print(format_row(row), flush=True)
                if json_path:
                    bm.write_json(json_path, {**extra, "header": head, "rows": rows})
    finally:
        dist.destroy_process_group()
    if rank == 0:
        torch.save(rows, os.path.join(store_dir, "rows.pt"))


# ---- the table ----------------------------------------------------------------------------------


def _kb(n: int) -> str:
    return f"{n / 1e3:,.1f} KB" if n < 1e6 else f"{n / 1e6:,.2f} MB"


TABLE = (
    "| case | sharded | all-gather | 1 rank | all-gather / sharded | 1 rank / sharded "
    "| sent/rank sharded (napkin) | colls | sent/rank all-gather (napkin) |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def format_row(r: dict) -> str:
    f = bm.format_time
    star = "" if all(p == r["sent_per_rank"][0] for p in r["sent_per_rank"]) else "*"
    return (
        f"| {r['case']} | {f(r['sharded_s'])} | {f(r['allgather_s'])} | {f(r['single_s'])} "
        f"| {r['ratio_allgather_over_sharded']:.2f}x | {r['ratio_single_over_sharded']:.2f}x "
        f"| {_kb(r['sent_sharded_bytes'])}{star} ({_kb(r['napkin_sharded_bytes'])}) "
        f"| {len(r['collectives_sharded'])} "
        f"| {_kb(r['sent_allgather_bytes'])} ({_kb(r['napkin_allgather_bytes'])}) |"
    )


TABLE_PIECES = (
    "| case | shard work (rank 0) | its shard kernels | unsharded (whole V) "
    "| unsharded / shard work | sent/rank sharded (napkin) | sent/rank all-gather (napkin) "
    "| check |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
)


def format_pieces_row(r: dict) -> str:
    f = bm.format_time
    if "shard_work_s" not in r:  # the case raised
        return f"| {r['case']} | - | - | - | - | - | - | {r['check']} |"
    return (
        f"| {r['case']} | {f(r['shard_work_s'])} | {f(r['shard_kernels_s'])} "
        f"| {f(r['unsharded_s'])} | {r['ratio_unsharded_over_shard_work']:.2f}x "
        f"| {_kb(r['napkin_sharded_bytes'])} | {_kb(r['napkin_allgather_bytes'])} | {r['check']} |"
    )


def format_profile(r: dict) -> str:
    p = r["profile"]
    f = bm.format_time
    ms = lambda s: f"{s * 1e3:.2f} ms"  # noqa: E731
    lines = [
        f"\nprofile: {r['case']}, rank 0, mean of {p['calls']} calls each after a barrier",
        f"  sharded call {ms(p['sharded'])}: shard kernels {ms(p['kernels'])}, "
        f"collectives {ms(p['collectives'])} ({p['n_collectives']:.0f} calls, waiting for the "
        f"other ranks included), the rest (Python, checks, merge, torch glue) {ms(p['other'])}",
        "    kernels: " + ", ".join(f"{k} {f(v)}" for k, v in p["per_kernel"].items()),
        "    collectives: " + ", ".join(f"{k} {f(v)}" for k, v in p["per_collective"].items()),
        f"  all-gather call {ms(p['allgather_path']['allgather'])}: all_gather "
        f"{ms(p['allgather_path']['all_gather'])}, cat {ms(p['allgather_path']['cat'])}, "
        f"unsharded op {ms(p['allgather_path']['op'])}",
        f"  gloo alone: 16-byte all_reduce {f(p['gloo_all_reduce_16B_s'])} (median), all_gather "
        f"of one shard ({_kb(p['shard_bytes'])}) {f(p['gloo_all_gather_shard_s'])} "
        f"({p['shard_bytes'] / p['gloo_all_gather_shard_s'] / 1e9:.2f} GB/s per rank)",
    ]
    return "\n".join(lines)


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """'1x32x126464,8x32x126464' -> [(1, 32, 126464), (8, 32, 126464)]."""
    try:
        return [tuple(int(n) for n in item.split("x")) for item in text.split(",") if item]
    except ValueError:
        raise argparse.ArgumentTypeError(f"shapes are BxLxV[,BxLxV...], got {text!r}") from None


def run_ranks(backend, world, cases, reps, rounds, profile, head, json_path, extra) -> list:
    """The multi-process table: `world` ranks spawned on `backend`, rank 0 prints each row;
    returns the rows."""
    what = "gloo, 1 torch thread per rank" if backend == "gloo" else "NCCL, rank r on cuda:r"
    print(
        f"tp = {world} over {what}; {rounds} rounds x {reps} calls per method; times: median of "
        f"round medians (a call: the slowest rank); ratios: median over rounds; sent/rank: "
        f"measured payload per step (napkin)\n"
    )
    print(TABLE, flush=True)
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(
            _entry,
            args=(world, backend, d, cases, reps, rounds, profile, head, json_path, extra),
            nprocs=world,
            join=True,
        )
        rows = torch.load(os.path.join(d, "rows.pt"))
    for r in rows:
        if r.get("profile"):
            print(format_profile(r))
    return rows


def run_cuda(args, shapes, dtypes, configs) -> int:
    """--device cuda: the one-process table on cuda:0, then the NCCL table (>= world GPUs)."""
    if not torch.cuda.is_available():
        print("bench_denoise_step_tp: --device cuda: no CUDA device", file=sys.stderr)
        return 1
    if not tp._has_shard_kernels("cuda"):
        print(
            "bench_denoise_step_tp: --device cuda: dllm_kernels has no CUDA shard kernels "
            "(built without CUDA, or stale)",
            file=sys.stderr,
        )
        return 1
    device, world = torch.device("cuda", 0), args.world
    head = bm.header([device])
    head.update(
        {
            "world": world,
            "backend": "one process on cuda:0; NCCL",
            "reps": args.reps,
            "rounds": args.rounds,
        }
    )
    out: dict = {"header": head}
    print(bm.format_header(head))
    one = [c for c in configs if CONFIGS[c].get("top_p", 1.0) >= 1.0]
    left = [c for c in configs if c not in one]
    print(
        f"one process on {device}: rank 0's shard work at tp = {world} (all but the collectives) "
        f"vs the unsharded op; CUDA events, {args.rounds} rounds x {args.reps} calls, median of "
        f"round medians; sent/rank: the napkin's"
        + (f"; not here: {left} (no top-p levels in this emulation)" if left else "")
        + "\n"
    )
    print(TABLE_PIECES, flush=True)
    out["shard_work"] = []
    for n, (B, L, V, d) in enumerate((*s, d) for d in dtypes for s in shapes):
        rows = run_pieces(device, world, B, L, V, d, one, args.reps, args.rounds, 100 + n)
        out["shard_work"] += rows
        if args.json:
            bm.write_json(args.json, out)
    failed = [r["case"] for r in out["shard_work"] if r["check"] != "ok"]
    if failed:
        print(f"FAIL: {len(failed)} case(s) differ from the unsharded op or raised: {failed}")
    else:
        n = len(out["shard_work"])
        print(f"checks: x0 and conf torch.equal to the unsharded op's in all {n} cases")
    n_gpu = torch.cuda.device_count()
    if n_gpu < world:
        print(f"\nNCCL rows: skipped: needs {world} GPUs, found {n_gpu}")
    elif not dist.is_nccl_available():
        print("\nNCCL rows: skipped: this torch build has no NCCL")
    else:
        print()
        cases = [(B, L, V, d, c) for d in dtypes for (B, L, V) in shapes for c in configs]
        out["rows"] = run_ranks(
            "nccl", world, cases, args.reps, args.rounds, None, head, args.json, out
        )
    if args.json:
        bm.write_json(args.json, out)
        print(f"wrote {args.json}")
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cpu: gloo over CPU processes (default); cuda: one process on cuda:0, then NCCL",
    )
    ap.add_argument("--world", type=int, choices=[2, 4], default=2, help="ranks (default 2)")
    ap.add_argument("--reps", type=int, help="calls per method and round (default 5; cuda: 20)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ap.add_argument(
        "--shapes", type=parse_shapes, help="BxLxV[,...] (default 1x32x126464,8x32x126464)"
    )
    ap.add_argument("--dtypes", type=lambda t: t.split(","), help="bf16,fp32 (default)")
    ap.add_argument(
        "--configs", type=lambda t: t.split(","), help=f"of {list(CONFIGS)} (default: all)"
    )
    ap.add_argument("--json")
    ap.add_argument(
        "--profile",
        help="case label substrings, comma-separated: the breakdown of those cases (cpu only)",
    )
    ap.add_argument("--smoke", action="store_true", help="tiny: 1x4x4099 fp32, 2 reps, 1 round")
    args = ap.parse_args(argv)
    shapes = args.shapes or SHAPES
    dtypes = args.dtypes or ["bf16", "fp32"]
    configs = args.configs or list(CONFIGS)
    args.reps = args.reps or (20 if args.device == "cuda" else 5)
    if args.smoke:
        shapes, dtypes = args.shapes or [(1, 4, 4099)], args.dtypes or ["fp32"]
        args.reps, args.rounds = 2, 1
    if not set(dtypes) <= set(registry.DTYPES):
        ap.error(f"--dtypes: each of {sorted(registry.DTYPES)}")
    if not set(configs) <= set(CONFIGS):
        ap.error(f"--configs: each of {list(CONFIGS)}")
    if any(len(s) != 3 for s in shapes):
        ap.error("--shapes: BxLxV")
    if args.profile and args.device == "cuda":
        ap.error("--profile: gloo (--device cpu) only (it times with the host clock)")
    if args.device == "cuda":
        return run_cuda(args, shapes, dtypes, configs)
    if not (dist.is_available() and dist.is_gloo_available()):
        print("torch.distributed with gloo is not available in this torch build")
        return 1
    torch.set_num_threads(1)
    head = bm.header([torch.device("cpu")])
    head.update(
        {
            "world": args.world,
            "backend": "gloo (CPU processes, loopback TCP)",
            "threads_per_rank": 1,
            "reps": args.reps,
            "rounds": args.rounds,
        }
    )
    print(bm.format_header(head))
    cases = [(B, L, V, d, c) for d in dtypes for (B, L, V) in shapes for c in configs]
    rows = run_ranks(
        "gloo", args.world, cases, args.reps, args.rounds, args.profile, head, args.json, {}
    )
    if args.json:
        bm.write_json(args.json, {"header": head, "rows": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
