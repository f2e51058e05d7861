"""denoise_step: kernel vs reference (the spec) on random logits, every option, dtype and odd shape;
sampling statistics; NaN/inf rules; strided inputs; opcheck; errors."""

import math

import pytest
import torch

try:  # property tests need hypothesis (tools/dev.sh installs it); the rest of the file does not
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:
    given = None

import dllm_kernels as dk
from dllm_kernels import reference

RTOL, ATOL = 1e-5, 1e-6  # conf vs the float64 reference; margins near 0 need the absolute term


def make(B, L, V, device, gen, dtype=torch.float32, p_mask=0.6, scale=3.0):
    logits = (torch.randn(B, L, V, generator=gen) * scale).to(dtype)
    mask_id = V + 7
    x = torch.randint(0, V, (B, L), generator=gen)
    x[torch.rand(B, L, generator=gen) < p_mask] = mask_id
    return logits.to(device), x.to(device), mask_id


def check(logits, x, mask_id, **kw):
    got = dk.denoise_step(logits, x, mask_id, **kw)
    kw = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    want = reference.denoise_step(logits.cpu(), x.cpu(), mask_id, **kw)
    assert torch.equal(got[0].cpu(), want[0]), (
        f"x0 differs at {(got[0].cpu() != want[0]).nonzero()[:5].tolist()}"
    )
    torch.testing.assert_close(got[1].cpu(), want[1], rtol=RTOL, atol=ATOL)
    return got


@pytest.mark.parametrize("V", [50, 50_257, 126_464, 151_936])
def test_vocab_sizes(device, gen, V):
    logits, x, mask_id = make(2, 7, V, device, gen)
    check(logits, x, mask_id)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"confidence": "margin"},
        {"confidence": "neg_entropy"},
        {"temperature": 1.0, "seed": 3},
        {"suppress_tokens": [0, 16384, 40000]},
        {"confidence": "random", "seed": 2},
    ],
    ids=str,
)
@pytest.mark.parametrize("V", [50_257, 151_936])
def test_single_position_vocab_split(device, gen, V, kw):
    """One masked position (fewer positions than threads): the CPU splits the vocabulary across
    threads and merges slice states in order; the result must not change."""
    logits, x, mask_id = make(1, 1, V, device, gen, p_mask=1.0)
    check(logits, x, mask_id, **kw)


@pytest.mark.parametrize("B,L", [(1, 1), (1, 7), (3, 32), (3, 33), (1, 512), (64, 7)])
def test_shapes(device, gen, B, L):
    logits, x, mask_id = make(B, L, 257, device, gen)
    check(logits, x, mask_id, confidence="margin")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("confidence", ["prob", "margin", "neg_entropy"])
def test_dtypes(device, gen, dtype, confidence):
    """Half inputs: the reference reads the same values upcast to float32."""
    logits, x, mask_id = make(3, 33, 1000, device, gen, dtype=dtype)
    check(logits, x, mask_id, confidence=confidence)


OPTIONS = [
    {},
    {"confidence": "margin"},
    {"confidence": "neg_entropy"},
    {"confidence": "random", "seed": 11},
    {"temperature": 1.0, "seed": 1},
    {"temperature": 0.7, "seed": 2, "confidence_source": "sampling"},
    {"temperature": 1.3, "seed": 3, "top_k": 5},
    {"temperature": 1.0, "seed": 4, "top_p": 0.9},
    {
        "temperature": 1.0,
        "seed": 5,
        "top_p": 0.8,
        "top_k": 20,
        "filter_order": "top_p_first",
        "confidence_source": "sampling",
        "confidence": "margin",
    },
    {"temperature": 0.0, "top_p": 0.5, "confidence_source": "sampling"},  # Dream at T = 0
    {"temperature": 0.0, "top_k": 3, "confidence_source": "sampling", "confidence": "neg_entropy"},
    {"shift_logits": True},
    {"suppress_tokens": [0, 3, 999]},
    {"suppress_tokens": torch.tensor([5, 1]), "temperature": 1.0, "seed": 6, "shift_logits": True},
    {"temperature": 0.5, "seed": 2**64 - 1, "offset": 2**32 - 1},
]


@pytest.mark.parametrize(
    "kw", OPTIONS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default"
)
def test_options(device, gen, kw):
    logits, x, mask_id = make(3, 33, 1000, device, gen)
    if isinstance(kw.get("suppress_tokens"), torch.Tensor):
        kw = {**kw, "suppress_tokens": kw["suppress_tokens"].to(device)}
    x0, conf = check(logits, x, mask_id, **kw)
    masked = x == mask_id
    assert torch.equal(x0[~masked], x[~masked]) and bool((conf[~masked] == float("-inf")).all())
    assert bool((x0[masked] >= 0).all() and (x0[masked] < 1000).all())
    if kw.get("suppress_tokens") is not None:
        assert not bool(
            torch.isin(x0[masked], torch.as_tensor(kw["suppress_tokens"]).to(device)).any()
        )


def test_strided_logits_and_x(device, gen):
    """full[:, start:end] slices of logits and x, and a batch-transposed logits view, in place."""
    full, xfull, mask_id = make(2, 40, 300, device, gen)
    logits, x = full[:, 5:38], xfull[:, 5:38]
    assert not logits.is_contiguous() and not x.is_contiguous()
    check(logits, x, mask_id, temperature=1.0, seed=9)
    t = full.transpose(0, 1).contiguous().transpose(0, 1)  # strides (V, B*V, 1)
    check(t, xfull, mask_id, confidence="neg_entropy")


def test_ties_go_to_the_smallest_id(device):
    V = 10
    logits = torch.zeros(1, 3, V)
    logits[0, 0, [2, 5, 7]] = 4.0  # three-way tie for the max
    logits[0, 1, [9, 1]] = 2.0
    logits[0, 2] = 1.0  # all equal
    x = torch.full((1, 3), 99)
    x0, conf = dk.denoise_step(logits.to(device), x.to(device), 99, confidence="margin")
    assert x0.tolist() == [[2, 1, 0]]
    assert conf.tolist() == [[0.0, 0.0, 0.0]]  # tied top two: margin 0
    x0, _ = dk.denoise_step(logits.to(device), x.to(device), 99, top_k=1, temperature=1.0, seed=3)
    assert x0[0, 0].item() in (2, 5, 7)  # top_k keeps ties


def test_nan_and_inf_logits(device):
    nan, inf = float("nan"), float("inf")
    logits = torch.tensor(
        [
            [
                [nan, 1.0, 2.0, nan, 0.0, 2.0],  # NaN never chosen; tie 2.0 -> id 2
                [nan, nan, nan, nan, nan, nan],  # nothing decodable: stays masked, conf -inf
                [-inf, -inf, -inf, -inf, -inf, -inf],
                [0.0, inf, 3.0, inf, 1.0, 2.0],  # +inf wins, ties to the smallest id, mass shared
            ]
        ]
    )
    x = torch.full((1, 4), 50)
    for kw in ({}, {"temperature": 1.0, "seed": 1}):
        x0, conf = dk.denoise_step(logits.to(device), x.to(device), 50, **kw)
        assert x0[0, 1].item() == 50 and x0[0, 2].item() == 50
        assert conf[0, 1].item() == float("-inf") and conf[0, 2].item() == float("-inf")
        assert x0[0, 0].item() in (1, 2, 4, 5) and x0[0, 3].item() in (1, 3)
        want = reference.denoise_step(logits, x, 50, **kw)
        assert torch.equal(x0.cpu(), want[0])
        torch.testing.assert_close(conf.cpu(), want[1], rtol=RTOL, atol=ATOL)
    x0, conf = dk.denoise_step(logits.to(device), x.to(device), 50)
    assert x0[0, 0].item() == 2 and x0[0, 3].item() == 1 and conf[0, 3].item() == pytest.approx(0.5)


def test_all_suppressed_row_stays_masked(device, gen):
    logits, x, mask_id = make(1, 4, 3, device, gen, p_mask=1.0)
    x0, conf = dk.denoise_step(logits, x, mask_id, suppress_tokens=[0, 1, 2])
    assert bool((x0 == mask_id).all()) and bool((conf == float("-inf")).all())


def test_same_seed_same_tokens(device, gen):
    logits, x, mask_id = make(2, 64, 5000, device, gen, p_mask=1.0, scale=0.5)
    a = dk.denoise_step(logits, x, mask_id, temperature=1.0, seed=123)[0]
    b = dk.denoise_step(logits, x, mask_id, temperature=1.0, seed=123)[0]
    c = dk.denoise_step(logits, x, mask_id, temperature=1.0, seed=124)[0]
    d = dk.denoise_step(logits, x, mask_id, temperature=1.0, seed=123, offset=1)[0]
    assert torch.equal(a, b)
    assert (a != c).float().mean() > 0.5 and (a != d).float().mean() > 0.5


def _chi2_pvalue(observed, expected):
    """Upper-tail p-value of Pearson's chi-square (Wilson-Hilferty normal approximation)."""
    keep = expected > 0
    stat = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    k = int(keep.sum()) - 1
    z = ((stat / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return 0.5 * math.erfc(z / math.sqrt(2))


@pytest.mark.parametrize(
    "kw",
    [
        {"temperature": 1.0},
        {"temperature": 0.6, "top_k": 6},
        {"temperature": 1.5, "top_p": 0.7},
        {"temperature": 1.0, "top_k": 8, "top_p": 0.6, "filter_order": "top_p_first"},
    ],
    ids=["T1", "T0.6-topk6", "T1.5-topp0.7", "topp-first"],
)
def test_sampling_distribution(device, kw):
    """20,000 draws (one per position, all positions share the logits) follow the filtered softmax
    of the reference; tokens outside the filtered support never appear."""
    V, N = 16, 20_000
    base = torch.linspace(-2, 2, V)[torch.randperm(V, generator=torch.Generator().manual_seed(0))]
    logits = base.expand(1, N, V).contiguous()
    x = torch.full((1, N), V)
    x0, _ = dk.denoise_step(logits.to(device), x.to(device), V, seed=2024, **kw)
    counts = torch.bincount(x0.cpu().reshape(-1), minlength=V).double()
    # The distribution the reference samples from: softmax of its filtered, scaled logits.
    t = kw["temperature"]
    scaled = base[None] * torch.tensor(1.0 / t, dtype=torch.float32)
    f = reference.denoise_step.__globals__
    if kw.get("filter_order", "top_k_first") == "top_k_first":
        filt = f["top_p_filter"](
            f["top_k_filter"](scaled, kw.get("top_k", 0)), kw.get("top_p", 1.0)
        )
    else:
        filt = f["top_k_filter"](
            f["top_p_filter"](scaled, kw.get("top_p", 1.0)), kw.get("top_k", 0)
        )
    q = torch.softmax(filt.double(), -1)[0]
    assert float(counts[q == 0].sum()) == 0, "sampled a filtered-out token"
    assert _chi2_pvalue(counts, q * N) > 1e-4


if given is not None:

    @settings(max_examples=40, deadline=None)
    @given(
        B=st.integers(1, 3),
        L=st.integers(1, 9),
        V=st.integers(1, 300),
        seed=st.integers(0, 2**32),
        temperature=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
        top_k=st.sampled_from([0, 1, 2, 17, 400]),
        top_p=st.sampled_from([1.0, 0.95, 0.5, 0.01]),
        order=st.sampled_from(["top_k_first", "top_p_first"]),
        confidence=st.sampled_from(["prob", "margin", "neg_entropy", "random"]),
        source=st.sampled_from(["raw", "sampling"]),
        shift=st.booleans(),
        scale=st.sampled_from([0.1, 3.0, 30.0]),
    )
    def test_property_matches_reference(
        B, L, V, seed, temperature, top_k, top_p, order, confidence, source, shift, scale
    ):
        gen = torch.Generator().manual_seed(seed)
        logits, x, mask_id = make(B, L, V, "cpu", gen, scale=scale)
        logits[torch.rand(logits.shape, generator=gen) < 0.05] = float("-inf")
        check(
            logits,
            x,
            mask_id,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            filter_order=order,
            confidence=confidence,
            confidence_source=source,
            shift_logits=shift,
            seed=seed,
        )
else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_property_matches_reference():
        pass


@pytest.mark.native
def test_opcheck(device, gen):
    logits, x, mask_id = make(2, 5, 64, device, gen)
    args = (logits, x, mask_id, 1.0, 0, 1.0, "top_k_first", "prob", "raw", False, None, 5, 0)
    torch.library.opcheck(torch.ops.dllm_kernels.denoise_step, args)
    args = (
        logits,
        x,
        mask_id,
        0.0,
        3,
        0.9,
        "top_p_first",
        "margin",
        "sampling",
        True,
        torch.tensor([1, 2], device=device),
        -7,
        3,
    )
    torch.library.opcheck(torch.ops.dllm_kernels.denoise_step, args)


# ---- bad input
# -------------------------------------------------------------------------------------

BAD = {
    "logits int": (lambda l, x: (l.long(), x, 0, {}), r"denoise_step: logits must have dtype"),
    "logits 2-D": (lambda l, x: (l[0], x, 0, {}), r"denoise_step: logits must be 3-D"),
    "V not contiguous": (
        lambda l, x: (l.transpose(1, 2), x[:, :1].expand(2, 64).contiguous(), 0, {}),
        r"denoise_step: logits must be contiguous in the last",
    ),
    "x int32": (lambda l, x: (l, x.int(), 0, {}), r"denoise_step: x must have dtype"),
    "x shape": (lambda l, x: (l, x[:, :-1], 0, {}), r"denoise_step: x must have shape"),
    "mask_id < 0": (lambda l, x: (l, x, -1, {}), r"denoise_step: mask_id must be >= 0"),
    "top_k < 0": (lambda l, x: (l, x, 0, {"top_k": -1}), r"denoise_step: top_k must be >= 0"),
    "top_p 0": (lambda l, x: (l, x, 0, {"top_p": 0.0}), r"denoise_step: top_p must be in \(0, 1\]"),
    "top_p > 1": (
        lambda l, x: (l, x, 0, {"top_p": 1.5}),
        r"denoise_step: top_p must be in \(0, 1\]",
    ),
    "temperature < 0": (
        lambda l, x: (l, x, 0, {"temperature": -0.1}),
        r"denoise_step: temperature must be",
    ),
    "temperature inf": (
        lambda l, x: (l, x, 0, {"temperature": float("inf")}),
        r"denoise_step: temperature must be",
    ),
    "confidence": (
        lambda l, x: (l, x, 0, {"confidence": "entropy"}),
        r"denoise_step: confidence must be one of",
    ),
    "source": (
        lambda l, x: (l, x, 0, {"confidence_source": "filtered"}),
        r"denoise_step: confidence_source must be",
    ),
    "filter_order": (
        lambda l, x: (l, x, 0, {"filter_order": "k"}),
        r"denoise_step: filter_order must be",
    ),
    "suppress range": (
        lambda l, x: (l, x, 0, {"suppress_tokens": [3, 64]}),
        r"denoise_step: suppress_tokens must be token ids",
    ),
    "offset": (lambda l, x: (l, x, 0, {"offset": 2**32}), r"denoise_step: offset must be in"),
}


@pytest.mark.parametrize("impl", ["public", "reference"])
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    logits, x, _ = make(2, 5, 64, device, gen)
    fn = dk.denoise_step if impl == "public" else reference.denoise_step
    make_bad, pattern = BAD[case]
    l, xx, mask_id, kw = make_bad(logits, x)
    with pytest.raises(RuntimeError, match=pattern):
        fn(l, xx, mask_id, **kw)


@pytest.mark.parametrize(
    "case",
    [
        "logits int",
        "V not contiguous",
        "x int32",
        "x shape",
        "mask_id < 0",
        "top_k < 0",
        "top_p 0",
        "temperature < 0",
        "confidence",
        "source",
        "filter_order",
        "offset",
    ],
)
@pytest.mark.native
def test_bad_input_native(device, gen, case):
    """The raw op (torch.ops.dllm_kernels.denoise_step) checks the same things in C++."""
    logits, x, _ = make(2, 5, 64, device, gen)
    make_bad, pattern = BAD[case]
    l, xx, mask_id, kw = make_bad(logits, x)
    o = {
        "temperature": 0.0,
        "top_k": 0,
        "top_p": 1.0,
        "filter_order": "top_k_first",
        "confidence": "prob",
        "confidence_source": "raw",
        "offset": 0,
        **kw,
    }
    with pytest.raises(RuntimeError, match=pattern):
        torch.ops.dllm_kernels.denoise_step(
            l,
            xx,
            mask_id,
            o["temperature"],
            o["top_k"],
            o["top_p"],
            o["filter_order"],
            o["confidence"],
            o["confidence_source"],
            False,
            None,
            0,
            o["offset"],
        )


# ---- issue 16: eligible= (uniform-noise canvases), uncond_logits= / cfg_scale= (CFG) -------------


def make_eligible(B, L, device, gen, p=0.7):
    return (torch.rand(B, L, generator=gen) < p).to(device)


@pytest.mark.parametrize(
    "B,L,V", [(2, 33, 50_257), (2, 7, 262_144), (1, 1, 151_936), (3, 32, 126_464)]
)
@pytest.mark.parametrize(
    "kw",
    [{}, {"temperature": 1.0, "confidence": "neg_entropy", "confidence_source": "sampling"}],
    ids=str,
)
def test_eligible(device, gen, B, L, V, kw):
    logits, x, _ = make(B, L, V, device, gen, p_mask=0.0)  # no mask token anywhere
    eligible = make_eligible(B, L, device, gen)
    x0, conf = check(logits, x, None, eligible=eligible, seed=7, **kw)
    assert torch.equal(x0[~eligible], x[~eligible]) and bool((conf[~eligible] == -math.inf).all())
    assert bool(torch.isfinite(conf[eligible]).all())


def test_eligible_replaces_the_mask_test(device, gen):
    """With eligible, a position holding mask_id is denoised only if eligible."""
    logits, x, mask_id = make(2, 33, 257, device, gen, p_mask=0.5)
    eligible = make_eligible(2, 33, device, gen)
    x0, conf = check(logits, x, mask_id, eligible=eligible)
    masked_not_eligible = (x == mask_id) & ~eligible
    assert bool((x0[masked_not_eligible] == mask_id).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_eligible_dtypes_and_strides(device, gen, dtype):
    big = (torch.randn(3, 40, 1200, generator=gen) * 3).to(dtype).to(device)
    logits = big[:, 3:36, :1000]  # strided B, L
    x = torch.randint(0, 1000, (33, 3), generator=gen).to(device).t()  # strided x
    eligible = make_eligible(33, 3, device, gen).t()  # strided eligible
    check(
        logits, x, None, eligible=eligible, confidence="margin", temperature=0.8, top_k=40, seed=3
    )


def llada_cfg_step(c, u, cfg_scale):
    """LLaDA generate.py's CFG step at temperature 0 (written out here): logits = un_logits +
    (cfg_scale + 1) * (logits - un_logits); x0 = argmax; p = softmax(logits); x0_p = p[x0]."""
    logits = u + (cfg_scale + 1) * (c - u)
    x0 = torch.argmax(logits, dim=-1)
    p = torch.nn.functional.softmax(logits.double(), dim=-1)
    return x0, torch.gather(p, -1, x0[..., None])[..., 0]


@pytest.mark.parametrize("V", [50_257, 126_464])
@pytest.mark.parametrize("L", [1, 32])
def test_cfg_matches_llada(device, gen, V, L):
    c, x, mask_id = make(1, L, V, device, gen, p_mask=1.0)
    u = torch.randn(1, L, V, generator=gen).mul(3).to(device)
    x0, conf = dk.denoise_step(c, x, mask_id, uncond_logits=u, cfg_scale=1.5)
    want_x0, want_p = llada_cfg_step(c.cpu(), u.cpu(), 1.5)
    assert torch.equal(x0.cpu(), want_x0)
    torch.testing.assert_close(conf.cpu().double(), want_p, rtol=RTOL, atol=ATOL)


CFG_OPTIONS = [
    {},
    {"temperature": 1.0, "seed": 5},
    {"confidence": "neg_entropy"},
    {"temperature": 0.7, "top_k": 50, "top_p": 0.9, "confidence": "margin", "seed": 9},
    {"shift_logits": True, "suppress_tokens": [0, 5, 999]},
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kw", CFG_OPTIONS, ids=str)
def test_cfg_vs_reference(device, gen, dtype, kw):
    c, x, mask_id = make(2, 7, 50_257, device, gen, dtype=dtype)
    u = (torch.randn(2, 7, 50_257, generator=gen) * 3).to(dtype).to(device)
    check(c, x, mask_id, uncond_logits=u, cfg_scale=2.0, **kw)


@pytest.mark.parametrize("kw", [{}, {"temperature": 1.0, "seed": 4}], ids=str)
def test_cfg_single_position_vocab_split(device, gen, kw):
    c, x, mask_id = make(1, 1, 262_144, device, gen, p_mask=1.0)
    u = torch.randn(1, 1, 262_144, generator=gen).mul(3).to(device)
    check(c, x, mask_id, uncond_logits=u, cfg_scale=0.5, **kw)


def test_cfg_strided_and_eligible(device, gen):
    big = torch.randn(2, 2, 40, 700, generator=gen).mul(3).to(device)
    c, u = big[:, 0, 5:38, :600], big[:, 1, 2:35, :600]  # own strides each
    x = torch.randint(0, 600, (2, 33), generator=gen).to(device)
    eligible = make_eligible(2, 33, device, gen)
    check(c, x, None, eligible=eligible, uncond_logits=u, cfg_scale=3.0, confidence="neg_entropy")


def test_cfg_scale_zero_is_the_conditional_step(device, gen):
    c, x, mask_id = make(2, 33, 1000, device, gen)
    u = torch.randn(2, 33, 1000, generator=gen).to(device)
    a = dk.denoise_step(c, x, mask_id, uncond_logits=u, cfg_scale=0.0, temperature=1.0, seed=1)
    b = dk.denoise_step(c, x, mask_id, temperature=1.0, seed=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_cfg_nan_inf(device):
    c = torch.tensor([[[0.0, 1.0, float("inf"), 2.0, float("nan")]]], device=device)
    u = torch.tensor([[[0.0, float("inf"), float("inf"), 1.0, 0.0]]], device=device)
    x = torch.full((1, 1), 9, device=device)
    check(c, x, 9, uncond_logits=u, cfg_scale=1.0, confidence="neg_entropy")


@pytest.mark.native
def test_opcheck_issue16(device, gen):
    logits, x, mask_id = make(2, 5, 64, device, gen)
    eligible = make_eligible(2, 5, device, gen)
    u = torch.randn(2, 5, 64, generator=gen).to(device)
    op = torch.ops.dllm_kernels.denoise_step
    torch.library.opcheck(
        op,
        (
            logits,
            x,
            -1,
            1.0,
            0,
            1.0,
            "top_k_first",
            "neg_entropy",
            "sampling",
            False,
            None,
            5,
            0,
            eligible,
            None,
            0.0,
        ),
    )
    torch.library.opcheck(
        op,
        (
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
            5,
            0,
            None,
            u,
            1.5,
        ),
    )


BAD16 = {
    "eligible dtype": ({"eligible": "int"}, r"denoise_step: eligible must have dtype Bool"),
    "eligible shape": ({"eligible": "short"}, r"denoise_step: eligible must have shape \[B, L\]"),
    "uncond dtype": (
        {"uncond_logits": "half", "cfg_scale": 1.0},
        r"denoise_step: uncond_logits must have dtype",
    ),
    "uncond shape": (
        {"uncond_logits": "short", "cfg_scale": 1.0},
        r"denoise_step: uncond_logits must have the same shape as logits",
    ),
    "uncond V strided": (
        {"uncond_logits": "vstrided", "cfg_scale": 1.0},
        r"denoise_step: uncond_logits must be contiguous in the last",
    ),
    "cfg_scale < 0": (
        {"uncond_logits": "ok", "cfg_scale": -1.0},
        r"denoise_step: cfg_scale must be finite and >= 0",
    ),
    "cfg_scale inf": (
        {"uncond_logits": "ok", "cfg_scale": float("inf")},
        r"denoise_step: cfg_scale must be finite and >= 0",
    ),
    "cfg_scale alone": (
        {"cfg_scale": 1.0},
        r"denoise_step: cfg_scale must be 0 without uncond_logits",
    ),
}


def _bad16_args(logits, x, kw):
    B, L, V = logits.shape
    make_e = {
        "int": lambda: torch.ones(B, L, dtype=torch.int32, device=x.device),
        "short": lambda: torch.ones(B, L - 1, dtype=torch.bool, device=x.device),
    }
    make_u = {
        "half": lambda: logits.half(),
        "short": lambda: logits[:, :-1],
        "vstrided": lambda: torch.randn(B, L, 2 * V, device=x.device)[..., ::2],
        "ok": lambda: torch.randn_like(logits),
    }
    out = dict(kw)
    if "eligible" in kw:
        out["eligible"] = make_e[kw["eligible"]]()
    if "uncond_logits" in kw:
        out["uncond_logits"] = make_u[kw["uncond_logits"]]()
    return out


@pytest.mark.parametrize("impl", ["native", "public", "reference"])
@pytest.mark.parametrize("case", BAD16)
def test_bad_input_issue16(device, gen, case, impl):
    logits, x, mask_id = make(2, 5, 64, device, gen)
    kw, pattern = BAD16[case]
    kw = _bad16_args(logits, x, kw)
    with pytest.raises(RuntimeError, match=pattern):
        if impl == "native":
            torch.ops.dllm_kernels.denoise_step(
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
                0,
                0,
                **kw,
            )
        else:
            (dk.denoise_step if impl == "public" else reference.denoise_step)(
                logits, x, mask_id, **kw
            )


def test_mask_id_none_needs_eligible(device, gen):
    logits, x, _ = make(2, 5, 64, device, gen)
    with pytest.raises(RuntimeError, match=r"denoise_step: mask_id must be an int"):
        dk.denoise_step(logits, x, None)


# ---- return_argmax -------------------------------------------------------------------------------


def literal_argmax(logits, x, where, suppress=()):
    """What DiffusionGemma's step computes with an extra pass: argmax over the raw logits (NaN
    never, suppressed ids never), x where not denoised (written out here)."""
    z = logits.float().nan_to_num(nan=float("-inf"), posinf=torch.finfo(torch.float32).max)
    z[..., list(suppress)] = float("-inf")
    return torch.where(where, torch.argmax(z, dim=-1), x)


ARGMAX_OPTIONS = [
    {},
    {"temperature": 0.8, "seed": 3},
    {"temperature": 1.0, "top_k": 40, "top_p": 0.9, "confidence": "margin", "seed": 2},
    {"temperature": 0.5, "shift_logits": True, "suppress_tokens": [0, 5, 999], "seed": 1},
    {"temperature": 0.7, "confidence": "neg_entropy", "confidence_source": "sampling", "seed": 8},
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kw", ARGMAX_OPTIONS, ids=str)
def test_return_argmax(device, gen, dtype, kw):
    logits, x, mask_id = make(2, 33, 50_257, device, gen, dtype=dtype)
    x0, conf, am = check(logits, x, mask_id, return_argmax=True, **kw)
    kw_ref = {k: v for k, v in kw.items()}
    want = reference.denoise_step(logits.cpu(), x.cpu(), mask_id, return_argmax=True, **kw_ref)
    assert torch.equal(am.cpu(), want[2])
    src = logits[:, [0] + list(range(32))] if kw.get("shift_logits") else logits
    assert torch.equal(
        am.cpu(),
        literal_argmax(src.cpu(), x.cpu(), (x == mask_id).cpu(), kw.get("suppress_tokens", ())),
    )
    a0, c0 = dk.denoise_step(logits, x, mask_id, **kw)  # x0 / conf bit-identical without it
    assert torch.equal(x0, a0) and torch.equal(conf, c0)
    if kw.get("temperature", 0) > 0:  # x0 is a sample, argmax is not
        assert bool((am != x0).any())
    else:
        assert torch.equal(am, x0)


@pytest.mark.parametrize("V", [50, 126_464, 262_144])
def test_return_argmax_vocab_sizes_and_eligible(device, gen, V):
    logits, x, _ = make(2, 7, V, device, gen, p_mask=0.0)
    eligible = make_eligible(2, 7, device, gen)
    x0, conf, am = check(
        logits,
        x,
        None,
        eligible=eligible,
        temperature=1.0,
        seed=4,
        confidence="neg_entropy",
        confidence_source="sampling",
        return_argmax=True,
    )
    assert torch.equal(am.cpu(), literal_argmax(logits.cpu(), x.cpu(), eligible.cpu()))


def test_return_argmax_cfg_strided(device, gen):
    big = torch.randn(2, 2, 40, 700, generator=gen).mul(3).to(device)
    c, u = big[:, 0, 5:38, :600], big[:, 1, 2:35, :600]
    x = torch.randint(0, 600, (2, 33), generator=gen).to(device)
    eligible = make_eligible(2, 33, device, gen)
    _, _, am = check(
        c,
        x,
        None,
        eligible=eligible,
        uncond_logits=u,
        cfg_scale=3.0,
        temperature=0.9,
        seed=5,
        return_argmax=True,
    )
    s1 = torch.tensor(4.0)
    guided = u.cpu() + s1 * (c.cpu() - u.cpu())
    assert torch.equal(am.cpu(), literal_argmax(guided, x.cpu(), eligible.cpu()))


def test_return_argmax_nan_inf(device):
    nan, inf = float("nan"), float("inf")
    logits = torch.tensor(
        [
            [
                [nan, nan, nan, nan],
                [0.0, inf, 3.0, inf],
                [-inf, -inf, -inf, -inf],
                [1.0, nan, 2.0, 2.0],
            ]
        ],
        device=device,
    )
    x = torch.full((1, 4), 9, device=device)
    _, _, am = check(logits, x, 9, temperature=1.0, seed=1, return_argmax=True)
    assert am.cpu().tolist() == [[9, 1, 9, 2]]


@pytest.mark.native
def test_opcheck_return_argmax(device, gen):
    logits, x, mask_id = make(2, 5, 64, device, gen)
    am = torch.empty(2, 5, dtype=torch.int64, device=device)
    torch.library.opcheck(
        torch.ops.dllm_kernels.denoise_step,
        (
            logits,
            x,
            mask_id,
            1.0,
            0,
            1.0,
            "top_k_first",
            "prob",
            "raw",
            False,
            None,
            5,
            0,
            None,
            None,
            0.0,
            am,
        ),
    )


BAD_ARGMAX = {
    "dtype": (
        lambda x: torch.empty(x.shape, dtype=torch.int32, device=x.device),
        r"denoise_step: argmax must have dtype Long",
    ),
    "shape": (
        lambda x: torch.empty(2, 4, dtype=torch.int64, device=x.device),
        r"denoise_step: argmax must have shape \[B, L\]",
    ),
    "strided": (
        lambda x: torch.empty(2, 10, dtype=torch.int64, device=x.device)[:, ::2],
        r"denoise_step: argmax must be contiguous",
    ),
    "aliases x": (lambda x: x, r"denoise_step: .*argmax"),
}


@pytest.mark.native
@pytest.mark.parametrize("case", BAD_ARGMAX)
def test_bad_argmax(device, gen, case):
    logits, x, mask_id = make(2, 5, 64, device, gen)
    make_out, pattern = BAD_ARGMAX[case]
    x_before = x.clone()
    with pytest.raises(RuntimeError, match=pattern):
        torch.ops.dllm_kernels.denoise_step(
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
            0,
            0,
            None,
            None,
            0.0,
            make_out(x),
        )
    assert torch.equal(x, x_before)
