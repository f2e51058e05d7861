"""denoise_step on every CPU kernel path this machine has: the vector kernel (AVX-512 where the CPU
has it, AVX2) and the generic one, chosen by DLLM_KERNELS_SIMD (read per call). Each path vs the
reference (the spec) on the options and shapes that take different routes through the vector code
(whole blocks, tails, suppressed chunks, the vocabulary split, filtered rows, T > 0), and the paths
against each other: x0 identical, conf within the usual tolerance."""

import pytest
import torch

import dllm_kernels as dk
from dllm_kernels import _native, reference

RTOL, ATOL = 1e-5, 1e-6
LEVELS = ["generic", "avx2", "avx512"]

pytestmark = pytest.mark.skipif(not _native.NATIVE, reason="needs the compiled ops")


def cpu_level(monkeypatch) -> str:
    monkeypatch.delenv("DLLM_KERNELS_SIMD", raising=False)
    return dk.backend_info()["cpu_features"].get("denoise_step", "generic")


@pytest.fixture(params=LEVELS)
def level(request, monkeypatch):
    have = cpu_level(monkeypatch)
    if LEVELS.index(request.param) > LEVELS.index(have):
        pytest.skip(f"this CPU's best denoise_step path is {have}")
    monkeypatch.setenv("DLLM_KERNELS_SIMD", request.param)
    assert dk.backend_info()["cpu_features"]["denoise_step"] == request.param
    return request.param


def make(B, L, V, gen, dtype=torch.float32, p_mask=0.7, scale=3.0, special=False):
    logits = torch.randn(B, L, V, generator=gen) * scale
    if special:
        u = torch.rand(B, L, V, generator=gen)
        logits[u < 0.02] = float("-inf")
        logits[(u >= 0.02) & (u < 0.03)] = float("nan")
        logits[(u >= 0.03) & (u < 0.031)] = float("inf")
    mask_id = V + 3
    x = torch.randint(0, V, (B, L), generator=gen)
    x[torch.rand(B, L, generator=gen) < p_mask] = mask_id
    return logits.to(dtype), x, mask_id


def check(logits, x, mask_id, **kw):
    got = dk.denoise_step(logits, x, mask_id, **kw)
    want = reference.denoise_step(logits, x, mask_id, **kw)
    assert torch.equal(got[0], want[0]), (
        f"x0 differs at {(got[0] != want[0]).nonzero()[:5].tolist()}"
    )
    torch.testing.assert_close(got[1], want[1], rtol=RTOL, atol=ATOL)
    return got


OPTIONS = [
    {},
    {"confidence": "margin"},
    {"confidence": "neg_entropy"},
    {"confidence": "random", "seed": 3},
    {"temperature": 1.0, "seed": 1},
    {"temperature": 0.7, "seed": 2, "confidence_source": "sampling", "confidence": "neg_entropy"},
    {"temperature": 1.0, "seed": 4, "top_p": 0.9},
    {
        "temperature": 1.3,
        "seed": 5,
        "top_k": 7,
        "top_p": 0.8,
        "filter_order": "top_p_first",
        "confidence_source": "sampling",
        "confidence": "margin",
    },
    {"temperature": 0.0, "top_p": 0.5, "confidence_source": "sampling"},
    {"temperature": 0.0, "top_k": 3, "confidence": "neg_entropy"},
    {"suppress_tokens": [0, 2047, 2048, 4100]},
    {"temperature": 2.0, "seed": 6, "suppress_tokens": [1, 3000], "shift_logits": True},
]


@pytest.mark.parametrize(
    "kw", OPTIONS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default"
)
@pytest.mark.parametrize("V", [61, 4133, 50_257])
def test_options(level, gen, V, kw):
    """V = 61: tails only; 4133: blocks + chunks + a tail; 50,257: many chunks (LLaDA-like)."""
    logits, x, mask_id = make(2, 5, V, gen)
    if "suppress_tokens" in kw:
        kw = {**kw, "suppress_tokens": [t for t in kw["suppress_tokens"] if t < V]}
    check(logits, x, mask_id, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"confidence": "margin"},
        {"temperature": 1.0, "seed": 7},
        {"temperature": 1.0, "seed": 8, "top_p": 0.9},
    ],
    ids=str,
)
def test_dtypes_and_nonfinite(level, gen, dtype, kw):
    logits, x, mask_id = make(2, 6, 3001, gen, dtype=dtype, special=True)
    logits[0, 1] = float("-inf")  # nothing to decode there
    check(logits, x, mask_id, **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"confidence": "neg_entropy"},
        {"temperature": 1.0, "seed": 9},
        {"suppress_tokens": [5, 16384, 16385]},
    ],
    ids=str,
)
def test_vocabulary_split(level, gen, kw):
    """One masked position: the vocabulary is split across threads in 16,384-token slices."""
    logits, x, mask_id = make(1, 1, 126_464, gen, p_mask=1.0)
    check(logits, x, mask_id, **kw)


def test_ties_and_flat_rows(level):
    V = 4099
    logits = torch.zeros(1, 4, V)
    logits[0, 0, [40, 2000, 4098]] = 5.0  # ties: the smallest id
    logits[0, 1, 3000:] = 1.0  # the max first appears late (a rescale)
    logits[0, 3, ::7] = -2.0
    x = torch.full((1, 4), V + 1)
    for kw in (
        {},
        {"confidence": "margin"},
        {"top_p": 0.5, "confidence_source": "sampling"},
        {"temperature": 1.0, "seed": 3, "top_p": 0.3},
    ):
        x0, _ = check(logits, x, V + 1, **kw)
        if not kw.get("temperature"):
            assert x0[0, :2].tolist() == [40, 3000]


def test_paths_agree(monkeypatch, gen):
    """Every available path gives the same x0 on a LLaDA-sized block (and conf within tolerance)."""
    have = cpu_level(monkeypatch)
    logits, x, mask_id = make(1, 8, 126_464, gen, dtype=torch.bfloat16, p_mask=1.0)
    for kw in (
        {},
        {"temperature": 1.0, "seed": 11},
        {"temperature": 1.0, "seed": 12, "top_p": 0.9},
    ):
        outs = {}
        for lv in LEVELS[: LEVELS.index(have) + 1]:
            monkeypatch.setenv("DLLM_KERNELS_SIMD", lv)
            outs[lv] = dk.denoise_step(logits, x, mask_id, **kw)
        base = outs["generic"]
        for lv, (x0, conf) in outs.items():
            assert torch.equal(x0, base[0]), f"{lv} x0 differs from generic ({kw})"
            torch.testing.assert_close(conf, base[1], rtol=RTOL, atol=ATOL)
