"""cache_write_: kernel vs reference (exact: a copy) on random inputs, strided sources, padding,
overwrites, unchecked out-of-range slots, opcheck and errors."""

import pytest
import torch
from cache_util import DTYPES, make_cache, rand, unique_slots

import dllm_kernels as dk
from dllm_kernels import reference

SHAPES = [  # (P, S, H, D, token shape prefix)
    (4, 16, 4, 128, (1,)),
    (8, 1, 1, 64, (7,)),
    (16, 16, 7, 96, (32,)),
    (9, 64, 4, 128, (33,)),
    (40, 16, 2, 3, (5, 33)),  # odd head_dim: no 16-byte vectors
    (80, 16, 8, 128, (4, 250)),  # [B, L, H, D]
    (64, 16, 1, 64, (0,)),  # nothing to write
]


def check_against_reference(k_cache, v_cache, k, v, slots, check=True):
    want_k, want_v = k_cache.clone(), v_cache.clone()
    reference.cache_write_(want_k, want_v, k, v, slots, check=check)
    dk.cache_write_(k_cache, v_cache, k, v, slots, check=check)
    assert torch.equal(k_cache, want_k)
    assert torch.equal(v_cache, want_v)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(device, gen, shape, dtype):
    P, S, H, D, lead = shape
    k_cache, v_cache = make_cache(P, S, H, D, dtype, device, gen)
    n = 1
    for d in lead:
        n *= d
    k, v = rand((*lead, H, D), dtype, device, gen), rand((*lead, H, D), dtype, device, gen)
    slots = unique_slots(n, P * S, gen, pad=0.2).reshape(lead).to(device)
    check_against_reference(k_cache, v_cache, k, v, slots)


def test_round_trip_each_slot(device, gen):
    """Every written token reads back exactly at its page and offset; padded tokens write
    nothing."""
    P, S, H, D = 6, 16, 4, 64
    k_cache, v_cache = make_cache(P, S, H, D, torch.bfloat16, device, gen)
    before_k = k_cache.clone()
    k, v = (
        rand((50, H, D), torch.bfloat16, device, gen),
        rand((50, H, D), torch.bfloat16, device, gen),
    )
    slots = unique_slots(50, P * S, gen, pad=0.3)
    dk.cache_write_(k_cache, v_cache, k, v, slots.to(device))
    written = set()
    for i, s in enumerate(slots.tolist()):
        if s < 0:
            continue
        written.add(s)
        assert torch.equal(k_cache[s // S, s % S], k[i]) and torch.equal(
            v_cache[s // S, s % S], v[i]
        )
    untouched = [s for s in range(P * S) if s not in written]
    for s in untouched:
        assert torch.equal(k_cache[s // S, s % S], before_k[s // S, s % S])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_strided_sources_and_caches(device, gen, dtype):
    """k / v as views of a fused qkv [B, L, 3, H, D]; caches as halves of one [P, 2, S, H, D]
    allocation; a non-contiguous head_dim source (every other element)."""
    P, S, H, D, B, L = 12, 16, 4, 64, 3, 33
    kv = rand((P, 2, S, H, D), dtype, device, gen)
    k_cache, v_cache = kv[:, 0], kv[:, 1]
    qkv = rand((B, L, 3, H, D), dtype, device, gen)
    slots = unique_slots(B * L, P * S, gen, pad=0.1).reshape(B, L).to(device)
    check_against_reference(k_cache, v_cache, qkv[:, :, 1], qkv[:, :, 2], slots)
    wide = rand((B * L, H, 2 * D), dtype, device, gen)
    check_against_reference(k_cache, v_cache, wide[..., ::2], wide[..., 1::2], slots.reshape(-1))
    # a strided slot mapping (every other column of a wider one)
    wide_slots = torch.full((B, 2 * L), -1, dtype=torch.int64)
    wide_slots[:, ::2] = unique_slots(B * L, P * S, gen).reshape(B, L)
    check_against_reference(
        k_cache, v_cache, qkv[:, :, 1], qkv[:, :, 2], wide_slots.to(device)[:, ::2]
    )


def test_misaligned_source_falls_back(device, gen):
    """A source offset by one element is not 16-byte aligned: the element path must be taken."""
    P, S, H, D = 4, 16, 2, 64
    k_cache, v_cache = make_cache(P, S, H, D, torch.float16, device, gen)
    flat = rand((10 * H * D + 1,), torch.float16, device, gen)
    k = flat[1:].view(10, H, D)
    check_against_reference(k_cache, v_cache, k, k.clone(), unique_slots(10, P * S, gen).to(device))


def test_overwrite_refreshes_in_place(device, gen):
    P, S, H, D = 4, 8, 2, 16
    k_cache, v_cache = make_cache(P, S, H, D, torch.float32, device, gen)
    slots = torch.tensor([3, 4, 5, 6], device=device)
    for _ in range(2):
        k, v = (
            rand((4, H, D), torch.float32, device, gen),
            rand((4, H, D), torch.float32, device, gen),
        )
        dk.cache_write_(k_cache, v_cache, k, v, slots)
    assert torch.equal(k_cache[0, 3:7], k) and torch.equal(v_cache[0, 3:7], v)


def test_unchecked_out_of_range_is_skipped(device, gen):
    """check=False never writes outside the cache: such slots act as padding."""
    P, S, H, D = 4, 8, 2, 16
    k_cache, v_cache = make_cache(P, S, H, D, torch.float32, device, gen)
    k, v = rand((5, H, D), torch.float32, device, gen), rand((5, H, D), torch.float32, device, gen)
    slots = torch.tensor([0, P * S, 7, 10**9, -5], device=device)
    check_against_reference(k_cache, v_cache, k, v, slots, check=False)


@pytest.mark.native
def test_opcheck(device, gen):
    P, S, H, D = 6, 16, 4, 64
    k_cache, v_cache = make_cache(P, S, H, D, torch.bfloat16, device, gen)
    k, v = (
        rand((2, 9, H, D), torch.bfloat16, device, gen),
        rand((2, 9, H, D), torch.bfloat16, device, gen),
    )
    slots = unique_slots(18, P * S, gen, pad=0.2).reshape(2, 9).to(device)
    for check in (True, False):
        torch.library.opcheck(
            torch.ops.dllm_kernels.cache_write_, (k_cache, v_cache, k, v, slots, check)
        )


@pytest.mark.native
def test_torch_compile_fullgraph(gen):
    P, S, H, D = 6, 16, 4, 64
    k_cache, v_cache = make_cache(P, S, H, D, torch.float32, "cpu", gen)
    k, v = rand((9, H, D), torch.float32, "cpu", gen), rand((9, H, D), torch.float32, "cpu", gen)
    slots = unique_slots(9, P * S, gen)
    want_k, want_v = k_cache.clone(), v_cache.clone()
    reference.cache_write_(want_k, want_v, k, v, slots)
    fn = torch.compile(lambda *a: dk.cache_write_(*a, check=False), fullgraph=True, backend="eager")
    fn(k_cache, v_cache, k, v, slots)
    assert torch.equal(k_cache, want_k) and torch.equal(v_cache, want_v)


# ---- bad input: a clear error naming op and argument, and the cache left untouched --------------

P0, S0, H0, D0 = 4, 8, 2, 16


def _bad_cases():
    def slots_with(*values):
        return lambda kc, vc, k, v, s: (kc, vc, k, v, torch.tensor(values, device=s.device))

    return {
        "slot beyond cache": (
            slots_with(0, 1, P0 * S0, 3, 4),
            r"cache_write_: slot_mapping holds slot 32 at flat index 2, beyond",
        ),
        "slot twice": (
            slots_with(0, 9, 2, 9, -1),
            r"cache_write_: slot_mapping holds slot 9 more than once",
        ),
        "k dtype": (
            lambda kc, vc, k, v, s: (kc, vc, k.double(), v, s),
            r"cache_write_: k must have dtype",
        ),
        "v shape": (
            lambda kc, vc, k, v, s: (kc, vc, k, v[:4], s),
            r"cache_write_: v must have the same shape as k",
        ),
        "k heads": (
            lambda kc, vc, k, v, s: (kc, vc, k[:, :1], v[:, :1], s),
            r"cache_write_: k must end in \[H_kv, D\] = \[2, 16\]",
        ),
        "k 2-D": (
            lambda kc, vc, k, v, s: (kc, vc, k[0], v[0], s),
            r"cache_write_: k must be \[N, H_kv, D\]",
        ),
        "slots int32": (
            lambda kc, vc, k, v, s: (kc, vc, k, v, s.int()),
            r"cache_write_: slot_mapping must have dtype",
        ),
        "slots shape": (
            lambda kc, vc, k, v, s: (kc, vc, k, v, s[:3]),
            r"cache_write_: slot_mapping must have the shape of k",
        ),
        "cache int": (
            lambda kc, vc, k, v, s: (kc.int(), vc.int(), k.int(), v.int(), s),
            r"cache_write_: k_cache must have dtype",
        ),
        "v_cache dtype": (
            lambda kc, vc, k, v, s: (kc, vc.half(), k, v, s),
            r"cache_write_: v_cache must have dtype",
        ),
        "v_cache shape": (
            lambda kc, vc, k, v, s: (kc, vc[:2], k, v, s),
            r"cache_write_: v_cache must have the same shape",
        ),
        "cache 3-D": (
            lambda kc, vc, k, v, s: (kc[0], vc[0], k, v, s),
            r"cache_write_: k_cache must be 4-D",
        ),
        "head_dim strided": (
            lambda kc, vc, k, v, s: (kc[..., ::2], vc[..., ::2], k[..., ::2], v[..., ::2], s),
            r"cache_write_: k_cache must be contiguous in the last",
        ),
        "cache expanded": (
            lambda kc, vc, k, v, s: (kc[:1].expand(P0, -1, -1, -1), vc, k, v, s),
            r"cache_write_: k_cache is written in place",
        ),
        "v_cache is k_cache": (
            lambda kc, vc, k, v, s: (kc, kc, k, v, s),
            r"cache_write_: v_cache must not share memory with k_cache",
        ),
        "k inside cache": (
            lambda kc, vc, k, v, s: (kc, vc, kc[0, :5], v, s),
            r"cache_write_: k must not share memory with k_cache",
        ),
        # the very same view as the cache is a scatter from itself: rejected too (found in review)
        "k is k_cache": (
            lambda kc, vc, k, v, s: (
                kc,
                vc,
                kc,
                vc.clone(),
                torch.arange(P0 * S0, device=s.device).flip(0).reshape(P0, S0),
            ),
            r"cache_write_: k must not share memory with k_cache",
        ),
        "v is v_cache": (
            lambda kc, vc, k, v, s: (
                kc,
                vc,
                kc.clone(),
                vc,
                torch.arange(P0 * S0, device=s.device).reshape(P0, S0),
            ),
            r"cache_write_: v must not share memory with v_cache",
        ),
    }


BAD = _bad_cases()
IMPLS = {
    "native": lambda *a: torch.ops.dllm_kernels.cache_write_(*a, True),
    "public": lambda *a: dk.cache_write_(*a),
    "reference": lambda *a: reference.cache_write_(*a),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    make_bad, pattern = BAD[case]
    k_cache, v_cache = make_cache(P0, S0, H0, D0, torch.float32, device, gen)
    k, v = (
        rand((5, H0, D0), torch.float32, device, gen),
        rand((5, H0, D0), torch.float32, device, gen),
    )
    args = make_bad(k_cache, v_cache, k, v, torch.tensor([0, 1, 2, 3, 4], device=device))
    before = (k_cache.clone(), v_cache.clone())
    with pytest.raises(RuntimeError, match=pattern):
        IMPLS[impl](*args)
    assert torch.equal(k_cache, before[0]) and torch.equal(v_cache, before[1])


@pytest.mark.native
def test_bad_input_under_fake_tensors(gen):
    from torch._subclasses.fake_tensor import FakeTensorMode

    k_cache, v_cache = make_cache(P0, S0, H0, D0, torch.float32, "cpu", gen)
    k = rand((5, H0, D0), torch.float32, "cpu", gen)
    slots = torch.arange(5)
    with FakeTensorMode() as mode:
        fk, fv, fkk, fs = (mode.from_tensor(t) for t in (k_cache, v_cache, k, slots))
        torch.ops.dllm_kernels.cache_write_(
            fk, fv, fkk, fkk.clone(), fs, True
        )  # valid input passes
        with pytest.raises(RuntimeError, match=r"cache_write_: k must have dtype"):
            torch.ops.dllm_kernels.cache_write_(fk, fv, fkk.half(), fkk.clone(), fs, True)


@pytest.mark.native
def test_wrong_device_meta(gen):
    k_cache, v_cache = make_cache(P0, S0, H0, D0, torch.float32, "cpu", gen)
    k = rand((5, H0, D0), torch.float32, "cpu", gen)
    for impl in IMPLS.values():
        with pytest.raises(
            RuntimeError, match=r"cache_write_: slot_mapping must be on the same device as k_cache"
        ):
            impl(k_cache, v_cache, k, k.clone(), torch.arange(5, device="meta"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_wrong_device_cuda(gen):
    k_cache, v_cache = make_cache(P0, S0, H0, D0, torch.float32, "cuda", gen)
    k = rand((5, H0, D0), torch.float32, "cuda", gen)
    for impl in IMPLS.values():
        with pytest.raises(
            RuntimeError,
            match=r"cache_write_: (slot_mapping|k) must be on the same device as k_cache",
        ):
            impl(k_cache, v_cache, k, k.clone(), torch.arange(5))
