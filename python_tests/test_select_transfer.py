"""select_transfer: kernel vs reference for every rule, ties, ineligible rows, per-row parameters,
property tests (hypothesis), opcheck, errors."""

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

NEG_INF = float("-inf")


def make_conf(B, L, gen, device, p_eligible=0.7, levels=0):
    """Random confidences in [0, 1); levels > 0 quantises them to force ties."""
    c = torch.rand(B, L, generator=gen)
    if levels:
        c = torch.floor(c * levels) / levels
    c[torch.rand(B, L, generator=gen) >= p_eligible] = NEG_INF
    return c.to(device)


def check(conf, **kw):
    got = dk.select_transfer(conf, **kw)
    cpu_kw = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    want = reference.select_transfer(conf.cpu(), **cpu_kw)
    assert got.dtype == torch.bool and got.shape == conf.shape
    assert torch.equal(got.cpu(), want), f"differs at {(got.cpu() != want).nonzero()[:5].tolist()}"
    assert not bool((got & (conf == NEG_INF)).any()), "selected an ineligible position"
    return got


RULES = [
    {"num_transfer": 0},
    {"num_transfer": 1},
    {"num_transfer": 5},
    {"num_transfer": 10_000},
    {"threshold": 0.5},
    {"threshold": 0.5, "strict": True},
    {"threshold": 2.0},
    {"factor": 1.0},
    {"factor": 0.3},
    {"factor": 3.0},
    {"probability": 0.0},
    {"probability": 0.3, "seed": 7},
    {"probability": 1.0},
]


@pytest.mark.parametrize("kw", RULES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize(
    "B,L,levels",
    [(1, 1, 0), (3, 7, 0), (4, 32, 4), (5, 33, 0), (2, 512, 16), (2, 4096, 0), (1, 5000, 8)],
)
def test_rules(device, gen, kw, B, L, levels):
    check(make_conf(B, L, gen, device, levels=levels), **kw)


@pytest.mark.parametrize("L", [7, 5000])
def test_strided_per_row_tensors(device, gen, L):
    """Per-row k / p as columns of a [B, steps] schedule (stride steps, read in place)."""
    conf = make_conf(4, L, gen, device, levels=8)
    k = torch.randint(0, L + 2, (4, 3), generator=gen).to(device)[:, 1]
    p = torch.rand(4, 3, generator=gen).to(device)[:, 2]
    assert not k.is_contiguous() and not p.is_contiguous()
    check(conf, num_transfer=k)
    check(conf, probability=p, seed=3)


def test_counts_and_ties(device):
    conf = torch.tensor(
        [[0.5, 0.9, 0.5, NEG_INF, 0.9, 0.1], [NEG_INF] * 6, [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]],
        device=device,
    )
    got = dk.select_transfer(conf, num_transfer=3)
    assert got.int().tolist() == [[1, 1, 0, 0, 1, 0], [0] * 6, [1, 1, 1, 0, 0, 0]]
    got = dk.select_transfer(conf, threshold=0.95)  # nothing above: the best (first of ties) only
    assert got.int().tolist() == [[0, 1, 0, 0, 0, 0], [0] * 6, [1, 0, 0, 0, 0, 0]]


def test_per_row_parameters(device, gen):
    conf = make_conf(4, 40, gen, device)
    k = torch.tensor([0, 3, 40, 7], device=device)
    got = check(conf, num_transfer=k)
    eligible = (conf > NEG_INF).sum(1).cpu()
    assert got.sum(1).cpu().tolist() == torch.minimum(k.cpu(), eligible).tolist()
    check(conf, probability=torch.tensor([0.0, 0.5, 1.0, 0.25], device=device), seed=3)


def test_factor_rule_by_hand(device):
    # sorted: 0.99, 0.9, 0.6, 0.5; f = 1: thresholds 1 - 1/(i+2): i=1 0.667 (0.9 ok), i=2 0.75
    # (0.6 < 0.75 -> i* = 2): the top 2.
    conf = torch.tensor([[0.6, 0.99, 0.5, 0.9]], device=device)
    assert dk.select_transfer(conf, factor=1.0).int().tolist() == [[0, 1, 0, 1]]
    # i* = M - 1 selects all M (as Fast-dLLM's code does)
    conf = torch.tensor([[0.99, 0.9, 0.1]], device=device)
    assert dk.select_transfer(conf, factor=1.0).int().tolist() == [[1, 1, 1]]


def _fast_dllm_factor(conf_row: torch.Tensor, factor: float) -> list[int]:
    """Fast-dLLM's get_transfer_index_dynamic on one row, literally: thresholds are Python
    floats, compared with 0-d float32 confidences (so in float32)."""
    n = int(torch.isfinite(conf_row).sum())
    vals, idx = torch.topk(conf_row, k=n)
    threshs = [-1.0] + [1 - factor / (m + 1) for m in range(2, n + 1)]
    top_i = 0
    for top_i in range(n):
        if vals[top_i] < threshs[top_i]:
            break
    if top_i == 0 or top_i == n - 1:
        top_i += 1
    return sorted(idx[:top_i].tolist())


@pytest.mark.parametrize(
    "row, factor",
    [
        ([0.5, -math.inf, 0.5, 0.0], 1.4999999999999998),  # 1 - f/3 rounds to 0.5: no hit at i = 1
        ([0.5, 0.5, 0.25], 1.49999994),  # 1 - f/3 > 0.5 in float64, 0.5 in f32
        ([0.75, 0.75, 0.7, 0.1], 0.75),  # exact thresholds
    ],
)
def test_factor_rule_rounds_like_fast_dllm(device, row, factor):
    # Hypothesis found f = 1.4999999999999998 where the reference (a Python float over a tensor
    # multiplies by the reciprocal) and the kernel disagreed; both now compare c_i with
    # fl32(1 - f / (i + 2)) computed by true division, as Fast-dLLM's tensor-vs-float compare.
    conf = torch.tensor([row], dtype=torch.float32, device=device)
    want = _fast_dllm_factor(conf[0].cpu(), factor)
    got = dk.select_transfer(conf, factor=factor)[0].nonzero().flatten().tolist()
    ref = dk.reference.select_transfer(conf, factor=factor)[0].nonzero().flatten().tolist()
    assert got == ref == want


def test_probability_is_reproducible(device, gen):
    conf = make_conf(3, 200, gen, device, p_eligible=1.0)
    a = dk.select_transfer(conf, probability=0.5, seed=1)
    assert torch.equal(a, dk.select_transfer(conf, probability=0.5, seed=1))
    assert not torch.equal(a, dk.select_transfer(conf, probability=0.5, seed=2))
    assert 0.4 < a.float().mean().item() < 0.6


if given is not None:

    @settings(max_examples=60, deadline=None)
    @given(
        B=st.integers(1, 4),
        L=st.integers(1, 70),
        levels=st.sampled_from([0, 2, 5]),
        p_eligible=st.sampled_from([0.0, 0.3, 1.0]),
        seed=st.integers(0, 2**31),
        rule=st.sampled_from(["num_transfer", "threshold", "factor", "probability"]),
        k=st.integers(0, 80),
        tau=st.floats(-0.5, 1.5),
        strict=st.booleans(),
    )
    def test_property_matches_reference(B, L, levels, p_eligible, seed, rule, k, tau, strict):
        gen = torch.Generator().manual_seed(seed)
        conf = make_conf(B, L, gen, "cpu", p_eligible=p_eligible, levels=levels)
        kw = {
            "num_transfer": {"num_transfer": k},
            "threshold": {"threshold": tau, "strict": strict},
            "factor": {"factor": max(tau, 0.01)},
            "probability": {"probability": min(max(tau, 0.0), 1.0), "seed": seed},
        }[rule]
        check(conf, **kw)
else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_property_matches_reference():
        pass


@pytest.mark.native
def test_opcheck(device, gen):
    conf = make_conf(3, 33, gen, device)
    op = torch.ops.dllm_kernels.select_transfer
    torch.library.opcheck(
        op, (conf, "num_transfer", torch.tensor([1, 2, 3], device=device), 0.0, False, 0, 0)
    )
    torch.library.opcheck(op, (conf, "threshold", None, 0.5, True, 0, 0))
    torch.library.opcheck(op, (conf, "factor", None, 1.0, False, 0, 0))
    torch.library.opcheck(
        op, (conf, "probability", torch.full((3,), 0.5, device=device), 0.0, False, -3, 9)
    )


BAD = {
    "two rules": (
        {"num_transfer": 1, "threshold": 0.5},
        r"select_transfer: .*exactly one selection rule",
    ),
    "no rule": ({}, r"select_transfer: .*exactly one selection rule"),
    "k < 0": ({"num_transfer": -1}, r"select_transfer: num_transfer must be >= 0"),
    "k float": ({"num_transfer": 1.5}, r"select_transfer: num_transfer must be an int"),
    "k shape": (
        {"num_transfer": torch.tensor([1, 2])},
        r"select_transfer: num_transfer must have shape \[B\]",
    ),
    "p > 1": ({"probability": 1.5}, r"select_transfer: probability must be in \[0, 1\]"),
    "factor 0": ({"factor": 0.0}, r"select_transfer: factor must be > 0"),
    "threshold NaN": ({"threshold": float("nan")}, r"select_transfer: threshold must not be NaN"),
}


@pytest.mark.parametrize("impl", ["public", "reference"])
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    conf = make_conf(3, 9, gen, device)
    kw, pattern = BAD[case]
    kw = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    fn = dk.select_transfer if impl == "public" else reference.select_transfer
    with pytest.raises(RuntimeError, match=pattern):
        fn(conf, **kw)


@pytest.mark.parametrize("impl", ["native", "public", "reference"])
def test_bad_conf(device, gen, impl):
    conf = make_conf(3, 9, gen, device)
    calls = {
        "native": lambda c: torch.ops.dllm_kernels.select_transfer(
            c, "threshold", None, 0.5, False, 0, 0
        ),
        "public": lambda c: dk.select_transfer(c, threshold=0.5),
        "reference": lambda c: reference.select_transfer(c, threshold=0.5),
    }
    with pytest.raises(RuntimeError, match=r"select_transfer: conf must have dtype"):
        calls[impl](conf.double())
    with pytest.raises(RuntimeError, match=r"select_transfer: conf must be 2-D"):
        calls[impl](conf[0])


@pytest.mark.native
def test_bad_rule_native(device, gen):
    conf = make_conf(3, 9, gen, device)
    with pytest.raises(RuntimeError, match=r"select_transfer: rule must be one of"):
        torch.ops.dllm_kernels.select_transfer(conf, "top", None, 0.5, False, 0, 0)
    with pytest.raises(RuntimeError, match=r"select_transfer: num_transfer must be given"):
        torch.ops.dllm_kernels.select_transfer(conf, "num_transfer", None, 0.0, False, 0, 0)


# ---- issue 16: entropy_bound (EB)
# ------------------------------------------------------------------


def accept_canvas_literal(token_entropy: torch.Tensor, entropy_bound: float) -> torch.Tensor:
    """transformers' DiffusionGemma EntropyBoundSampler.accept_canvas (5.25), written out here on
    given entropies: sort ascending, cumsum, accept where cumsum - sorted <= bound, scatter back.
    (torch.sort with stable=True: our rule's tie order; the peer's default sort is stable on CPU
    for these sizes.)"""
    sorted_h, idx = torch.sort(token_entropy, dim=-1, descending=False, stable=True)
    cum = torch.cumsum(sorted_h, dim=-1)
    sel = cum - sorted_h <= entropy_bound
    return torch.scatter(torch.zeros_like(sel), -1, idx, sel)


def eb_literal_rows(conf: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per row, the literal rule on that row's eligible positions only (conf > -inf)."""
    out = torch.zeros(conf.shape, dtype=torch.bool)
    for b in range(conf.shape[0]):
        pos = torch.nonzero(conf[b] > float("-inf"))[:, 0]
        if pos.numel():
            out[b, pos] = accept_canvas_literal(-conf[b, pos][None], gamma)[0]
    return out


@pytest.mark.parametrize("L", [1, 7, 32, 33, 256, 5000])
@pytest.mark.parametrize("gamma", [0.05, 1.0, 8.0, 1e9])
def test_entropy_bound_vs_accept_canvas(device, gen, L, gamma):
    B = 4
    conf = -(torch.rand(B, L, generator=gen) * 5.0)  # entropies in [0, 5)
    conf[torch.rand(B, L, generator=gen) < 0.3] = float("-inf")  # not eligible
    conf[1] = float("-inf")  # a row with none
    if device.type == "cuda" and L > 4096:
        pytest.skip("entropy_bound on CUDA needs L <= 4096")
    got = dk.select_transfer(conf.to(device), entropy_bound=gamma).cpu()
    assert torch.equal(got, eb_literal_rows(conf, gamma))
    assert torch.equal(got, reference.select_transfer(conf, entropy_bound=gamma))
    if gamma == 1e9:
        assert torch.equal(got, conf > float("-inf"))


def test_entropy_bound_ties_to_the_lower_position(device):
    conf = torch.full((2, 9), -1.0, device=device)
    conf[1, 0] = float("-inf")
    got = dk.select_transfer(conf, entropy_bound=2.5).cpu()  # S_k - H_k = k <= 2.5
    assert got[0].nonzero()[:, 0].tolist() == [0, 1, 2]
    assert got[1].nonzero()[:, 0].tolist() == [1, 2, 3]


def test_entropy_bound_vs_transformers(device, gen):
    """transformers' own EntropyBoundSampler.accept_canvas on the same logits: our selection on
    conf = -(the entropies it computes) accepts exactly its positions."""
    dg = pytest.importorskip("transformers.models.diffusion_gemma.generation_diffusion_gemma")
    B, L, V = 3, 64, 1000
    logits = torch.randn(B, L, V, generator=gen) * torch.rand(B, L, 1, generator=gen) * 8
    for gamma in (0.3, 2.0, 20.0):
        sampler = dg.EntropyBoundSampler(
            dg.EntropyBoundSamplerConfig(entropy_bound=gamma),
            canvas_length=L,
            vocab_size=V,
            max_denoising_steps=8,
        )
        current = torch.zeros(B, L, dtype=torch.long)
        denoiser = torch.ones(B, L, dtype=torch.long)
        accepted = sampler.accept_canvas(current, denoiser, logits, cur_step=0) == 1
        entropy = torch.distributions.Categorical(logits=logits).entropy()
        got = dk.select_transfer((-entropy).to(device), entropy_bound=gamma).cpu()
        assert torch.equal(got, accepted) and torch.equal(got, sampler.accepted_token_mask)
        assert 0 < int(got.sum()) < B * L


@pytest.mark.native
def test_opcheck_entropy_bound(device, gen):
    conf = make_conf(3, 33, gen, device)
    torch.library.opcheck(
        torch.ops.dllm_kernels.select_transfer, (conf, "entropy_bound", None, 1.5, False, 0, 0)
    )


@pytest.mark.parametrize("impl", ["native", "public", "reference"])
@pytest.mark.parametrize(
    "gamma,pattern",
    [
        (0.0, r"select_transfer: entropy_bound must be > 0"),
        (-1.0, r"select_transfer: entropy_bound must be > 0"),
        (float("nan"), r"select_transfer: entropy_bound must not be NaN"),
    ],
)
def test_bad_entropy_bound(device, gen, impl, gamma, pattern):
    conf = make_conf(3, 9, gen, device)
    with pytest.raises(RuntimeError, match=pattern):
        if impl == "native":
            torch.ops.dllm_kernels.select_transfer(conf, "entropy_bound", None, gamma, False, 0, 0)
        else:
            (dk.select_transfer if impl == "public" else reference.select_transfer)(
                conf, entropy_bound=gamma
            )


def test_entropy_bound_exclusive(device, gen):
    conf = make_conf(3, 9, gen, device)
    with pytest.raises(RuntimeError, match=r"select_transfer: .*exactly one selection rule"):
        dk.select_transfer(conf, entropy_bound=1.0, num_transfer=2)
