"""Vocabulary-parallel denoise_step / denoise_and_select (dllm_kernels.tp) over gloo at tp = 2
and 4: every rank's result equals the unsharded op's bit for bit (integers and floats alike).

One spawn per world size runs every case (CI has 2 cores); the parent runs the unsharded op on the
whole logits and compares. On the reference backend the sharded op all-gathers and runs the
reference, and the same comparisons hold.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from tp_util import available, run_ranks

from dllm_kernels import ops, tp
from dllm_kernels._native import NATIVE

OK, WHY = available()
pytestmark = pytest.mark.skipif(not OK, reason=WHY)

WORLDS = (2, 4)


def _case(
    name,
    V,
    L,
    dtype,
    *,
    scale=4.0,
    ties=False,
    flat=False,
    cfg=False,
    eligible=False,
    select=None,
    **opts,
):
    return dict(
        name=name,
        V=V,
        L=L,
        dtype=dtype,
        scale=scale,
        ties=ties,
        flat=flat,
        cfg=cfg,
        eligible=eligible,
        select=select,
        opts=opts,
    )


F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
CASES = [
    _case("argmax_prob", 1000, 7, F32),
    _case("sample_prob", 4099, 33, BF16, temperature=0.7, seed=11),
    _case("margin_L1", 1000, 1, F16, confidence="margin"),
    _case("neg_entropy_sample", 4099, 7, F32, temperature=1.0, seed=12, confidence="neg_entropy"),
    _case("random_conf", 1000, 7, BF16, temperature=0.5, seed=13, confidence="random"),
    _case("top_k_sample", 4099, 7, F32, top_k=5, temperature=1.0, seed=14),
    _case("top_k_argmax_raw", 4099, 7, F32, top_k=50),
    _case("top_p_sample", 4099, 7, BF16, top_p=0.9, temperature=0.8, seed=15),
    _case(
        "top_p_sampling_entropy",
        4099,
        7,
        F32,
        top_p=0.3,
        temperature=1.5,
        seed=16,
        confidence="neg_entropy",
        confidence_source="sampling",
    ),
    _case(
        "top_p_first",
        4099,
        7,
        F32,
        top_p=0.5,
        top_k=20,
        filter_order="top_p_first",
        temperature=1.0,
        seed=17,
        confidence_source="sampling",
    ),
    _case(
        "top_k_first_margin",
        1000,
        7,
        F16,
        top_k=10,
        top_p=0.8,
        temperature=0.9,
        seed=18,
        confidence="margin",
    ),
    _case(
        "suppress_argmax",
        1000,
        7,
        F32,
        temperature=0.7,
        seed=19,
        return_argmax=True,
        suppress_tokens=[0, 3, 250, 251, 499, 500, 501, 998],
    ),
    _case("cfg_argmax", 1000, 7, BF16, cfg=True, cfg_scale=1.5),
    _case(
        "cfg_top_p_sample",
        1000,
        7,
        F32,
        cfg=True,
        cfg_scale=0.5,
        top_p=0.9,
        temperature=1.0,
        seed=20,
    ),
    _case(
        "eligible_canvas", 1000, 7, F32, eligible=True, temperature=1.0, seed=21, return_argmax=True
    ),
    _case("shift_logits", 1000, 7, F32, shift_logits=True),
    _case("ties_prob", 1000, 7, F32, ties=True),
    _case(
        "ties_margin_sample", 1000, 7, F32, ties=True, confidence="margin", temperature=0.3, seed=22
    ),
    _case("flat_top_p", 50257, 1, BF16, flat=True, top_p=0.9, temperature=1.0, seed=23),
    _case("large_top_p", 50257, 7, BF16, top_p=0.95, temperature=0.7, seed=24),
    # V = 10: shards of 8 + 2 at tp = 2, 4 + 4 + 2 + 0 at tp = 4 (an empty shard)
    _case(
        "tiny_vocab_top_k",
        10,
        7,
        F32,
        top_k=3,
        temperature=0.7,
        seed=27,
        return_argmax=True,
        suppress_tokens=[1, 8],
    ),
    _case(
        "tiny_vocab_top_p_cfg",
        10,
        7,
        BF16,
        top_p=0.8,
        temperature=1.0,
        seed=28,
        cfg=True,
        cfg_scale=0.5,
        confidence="margin",
    ),
    _case("select_threshold_commit", 1000, 7, F32, select=dict(threshold=0.3, commit=True)),
    _case(
        "select_num_transfer",
        1000,
        7,
        BF16,
        temperature=0.7,
        seed=25,
        select=dict(num_transfer=torch.tensor([2, 3]), commit=True),
    ),
    _case(
        "select_entropy_bound",
        1000,
        7,
        F32,
        confidence="neg_entropy",
        select=dict(entropy_bound=0.5),
    ),
    _case(
        "select_renoise",
        1000,
        7,
        F32,
        eligible=True,
        temperature=1.0,
        seed=26,
        select=dict(threshold=0.2, commit=True, renoise=True),
        return_argmax=True,
    ),
]


def _inputs(case, seed=0):
    """(logits, x, uncond, eligible) of a case: random, varied, never all-equal (unless flat)."""
    g = torch.Generator().manual_seed(seed + 1000 * CASES.index(case))
    V, L = case["V"], case["L"]
    logits = torch.randn(2, L, V, generator=g) * case["scale"]
    if case["ties"]:
        logits = logits.round() / 2  # many equal values, within and across shards
    if case["flat"]:
        logits = torch.zeros(2, L, V) + torch.randn(2, L, 1, generator=g)
    logits = logits.to(case["dtype"])
    x = torch.randint(0, V - 1, (2, L), generator=g)
    x[:, ::2] = V - 1  # mask_id = V - 1 at even positions
    uncond = (torch.randn(2, L, V, generator=g) * 3).to(case["dtype"]) if case["cfg"] else None
    eligible = torch.rand(2, L, generator=g) < 0.6 if case["eligible"] else None
    return logits, x, uncond, eligible


def _call(case, logits, x, uncond, eligible, **shard):
    opts = dict(case["opts"])
    if uncond is not None:
        opts["uncond_logits"] = uncond
    if eligible is not None:
        opts["eligible"] = eligible
    mask_id = shard.pop("V", logits.shape[-1]) - 1  # a shard's call names the whole vocabulary
    if case["select"] is None:
        return ops.denoise_step(logits, x, mask_id, **opts, **shard)
    x = x.clone()
    out = ops.denoise_and_select(logits, x, mask_id, **opts, **case["select"], **shard)
    return (*out, x)


def _rank_call(case, inputs, rank, world, group):
    """The case on this rank's vocabulary shard of its (whole) inputs."""
    logits, x, uncond, eligible = inputs
    vs, n = tp.vocab_range(case["V"], rank, world)
    u = uncond[..., vs : vs + n] if uncond is not None else None
    shard = dict(group=group, vocab_start=vs, V=case["V"])
    return _call(case, logits[..., vs : vs + n], x, u, eligible, **shard)


@contextlib.contextmanager
def _all_gathers():
    """Counts the calls that all-gathered the logits (the fallback) instead of running the shard
    kernels: yields a list that gets one entry per such call."""
    calls, all_gather = [], tp._gather_shards

    def spy(*args, **kwargs):
        calls.append(1)
        return all_gather(*args, **kwargs)

    tp._gather_shards = spy
    try:
        yield calls
    finally:
        tp._gather_shards = all_gather


def _sharded(rank, world):
    """Every case on this rank's shard: [outputs per case]."""
    import torch.distributed as dist

    group = dist.group.WORLD
    results = [_rank_call(case, _inputs(case), rank, world, group) for case in CASES]
    # seed None: drawn on rank 0 and broadcast, so every rank samples alike
    logits, x, _, _ = _inputs(CASES[1])
    vs, n = tp.vocab_range(logits.shape[-1], rank, world)
    drawn = ops.denoise_step(
        logits[..., vs : vs + n],
        x,
        logits.shape[-1] - 1,
        temperature=1.0,
        group=dist.group.WORLD,
        vocab_start=vs,
    )
    # shards that do not tile the vocabulary: a clear error on every rank
    try:
        ops.denoise_step(logits[..., :8], x, 0, group=dist.group.WORLD, vocab_start=0)
        tiling = "no error"
    except ValueError as e:
        tiling = str(e)
    # a vocabulary of 2^23 tokens over the ranks (each shard alone is smaller): refused on every
    # rank, as the unsharded op refuses it (the exact sums are int64)
    per = 2**23 // world
    try:
        big = torch.randn(1, 1, per)
        x1 = torch.full((1, 1), 2**23 - 1)
        ops.denoise_step(big, x1, 2**23 - 1, group=dist.group.WORLD, vocab_start=rank * per)
        too_big = "no error"
    except ValueError as e:
        too_big = str(e)
    return results, drawn, tiling, too_big


@pytest.fixture(scope="module", params=WORLDS, ids=lambda w: f"tp{w}")
def sharded(request):
    return request.param, run_ranks(_sharded, request.param)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_sharded_equals_unsharded(sharded, case):
    world, per_rank = sharded
    logits, x, uncond, eligible = _inputs(case)
    want = _call(case, logits, x, uncond, eligible)
    x0 = want[0]
    masked = x == logits.shape[-1] - 1 if eligible is None else eligible
    assert len(set(x0[masked].tolist())) > 1 or case["flat"], "degenerate case: one token"
    for rank, (results, *_) in enumerate(per_rank):
        got = results[CASES.index(case)]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert torch.equal(g, w), f"rank {rank} of {world}: {case['name']} differs"


def test_confidences_spread(sharded):
    """The cases are not degenerate: confidences take many values."""
    _, per_rank = sharded
    conf = per_rank[0][0][CASES.index(CASES[1])][1]
    finite = conf[torch.isfinite(conf)]
    assert finite.unique().numel() > 10 and float(finite.max() - finite.min()) > 0.1


def test_drawn_seed_shared(sharded):
    _, per_rank = sharded
    first = per_rank[0][1]
    for _, drawn, *_ in per_rank[1:]:
        assert all(torch.equal(a, b) for a, b in zip(drawn, first))


def test_shards_must_tile(sharded):
    _, per_rank = sharded
    for _, _, tiling, _ in per_rank:
        assert "vocab_start" in tiling and "tile" in tiling


def test_global_vocabulary_limit(sharded):
    """The shards' exact sums add up in int64: a vocabulary of 2^23 tokens is refused on every
    rank (each shard alone is smaller), as the unsharded op refuses it. The reference backend
    all-gathers and has no such limit."""
    _, per_rank = sharded
    for *_, too_big in per_rank:
        if NATIVE:
            assert "denoise_step: logits: the vocabulary must have < 2^23 tokens" in too_big
        else:
            assert too_big == "no error"


def test_vocab_start_needs_group():
    logits = torch.randn(1, 2, 16)
    with pytest.raises(ValueError, match="vocab_start=4 needs group="):
        ops.denoise_step(logits, torch.zeros(1, 2, dtype=torch.int64), 0, vocab_start=4)


@pytest.mark.native
def test_shard_op_checks_vocab_start():
    logits = torch.randn(1, 2, 16)
    x = torch.full((1, 2), 15, dtype=torch.int64)
    args = (15, 0.0, 0, 1.0, "top_k_first", "prob", "raw", False, None, 0, 0, None, None, 0.0)
    with pytest.raises(RuntimeError, match="denoise_shard: vocab_start must be >= 0 and a multi"):
        torch.ops.dllm_kernels.denoise_shard(logits, x, *args, 2, "state", None, None, None)
    with pytest.raises(RuntimeError, match="denoise_shard: stage must be one of"):
        torch.ops.dllm_kernels.denoise_shard(logits, x, *args, 0, "nope", None, None, None)
    with pytest.raises(RuntimeError, match="denoise_shard: anchor is needed"):
        torch.ops.dllm_kernels.denoise_shard(logits, x, *args, 0, "sums", None, None, None)
    M = torch.zeros(1, 2)
    prefix = torch.zeros(1, 2, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="denoise_shard: stage 'top_p_level' is CUDA's"):
        torch.ops.dllm_kernels.denoise_shard(logits, x, *args, 0, "top_p_level", None, M, prefix)


def test_vocab_range_tiles():
    for V in (1000, 4099, 126464, 262144):
        for world in (1, 2, 3, 4, 8):
            ranges = [tp.vocab_range(V, r, world) for r in range(world)]
            assert ranges[0][0] == 0 and sum(n for _, n in ranges) == V
            assert all(s % 4 == 0 for s, _ in ranges)
            assert all(a[0] + a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


@pytest.mark.native
@pytest.mark.parametrize("confidence", ["prob", "margin", "neg_entropy"])
def test_split_invariant_confidence(confidence):
    """The exact sums make the unsharded CPU kernel's confidence the same bits whether a position
    runs on one thread or split over vocabulary slices (fewer positions than threads)."""
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(1, 2, 70001, generator=g) * 5).to(torch.bfloat16)
    x = torch.full((1, 2), 70000, dtype=torch.int64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.denoise_step(logits, x, 70000, confidence=confidence)
        torch.set_num_threads(4)
        split = ops.denoise_step(logits, x, 70000, confidence=confidence)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], split[0]) and torch.equal(one[1], split[1])


DEVICES = [
    pytest.param("cpu", marks=pytest.mark.native),
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "V,dtype,confidence,temperature,top_k",
    [
        (50257, torch.bfloat16, "prob", 0.0, 0),
        (126464, torch.float32, "margin", 1.0, 0),
        (151936, torch.float16, "neg_entropy", 0.7, 0),
        (262144, torch.bfloat16, "random", 1.0, 0),
        (126464, torch.bfloat16, "prob", 0.8, 40),
    ],
)
def test_simulated_shards_equal_unsharded(device, V, dtype, confidence, temperature, top_k):
    """The shard kernels at tp = 1, 2, 3 (unequal shards) and odd vocabularies, the ranks as
    threads (tp.LocalGroup): x0, conf and argmax equal the unsharded op's bit for bit (on CUDA
    the unsharded op splits V over blocks differently from every shard)."""
    g = torch.Generator().manual_seed(V + 7)
    B, L = 2, 7
    logits = (torch.randn(B, L, V, generator=g) * 4).to(dtype).to(device)
    x = torch.randint(0, V - 1, (B, L), generator=g)
    x[:, 1::2] = V - 1
    x = x.to(device)
    opts = dict(mask_id=V - 1, temperature=temperature, confidence=confidence, seed=99)
    want = ops.denoise_step(logits, x, top_k=top_k, return_argmax=True, **opts)
    assert want[1][x == V - 1].unique().numel() > 3  # varied confidences: the test means something
    for world in (1, 2, 3):
        group = tp.LocalGroup(world)

        def rank_call(rank, world=world, group=group):
            vs, n = tp.vocab_range(V, rank, world)
            part = logits[..., vs : vs + n]
            kw = dict(top_k=top_k, return_argmax=True, group=group, vocab_start=vs)
            return ops.denoise_step(part, x, **kw, **opts)

        for got in group.run(rank_call):
            for g_, w_, name in zip(got, want, ("x0", "conf", "argmax")):
                assert torch.equal(g_, w_), (world, name)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("device", DEVICES)
def test_local_group_equals_unsharded(device, world):
    """Every case through tp.py's real code path with the ranks as threads of this process
    (tp.LocalGroup), on one device: each rank's outputs equal the unsharded op's bit for bit,
    without any all-gather of the logits (on CUDA: the CUDA shard kernels, top-p included)."""
    with _all_gathers() as gathered:
        for case in CASES:
            case, inputs = _on(device, case, _inputs(case))
            want = _call(case, *inputs)
            group = tp.LocalGroup(world)
            got_all = group.run(lambda rank: _rank_call(case, inputs, rank, world, group))
            for rank, got in enumerate(got_all):
                for g, w in zip(got, want):
                    assert torch.equal(g, w), f"rank {rank} of {world}: {case['name']}"
    assert not gathered or not NATIVE


def _float_key(v: torch.Tensor) -> torch.Tensor:
    """dllm::cuda float_key of float32 values, as int64 (-0 and +0 share a key)."""
    u = (v + 0.0).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    return torch.where(u >= 2**31, (~u) & 0xFFFFFFFF, u | 2**31)


def _level_hist(vals, lo_key, m, prefix, shift):
    """The CUDA top_p_level stage in torch: [B, L, 256, 2] counts and integer masses."""
    key = _float_key(vals)
    pmask = 0 if shift == 24 else (0xFFFFFFFF << (shift + 8)) & 0xFFFFFFFF
    inside = (key >= lo_key[..., None]) & ((key & pmask) == prefix[..., None])
    dm = vals - m[..., None]
    w = torch.where(dm >= -40, torch.round(torch.exp(dm).double() * 2.0**40), 0).to(torch.int64)
    bins = (key >> shift) & 255
    h = torch.zeros(*vals.shape[:2], 256, 2, dtype=torch.int64)
    h[..., 0].scatter_add_(-1, bins, inside.to(torch.int64))
    h[..., 1].scatter_add_(-1, bins, torch.where(inside, w, 0))
    return h


@pytest.mark.parametrize("world", [1, 2, 3])
def test_cuda_top_p_protocol(world, monkeypatch):
    """tp.py's CUDA top-p (four radix levels on all-reduced histograms, _pick_bin, _key_float)
    on CPU, the stages emulated in torch and the all-reduce a sum over the shards: tau equals the
    definition, the largest value whose mass of values >= it reaches top_p of the total (as
    float64(integer sum) >= top_p * float64(total)), with lo_key, ties and -inf values."""
    g = torch.Generator().manual_seed(world)
    B, L, V, top_p = 2, 5, 3001, 0.9
    vals = (torch.randn(B, L, V, generator=g) * 3).round(decimals=1)  # ties
    vals[0, 0, :100] = float("-inf")
    lo = torch.full((B, L), float("-inf"))
    lo[1] = vals[1].topk(40, dim=-1).values[..., -1]  # top_k_first's bound on batch row 1
    ranges = [tp.vocab_range(V, r, world) for r in range(world)]

    class Shard:
        def __call__(self, stage, threshold=None, anchor=None, bucket=None, shift=0):
            if stage == "range":
                return torch.stack([vals.amax(-1), vals.amin(-1)], dim=-1)
            lo_key = _float_key(threshold) if threshold is not None else torch.zeros_like(bucket)
            parts = [
                _level_hist(vals[..., vs : vs + n], lo_key, anchor, bucket, shift)
                for vs, n in ranges
            ]
            return sum(parts)

    monkeypatch.setattr(tp, "_all_reduce", lambda t, group, op=None: t)
    tau = tp._top_p_threshold_cuda(Shard(), top_p, lo, None)
    m = vals.amax(-1)
    for b in range(B):
        for l in range(L):
            v = vals[b, l][vals[b, l] >= lo[b, l]]
            w = torch.where(
                v - m[b, l] >= -40, torch.round(torch.exp(v - m[b, l]).double() * 2.0**40), 0
            ).to(torch.int64)
            need = top_p * float(w.sum())
            uniq = v.unique(sorted=True).flip(0)  # descending
            cum = torch.stack([w[v >= u].sum() for u in uniq])
            want = uniq[(cum.double() >= need).nonzero()[0, 0]]
            assert float(tau[b, l]) == float(want), (b, l)


@pytest.mark.parametrize("device", DEVICES)
def test_shard_ops_opcheck(device):
    """The shard pieces are internal ops (no Meta kernels: the members stage's width is
    data-dependent, and tp.py never traces them): their schemas and autograd registration."""
    g = torch.Generator().manual_seed(7)
    logits = (torch.randn(2, 3, 40, generator=g) * 3).to(device)
    x = torch.full((2, 3), 39, dtype=torch.int64, device=device)
    args = (39, 0.8, 0, 1.0, "top_k_first", "neg_entropy", "raw", False, None, 5, 0, None, None)
    utils = ("test_schema", "test_autograd_registration")
    op = torch.ops.dllm_kernels
    state = op.denoise_shard(logits, x, *args, 0.0, 0, "state", None, None, None)
    M = state[..., 0].float().contiguous()
    torch.library.opcheck(
        op.denoise_shard, (logits, x, *args, 0.0, 0, "state", None, None, None), test_utils=utils
    )
    torch.library.opcheck(
        op.denoise_shard, (logits, x, *args, 0.0, 0, "sums", None, M, None), test_utils=utils
    )
    sums = op.denoise_shard(logits, x, *args, 0.0, 0, "sums", None, M, None)
    fin = (state, sums, x, 39, "neg_entropy", 5, 0, None)
    torch.library.opcheck(op.denoise_shard_finalize, fin, test_utils=utils)
    # one shard = the whole vocabulary: the pieces give the unsharded op's result
    x0, conf, _ = op.denoise_shard_finalize(*fin)
    want = ops.denoise_step(logits, x, 39, temperature=0.8, confidence="neg_entropy", seed=5)
    assert torch.equal(x0, want[0]) and torch.equal(conf, want[1])
    if device == "cuda":  # top-p over CUDA shards: range and top_p_level (hist is CPU's)
        with pytest.raises(RuntimeError, match=r"denoise_shard: stage 'hist' has no CUDA kernel"):
            op.denoise_shard(logits, x, *args, 0.0, 0, "hist", None, M, None)
        prefix = torch.zeros(2, 3, dtype=torch.int64, device=device)
        m_s = op.denoise_shard(logits, x, *args, 0.0, 0, "range", None, None, None)[..., 0]
        level = (logits, x, *args, 0.0, 0, "top_p_level", None, m_s.contiguous(), prefix)
        level = (*level, False, 24)
        torch.library.opcheck(op.denoise_shard, level, test_utils=utils)
        h = op.denoise_shard(*level)  # every token of the row in the first level's counts
        counts = h[..., 0].sum(-1)
        assert h.shape == (2, 3, 256, 2) and bool((counts == 40).all())
        with pytest.raises(RuntimeError, match="denoise_shard: shift must be 24, 16, 8 or 0"):
            op.denoise_shard(*level[:-1], 12)
        return
    hist = torch.rand(4, 4096, dtype=torch.float64, generator=g)
    plan = (hist, 0.5, torch.zeros(4, dtype=torch.int64), torch.zeros(4, dtype=torch.float64))
    torch.library.opcheck(op.top_p_shard_plan, plan, test_utils=utils)


def _on(device, case, tensors):
    """The case (its select tensors) and its inputs on `device`."""
    select = case["select"]
    if select is not None:
        select = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in select.items()}
    moved = [t.to(device) if t is not None else None for t in tensors]
    return {**case, "select": select}, moved


def _cuda_sharded(rank, world):
    """Every case on CUDA shards of one GPU shared by the ranks (gloo moves the small tensors
    through the host); per case the outputs and whether the logits were all-gathered (the
    fallback) instead of running the shard kernels."""
    import torch.distributed as dist

    out = []
    with _all_gathers() as gathered:
        for case in CASES:
            case, inputs = _on("cuda", case, _inputs(case))
            before = len(gathered)
            got = _rank_call(case, inputs, rank, world, dist.group.WORLD)
            out.append(([g.cpu() for g in got], len(gathered) > before))
    return out


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_shards_equal_unsharded():
    """CUDA shards at tp = 2 (two gloo ranks on cuda:0): every rank gets the unsharded CUDA op's
    result bit for bit, through the CUDA shard kernels in every case (top-p: the radix levels)."""
    per_rank = run_ranks(_cuda_sharded, 2)
    for i, case in enumerate(CASES):
        cuda_case, (logits, x, uncond, eligible) = _on("cuda", case, _inputs(case))
        want = [w.cpu() for w in _call(cuda_case, logits, x, uncond, eligible)]
        for rank_out in per_rank:
            got, gathered = rank_out[i]
            assert gathered == (not NATIVE), case["name"]
            assert all(torch.equal(g, w) for g, w in zip(got, want)), case["name"]
