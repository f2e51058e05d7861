"""denoise_and_select: the same results as denoise_step + select_transfer, commit in place,
errors before anything is written."""

import pytest
import torch
from test_denoise_step import ATOL, RTOL, make

import dllm_kernels as dk
from dllm_kernels import reference


@pytest.mark.parametrize(
    "kw",
    [
        {"num_transfer": 3},
        {"threshold": 0.1},
        {"factor": 1.0},
        {"probability": 0.5},
        {"num_transfer": 2, "temperature": 1.0, "top_p": 0.9, "confidence": "margin"},
        {"threshold": -3.0, "strict": True, "confidence": "neg_entropy", "shift_logits": True},
    ],
    ids=str,
)
@pytest.mark.parametrize("commit", [False, True])
def test_matches_separate_calls(device, gen, kw, commit):
    logits, x, mask_id = make(3, 33, 500, device, gen)
    select_keys = ("num_transfer", "threshold", "factor", "probability", "strict")
    dkw = {k: v for k, v in kw.items() if k not in select_keys}
    skw = {k: v for k, v in kw.items() if k in select_keys}
    x0, conf = dk.denoise_step(logits, x, mask_id, seed=42, offset=3, **dkw)
    transfer = dk.select_transfer(conf, seed=42, offset=3, **skw)
    want_x = x.clone()
    want_x[transfer] = x0[transfer]
    xx = x.clone()
    got = dk.denoise_and_select(logits, xx, mask_id, seed=42, offset=3, commit=commit, **kw)
    assert torch.equal(got[0], x0) and torch.equal(got[1], conf) and torch.equal(got[2], transfer)
    assert torch.equal(xx, want_x if commit else x)


def test_per_row_k_tensor(device, gen):
    logits, x, mask_id = make(3, 20, 100, device, gen, p_mask=1.0)
    k = torch.tensor([1, 5, 0], device=device)
    _, _, transfer = dk.denoise_and_select(logits, x.clone(), mask_id, num_transfer=k)
    assert transfer.sum(1).tolist() == [1, 5, 0]


@pytest.mark.native
def test_opcheck(device, gen):
    logits, x, mask_id = make(2, 9, 64, device, gen)
    args = (
        logits,
        x.clone(),
        mask_id,
        1.0,
        0,
        1.0,
        "top_k_first",
        "prob",
        "raw",
        False,
        None,
        "num_transfer",
        torch.tensor([2, 3], device=device),
        0.0,
        False,
        True,
        5,
        0,
    )
    torch.library.opcheck(torch.ops.dllm_kernels.denoise_and_select, args)


@pytest.mark.native
@pytest.mark.parametrize("impl", ["native", "public"])
def test_bad_selection_writes_nothing(device, gen, impl):
    logits, x, mask_id = make(2, 9, 64, device, gen)
    before = x.clone()
    with pytest.raises(
        RuntimeError, match=r"denoise_and_select: .*(exactly one selection rule|factor must be > 0)"
    ):
        if impl == "native":
            torch.ops.dllm_kernels.denoise_and_select(
                logits,
                x,
                mask_id,
                0.0,
                0,
                1.0,
                "top_k_first",
                "prob",
                "raw",
                False,
                None,
                "factor",
                None,
                0.0,
                False,
                True,
                0,
                0,
            )
        else:
            dk.denoise_and_select(logits, x, mask_id, num_transfer=1, threshold=0.5, commit=True)
    assert torch.equal(x, before)


# ---- the op vs the reference, in every layout of the fused CUDA kernel --------------------------
# On CUDA denoise_and_select is one kernel (after a memset of its counters). Its layout depends on
# B*L, V and the filters: V split over blocks (B*L small, V >= 8192: the last split block merges),
# no split (B*L >= 4 x 132 SMs), filtered (top_k / top_p), L <= 4096 (bitonic sort) or longer
# (rank count). Each layout runs every selection rule, with and without commit, against the
# reference: x0 exactly, conf within the denoise tolerance, transfer exactly equal to the
# reference selection of the conf the op returned (a selection is an exact function of conf, so a
# last-ulp conf difference cannot flip a near tie), x committed exactly there.

LAYOUTS = {
    "split-126464": dict(B=2, L=7, V=126_464),  # ~30 splits per position
    "split-8192-L33": dict(B=2, L=33, V=8192),  # 2 splits per position
    "nosplit": dict(B=16, L=33, V=8192),  # B*L = 528: one block each
    "topk": dict(B=2, L=33, V=1000, top_k=5, temperature=1.0),
    "topp-first": dict(
        B=2,
        L=33,
        V=1000,
        top_k=20,
        top_p=0.8,
        filter_order="top_p_first",
        temperature=0.7,
        confidence_source="sampling",
        confidence="margin",
    ),
    "L1": dict(B=3, L=1, V=9000, confidence="neg_entropy"),
    "L512": dict(B=2, L=512, V=300, confidence="random"),
    "L5000": dict(B=2, L=5000, V=64),  # rank-count selection
}
RULES = {
    "k-int": {"num_transfer": 3},
    "k-strided": "strided",  # a column of a [B, 4] schedule
    "threshold": {"threshold": 0.2},
    "threshold-strict": {"threshold": 0.25, "strict": True},
    "factor": {"factor": 1.0},
    "probability": {"probability": 0.5},
    "p-strided": "strided",  # a column of a [B, 3] tensor
}
SELECT_KEYS = ("num_transfer", "threshold", "factor", "probability", "strict")


def make_step(B, L, V, device, gen, dtype=torch.float32):
    """Logits with ties (quarter steps), NaN, +inf and -inf; row 0 has nothing masked."""
    logits = torch.round(torch.randn(B, L, V, generator=gen) * 12) / 4
    r = torch.rand(B, L, V, generator=gen)
    logits[r < 0.002] = float("nan")
    logits[(r >= 0.002) & (r < 0.003)] = float("inf")
    logits[(r >= 0.003) & (r < 0.004)] = float("-inf")
    mask_id = V + 7
    x = torch.randint(0, V, (B, L), generator=gen)
    x[1:][torch.rand(B - 1, L, generator=gen) < 0.7] = mask_id
    if B > 1:
        x[1, 0] = mask_id  # one masked position at least (shift: reads its own)
    return logits.to(dtype).to(device), x.to(device), mask_id


def check_against_reference(logits, x, mask_id, commit, **kw):
    dkw = {k: v for k, v in kw.items() if k not in SELECT_KEYS}
    skw = {k: v for k, v in kw.items() if k in SELECT_KEYS}
    xx = x.clone()
    x0, conf, transfer = dk.denoise_and_select(logits, xx, mask_id, commit=commit, **kw)
    want_x0, want_conf = reference.denoise_step(logits.cpu(), x.cpu(), mask_id, **dkw)
    bad = (x0.cpu() != want_x0).nonzero()[:5].tolist()
    assert not bad, f"x0 differs at {bad}"
    torch.testing.assert_close(conf.cpu(), want_conf, rtol=RTOL, atol=ATOL)
    skw = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in skw.items()}
    want_t = reference.select_transfer(
        conf.cpu(), seed=kw.get("seed"), offset=kw.get("offset", 0), **skw
    )
    bad = (transfer.cpu() != want_t).nonzero()[:5].tolist()
    assert not bad, f"transfer differs at {bad}"
    want_x = torch.where(want_t, x0.cpu(), x.cpu()) if commit else x.cpu()
    assert torch.equal(xx.cpu(), want_x)
    masked = x.cpu() == mask_id
    assert not bool(transfer.cpu()[~masked].any())  # only masked positions commit
    return x0, conf, transfer


@pytest.mark.parametrize("commit", [False, True], ids=["nocommit", "commit"])
@pytest.mark.parametrize("rule", list(RULES), ids=str)
@pytest.mark.parametrize("layout", list(LAYOUTS), ids=str)
def test_fused_layouts_match_reference(device, gen, layout, rule, commit):
    kw = dict(LAYOUTS[layout])
    B, L, V = kw.pop("B"), kw.pop("L"), kw.pop("V")
    logits, x, mask_id = make_step(B, L, V, device, gen)
    assert bool((x[1:] == mask_id).any())
    if rule == "k-strided":
        schedule = torch.randint(0, L + 2, (B, 4), generator=gen).to(device)
        kw["num_transfer"] = schedule[:, 1]  # stride 4, no copy
        assert not kw["num_transfer"].is_contiguous()
    elif rule == "p-strided":
        kw["probability"] = torch.rand(B, 3, generator=gen).to(device)[:, 2]
        assert not kw["probability"].is_contiguous()
    else:
        kw.update(RULES[rule])
    x0, conf, transfer = check_against_reference(
        logits, x, mask_id, commit, seed=77, offset=5, **kw
    )
    assert not bool(transfer[0].any()) and bool((conf[0] == float("-inf")).all())  # row 0: no mask
    if "num_transfer" in kw:
        k = torch.as_tensor(kw["num_transfer"]).expand(B).cpu()
        eligible = (conf.cpu() > float("-inf")).sum(1)
        assert transfer.cpu().sum(1).tolist() == torch.minimum(k, eligible).tolist()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_fused_half_logits_shift_and_suppress(device, gen, dtype):
    logits, x, mask_id = make_step(3, 33, 8192, device, gen, dtype=dtype)
    check_against_reference(
        logits,
        x,
        mask_id,
        True,
        num_transfer=4,
        shift_logits=True,
        suppress_tokens=[5, 1, 4000],
        temperature=1.0,
        seed=9,
    )


def test_fused_strided_x_commit(device, gen):
    """x is a column slice of a bigger buffer: only the slice's selected positions change."""
    logits, full, mask_id = make_step(2, 40, 9000, device, gen)
    x = full[:, 3:36]
    before = full.clone()
    xx = x  # committed in place, through the view
    x0, _, transfer = dk.denoise_and_select(
        logits[:, 3:36], xx, mask_id, threshold=0.1, commit=True, seed=1
    )
    want = before.clone()
    want[:, 3:36] = torch.where(transfer, x0, before[:, 3:36])
    assert torch.equal(full, want)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("layout", ["split-126464", "nosplit", "topp-first", "L5000"])
@pytest.mark.parametrize("rule", ["k-strided", "factor"])
def test_cuda_one_kernel_launch(layout, rule):
    """The CUDA op launches exactly one kernel of ours (the fused one) and nothing else but the
    counters' memset (no merge, select_transfer or commit kernel, no copy of per-row k)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    gen = torch.Generator().manual_seed(3)
    kw = dict(LAYOUTS[layout])
    B, L, V = kw.pop("B"), kw.pop("L"), kw.pop("V")
    logits, x, mask_id = make_step(B, L, V, "cuda", gen)
    if rule == "k-strided":
        kw["num_transfer"] = torch.randint(0, 5, (B, 4), generator=gen).cuda()[:, 2]
    else:
        kw["factor"] = 1.0
    dk.denoise_and_select(logits, x.clone(), mask_id, commit=True, seed=1, **kw)  # warm up
    xx = x.clone()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        dk.denoise_and_select(logits, xx, mask_id, commit=True, seed=1, **kw)
        torch.cuda.synchronize()
    gpu = [e.name for e in prof.events() if e.device_type == DeviceType.CUDA]
    ours = [n for n in gpu if "dllm" in n or "denoise" in n or "select" in n or "commit" in n]
    others = [n for n in gpu if n not in ours and "memset" not in n.lower()]
    assert len(ours) == 1 and "SelectEpilogue" in ours[0], ours
    assert not others, others


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("layout", ["split-126464", "nosplit", "topk"])
def test_cuda_graph_capture(layout):
    """The fused op (memset + kernel) is captured in a CUDA graph; replays equal eager calls."""
    gen = torch.Generator().manual_seed(4)
    kw = dict(LAYOUTS[layout])
    B, L, V = kw.pop("B"), kw.pop("L"), kw.pop("V")
    logits, x, mask_id = make_step(B, L, V, "cuda", gen)
    k = torch.full((B,), 2, device="cuda")
    want = dk.denoise_and_select(logits, x.clone(), mask_id, num_transfer=k, seed=5, **kw)
    x_static = x.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        dk.denoise_and_select(logits, x_static.clone(), mask_id, num_transfer=k, seed=5, **kw)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        got = dk.denoise_and_select(
            logits, x_static, mask_id, num_transfer=k, commit=True, seed=5, **kw
        )
    for _ in range(2):  # replay twice: the counters must be zeroed again by the graph's memset
        x_static.copy_(x)
        g.replay()
        torch.cuda.synchronize()
        assert all(torch.equal(a, b) for a, b in zip(got, want))
        assert torch.equal(x_static, torch.where(want[2], want[0], x))


# ---- issue 16: EB selection, eligible + renoise (DiffusionGemma's step), CFG
# -----------------------


def dg_accept_literal(logits, temperature, gamma):
    """The acceptance of transformers' DiffusionGemma step, written out here: the processed
    logits (logits / temperature), their entropies, EntropyBoundSampler.accept_canvas on them."""
    from test_select_transfer import accept_canvas_literal

    processed = logits.float() / temperature
    entropy = torch.distributions.Categorical(logits=processed).entropy()
    return accept_canvas_literal(entropy, gamma)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("B,L,V", [(2, 33, 50_257), (3, 7, 262_144), (1, 1, 126_464)])
def test_eligible_eb_renoise_vs_reference(device, gen, dtype, B, L, V):
    logits = (torch.randn(B, L, V, generator=gen) * 4).to(dtype).to(device)
    x = torch.randint(0, V, (B, L), generator=gen).to(device)
    eligible = (torch.rand(B, L, generator=gen) < 0.8).to(device)
    kw = dict(
        eligible=eligible,
        temperature=0.8,
        confidence="neg_entropy",
        confidence_source="sampling",
        entropy_bound=3.0,
        commit=True,
        renoise=True,
        seed=11,
        offset=2,
    )
    got_x, want_x = x.clone(), x.cpu().clone()
    x0, conf, transfer = dk.denoise_and_select(logits, got_x, None, **kw)
    wkw = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    w0, wconf, wtransfer = reference.denoise_and_select(logits.cpu(), want_x, None, **wkw)
    assert torch.equal(x0.cpu(), w0)
    torch.testing.assert_close(conf.cpu(), wconf, rtol=RTOL, atol=ATOL)
    # the selection is an exact function of conf: compare against the reference rule on our conf
    assert torch.equal(transfer.cpu(), reference.select_transfer(conf.cpu(), entropy_bound=3.0))
    want_x = x.cpu().clone()
    t = transfer.cpu()
    want_x[t] = x0.cpu()[t]
    renoised = eligible.cpu() & ~t
    assert torch.equal(got_x.cpu()[~renoised], want_x[~renoised])
    from dllm_kernels.reference import philox

    b = torch.arange(B)[:, None].expand(B, L)
    l = torch.arange(L)[None, :].expand(B, L)
    draws = philox.below(
        philox.random_words(11, 2, b, l, torch.full_like(b, philox.SLOT_RENOISE)), V
    )
    assert torch.equal(got_x.cpu()[renoised], draws[renoised])


def test_eb_acceptance_is_transformers_on_the_step(device, gen):
    """The fused step's transfer equals transformers' accept_canvas on the entropies of the
    temperature-processed logits (the peer's order of operations), transcribed in the test."""
    B, L, V = 2, 64, 2000
    logits = (torch.randn(B, L, V, generator=gen) * torch.rand(B, L, 1, generator=gen) * 6).to(
        device
    )
    x = torch.randint(0, V, (B, L), generator=gen).to(device)
    eligible = torch.ones(B, L, dtype=torch.bool, device=device)
    for gamma in (0.5, 4.0):
        _, conf, transfer = dk.denoise_and_select(
            logits,
            x.clone(),
            None,
            eligible=eligible,
            temperature=0.7,
            confidence="neg_entropy",
            confidence_source="sampling",
            entropy_bound=gamma,
            seed=1,
        )
        want = dg_accept_literal(logits.cpu(), 0.7, gamma)
        # (the two entropies agree to float32 rounding; random logits put no S_k - H_k that
        # close to gamma, so the acceptances are equal)
        assert torch.equal(transfer.cpu(), want)
        assert 0 < int(transfer.sum()) < B * L


def test_renoise_tokens_are_uniform(device, gen):
    B, L, V = 8, 256, 1000
    logits = torch.randn(B, L, V, generator=gen).to(device)
    x = torch.randint(0, V, (B, L), generator=gen).to(device)
    eligible = torch.ones(B, L, dtype=torch.bool, device=device)
    xx = x.clone()
    _, _, transfer = dk.denoise_and_select(
        logits,
        xx,
        None,
        eligible=eligible,
        confidence="neg_entropy",
        entropy_bound=0.01,
        commit=True,
        renoise=True,
        seed=3,
    )
    drawn = xx[~transfer].cpu()
    assert drawn.numel() > 1500 and int(drawn.min()) >= 0 and int(drawn.max()) < V
    counts = torch.bincount(drawn // 100, minlength=10).double()  # 10 bins of 100 ids
    expected = drawn.numel() / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9  # p = 0.001, 9 dof
    xx2 = x.clone()
    dk.denoise_and_select(
        logits,
        xx2,
        None,
        eligible=eligible,
        confidence="neg_entropy",
        entropy_bound=0.01,
        commit=True,
        renoise=True,
        seed=4,
    )
    assert float((xx2 != xx).float().mean()) > 0.9  # another seed, other draws


@pytest.mark.parametrize(
    "kw",
    [
        {"num_transfer": 3},
        {"threshold": 0.05, "temperature": 1.0},
        {"entropy_bound": 2.0, "confidence": "neg_entropy"},
    ],
    ids=str,
)
def test_cfg_matches_separate_calls(device, gen, kw):
    logits, x, mask_id = make(3, 33, 5000, device, gen)
    u = torch.randn(3, 33, 5000, generator=gen).mul(3).to(device)
    dkw = {k: v for k, v in kw.items() if k in ("temperature", "confidence")}
    skw = {k: v for k, v in kw.items() if k not in dkw}
    x0, conf = dk.denoise_step(logits, x, mask_id, uncond_logits=u, cfg_scale=1.5, seed=2, **dkw)
    transfer = dk.select_transfer(conf, **skw)
    xx = x.clone()
    got = dk.denoise_and_select(
        logits, xx, mask_id, uncond_logits=u, cfg_scale=1.5, seed=2, commit=True, **kw
    )
    assert torch.equal(got[0], x0) and torch.equal(got[1], conf) and torch.equal(got[2], transfer)
    want = x.clone()
    want[transfer] = x0[transfer]
    assert torch.equal(xx, want)


@pytest.mark.native
def test_opcheck_issue16(device, gen):
    logits, x, _ = make(2, 9, 64, device, gen)
    eligible = torch.rand(2, 9, generator=gen).lt(0.7).to(device)
    args = (
        logits,
        x.clone(),
        -1,
        1.0,
        0,
        1.0,
        "top_k_first",
        "neg_entropy",
        "sampling",
        False,
        None,
        "entropy_bound",
        None,
        2.0,
        False,
        True,
        5,
        0,
        eligible,
        None,
        0.0,
        True,
    )
    torch.library.opcheck(torch.ops.dllm_kernels.denoise_and_select, args)


BAD16 = {
    "renoise no commit": (
        {"renoise": True, "entropy_bound": 1.0},
        r"denoise_and_select: renoise needs commit=True",
    ),
    "renoise no eligible": (
        {"renoise": True, "commit": True, "num_transfer": 1, "eligible": None},
        r"denoise_and_select: renoise needs eligible",
    ),
    "eb prob": (
        {"entropy_bound": 1.0, "confidence": "prob"},
        r"denoise_and_select: entropy_bound needs confidence='neg_entropy'",
    ),
    "eb 0": ({"entropy_bound": 0.0}, r"denoise_and_select: entropy_bound must be > 0"),
    "eligible overlaps x": (
        {"entropy_bound": 1.0, "commit": True, "eligible": "alias"},
        r"denoise_and_select: eligible must not share memory with x",
    ),
}


@pytest.mark.parametrize("impl", ["native", "public", "reference"])
@pytest.mark.parametrize("case", BAD16)
def test_bad_input_issue16_writes_nothing(device, gen, case, impl):
    logits, x, mask_id = make(2, 9, 64, device, gen)
    x = x % 2  # 0 / 1 tokens
    kw = {
        "confidence": "neg_entropy",
        "eligible": torch.ones(2, 9, dtype=torch.bool, device=device),
        **BAD16[case][0],
    }
    if isinstance(kw["eligible"], str):
        kw["eligible"] = x.view(torch.uint8)[:, ::8].view(torch.bool)  # x's own bytes
    before = x.clone()
    with pytest.raises(RuntimeError, match=BAD16[case][1]):
        if impl == "native":
            rule = next(r for r in ("entropy_bound", "num_transfer") if r in kw)
            per_row = (
                torch.ones(2, dtype=torch.long, device=device) if rule == "num_transfer" else None
            )
            torch.ops.dllm_kernels.denoise_and_select(
                logits,
                x,
                mask_id,
                0.0,
                0,
                1.0,
                "top_k_first",
                kw["confidence"],
                "raw",
                False,
                None,
                rule,
                per_row,
                float(kw.get(rule, 0.0)) if rule != "num_transfer" else 0.0,
                False,
                kw.get("commit", False),
                0,
                0,
                kw["eligible"],
                None,
                0.0,
                kw.get("renoise", False),
            )
        else:
            fn = dk.denoise_and_select if impl == "public" else reference.denoise_and_select
            fn(logits, x, mask_id, **kw)
    assert torch.equal(x, before)


@pytest.mark.parametrize(
    "kw", [{"num_transfer": 3}, {"entropy_bound": 1.5, "renoise": True}], ids=str
)
def test_return_argmax_before_commit(device, gen, kw):
    """argmax is denoise_step's, of x before the commit / renoise rewrite it."""
    B, L, V = 2, 33, 5000
    logits = (torch.randn(B, L, V, generator=gen) * 3).to(device)
    x = torch.randint(0, V, (B, L), generator=gen).to(device)
    eligible = (torch.rand(B, L, generator=gen) < 0.7).to(device)
    opts = dict(
        eligible=eligible,
        temperature=0.8,
        confidence="neg_entropy",
        confidence_source="sampling",
        seed=11,
        commit=True,
        **kw,
    )
    want_x = x.clone().cpu()
    want = reference.denoise_and_select(
        logits.cpu(),
        want_x,
        None,
        return_argmax=True,
        **{k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in opts.items()},
    )
    _, _, am_step = dk.denoise_step(
        logits,
        x,
        None,
        eligible=eligible,
        temperature=0.8,
        confidence="neg_entropy",
        confidence_source="sampling",
        seed=11,
        return_argmax=True,
    )
    got = dk.denoise_and_select(logits, x, None, return_argmax=True, **opts)
    assert len(got) == 4
    for g, w in zip(got, want):
        assert (
            torch.equal(g.cpu(), w)
            if w.dtype != torch.float32
            else torch.allclose(g.cpu(), w, rtol=1e-5, atol=1e-6)
        )
    assert torch.equal(got[3], am_step) and torch.equal(x.cpu(), want_x)
    assert len(dk.denoise_and_select(logits, x.clone(), None, **opts)) == 3  # old calls: 3 outputs
