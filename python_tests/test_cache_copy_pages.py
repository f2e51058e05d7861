"""cache_copy_pages_: kernel vs reference (exact), copy-on-write with PageAllocator, opcheck,
errors."""

import pytest
import torch
from cache_util import DTYPES, make_cache, rand

import dllm_kernels as dk
from dllm_kernels import reference


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "shape", [(8, 1, 1, 64), (32, 16, 4, 128), (20, 64, 7, 96), (10, 16, 2, 3)], ids=str
)
def test_matches_reference(device, gen, shape, dtype):
    P, S, H, D = shape
    k_cache, v_cache = make_cache(P, S, H, D, dtype, device, gen)
    perm = torch.randperm(P, generator=gen)
    n = P // 3
    pairs = torch.stack([perm[:n], perm[n : 2 * n]], dim=1).to(device)
    want_k, want_v = k_cache.clone(), v_cache.clone()
    reference.cache_copy_pages_(want_k, want_v, pairs)
    dk.cache_copy_pages_(k_cache, v_cache, pairs)
    assert torch.equal(k_cache, want_k) and torch.equal(v_cache, want_v)
    assert torch.equal(k_cache[pairs[:, 1]], k_cache[pairs[:, 0]])


def test_list_pairs_and_empty(device, gen):
    k_cache, v_cache = make_cache(6, 4, 2, 16, torch.bfloat16, device, gen)
    before = k_cache.clone()
    dk.cache_copy_pages_(k_cache, v_cache, [])
    assert torch.equal(k_cache, before)
    dk.cache_copy_pages_(k_cache, v_cache, [(0, 5), (2, 3)])
    assert torch.equal(k_cache[5], before[0]) and torch.equal(k_cache[3], before[2])
    assert torch.equal(k_cache[[0, 1, 2, 4]], before[[0, 1, 2, 4]])


def test_interleaved_halves(device, gen):
    """k / v as the two halves of one [P, 2, S, H, D] allocation."""
    kv = rand((9, 2, 8, 4, 32), torch.float16, device, gen)
    want = kv.clone()
    reference.cache_copy_pages_(want[:, 0], want[:, 1], [(1, 7), (8, 0)])
    dk.cache_copy_pages_(kv[:, 0], kv[:, 1], [(1, 7), (8, 0)])
    assert torch.equal(kv, want)


def test_copy_on_write_keeps_source(device, gen):
    """fork shares the prompt's pages; writable makes the written ones private; the copies keep
    the source sequence's K/V intact while the fork overwrites its own."""
    S, H, D = 4, 2, 16
    alloc = dk.PageAllocator(8, S)
    k_cache, v_cache = make_cache(8, S, H, D, torch.float32, device, gen)
    alloc.reserve(0, 10)  # prompt: 10 tokens, pages 0..2 (last one partial)
    alloc.fork(0, 1)
    alloc.reserve(1, 14)
    src_snapshot = k_cache[alloc.pages(0)].clone()
    dk.cache_copy_pages_(k_cache, v_cache, alloc.writable(1, 10, 14))  # fork writes tokens 10..13
    pages1 = alloc.pages(1)
    assert pages1[:2] == alloc.pages(0)[:2] and pages1[2] != alloc.pages(0)[2]
    slots = torch.tensor([pages1[t // S] * S + t % S for t in range(10, 14)], device=device)
    k_new = rand((4, H, D), torch.float32, device, gen)
    dk.cache_write_(k_cache, v_cache, k_new, k_new.clone(), slots)
    assert torch.equal(k_cache[alloc.pages(0)], src_snapshot)  # source intact
    assert torch.equal(k_cache[pages1[2], :2], src_snapshot[2, :2])  # fork kept tokens 8, 9
    assert torch.equal(k_cache[pages1[2], 2:], k_new[:2])


@pytest.mark.native
def test_opcheck(device, gen):
    k_cache, v_cache = make_cache(6, 4, 2, 16, torch.float32, device, gen)
    pairs = torch.tensor([[0, 5], [2, 3]], device=device)
    torch.library.opcheck(torch.ops.dllm_kernels.cache_copy_pages_, (k_cache, v_cache, pairs))


BAD = {
    "dst out of range": (
        [(0, 6)],
        r"cache_copy_pages_: pairs\[0, 1\] = 6 is not a page id in \[0, 6\)",
    ),
    "negative src": ([(1, 2), (-1, 3)], r"cache_copy_pages_: pairs\[1, 0\] = -1 is not a page id"),
    "dst twice": (
        [(0, 2), (1, 2)],
        r"cache_copy_pages_: pairs must not copy to the same dst page twice",
    ),
    "chain": ([(0, 1), (1, 2)], r"cache_copy_pages_: pairs page 1 is both a src and a dst"),
    "self": ([(3, 3)], r"cache_copy_pages_: pairs page 3 is both a src and a dst"),
    "shape": (torch.zeros(2, 3, dtype=torch.int64), r"cache_copy_pages_: pairs must be \[n, 2\]"),
    "dtype": (torch.zeros(2, 2, dtype=torch.int32), r"cache_copy_pages_: pairs must have dtype"),
}
IMPLS = {
    "native": lambda kc, vc, p: torch.ops.dllm_kernels.cache_copy_pages_(
        kc, vc, p if isinstance(p, torch.Tensor) else torch.tensor(p, device=kc.device)
    ),
    "public": lambda kc, vc, p: dk.cache_copy_pages_(kc, vc, p),
    "reference": lambda kc, vc, p: reference.cache_copy_pages_(kc, vc, p),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    pairs, pattern = BAD[case]
    if isinstance(pairs, torch.Tensor):
        pairs = pairs.to(device)
    k_cache, v_cache = make_cache(6, 4, 2, 16, torch.float32, device, gen)
    before = k_cache.clone()
    with pytest.raises(RuntimeError, match=pattern):
        IMPLS[impl](k_cache, v_cache, pairs)
    assert torch.equal(k_cache, before)


@pytest.mark.native
def test_pairs_inside_cache_rejected(gen):
    kv = torch.zeros(6, 4, 2, 16, dtype=torch.float32)
    k_cache, v_cache = kv, kv.clone()
    pairs = k_cache.view(torch.int64)[0, 0, 0, :2].reshape(1, 2)  # ids read from the cache itself
    pairs.copy_(torch.tensor([[0, 1]]))
    for impl in ("native", "public", "reference"):
        with pytest.raises(
            RuntimeError, match=r"cache_copy_pages_: pairs must not share memory with k_cache"
        ):
            IMPLS[impl](k_cache, v_cache, pairs)


@pytest.mark.native
def test_shared_cache_rejected(gen):
    k_cache, _ = make_cache(6, 4, 2, 16, torch.float32, "cpu", gen)
    for impl in IMPLS.values():
        with pytest.raises(
            RuntimeError, match=r"cache_copy_pages_: v_cache must not share memory with k_cache"
        ):
            impl(k_cache, k_cache, [(0, 1)])
