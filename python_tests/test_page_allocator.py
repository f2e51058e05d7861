"""PageAllocator: the C++ class against the Python reference, operation by operation, on 10^5
random reserve / fork / writable / free calls; invariants (no leaked or double-owned page, right
reference counts); errors leave the state unchanged."""

import random
from collections import Counter

import pytest

import dllm_kernels as dk
from dllm_kernels import _native
from dllm_kernels.reference import PageAllocator as RefAllocator

IMPLS = [
    pytest.param(RefAllocator, id="reference"),
    pytest.param(
        dk.PageAllocator,
        id="native",
        marks=pytest.mark.skipif(_native.C is None, reason="native extension not loaded"),
    ),
]


@pytest.mark.native
def test_native_class_is_loaded():
    assert _native.C is not None and dk.PageAllocator is _native.C.PageAllocator


def state(a, seqs):
    return (
        {s: tuple(a.pages(s)) for s in seqs},
        a.num_free_pages,
        tuple(a.refcount(p) for p in range(a.num_pages)),
    )


def check_invariants(a, seqs):
    held = Counter(p for s in seqs for p in a.pages(s))
    for p in range(a.num_pages):
        assert a.refcount(p) == held[p], f"page {p}: refcount {a.refcount(p)}, held by {held[p]}"
    assert a.num_free_pages == sum(1 for p in range(a.num_pages) if held[p] == 0)
    for s in seqs:
        assert len(set(a.pages(s))) == len(a.pages(s)), f"seq {s} holds a page twice"


def run(a, op, *args):
    try:
        return ("ok", getattr(a, op)(*args))
    except (KeyError, RuntimeError, ValueError) as e:
        return (type(e).__name__, str(e))


@pytest.mark.skipif(_native.C is None, reason="native extension not loaded")
@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_on_random_operations(seed):
    rng = random.Random(seed)
    num_pages, page_size = rng.choice([(16, 1), (64, 4), (200, 16)])
    ref, nat = RefAllocator(num_pages, page_size), dk.PageAllocator(num_pages, page_size)
    seqs: set[int] = set()
    for step in range(25_000):
        ids = list(seqs) + [rng.randrange(100)]
        op = rng.choice(["reserve", "reserve", "fork", "writable", "free", "pages"])
        if op == "reserve":
            args = (rng.choice(ids), rng.randrange(0, 4 * page_size * 8))
        elif op == "fork":
            args = (rng.choice(ids), rng.randrange(100))
        elif op == "writable":
            s = rng.choice(ids)
            n = len(ref.pages(s)) * page_size if s in seqs else 4
            lo = rng.randrange(0, n + 2)
            args = (s, lo, lo + rng.randrange(0, 3 * page_size))
        else:
            args = (rng.choice(ids),)
        before = state(ref, seqs)
        r_ref, r_nat = run(ref, op, *args), run(nat, op, *args)
        assert r_ref[0] == r_nat[0], f"step {step}: {op}{args}: {r_ref} vs {r_nat}"
        if r_ref[0] == "ok":
            assert r_ref[1] == r_nat[1], f"step {step}: {op}{args}"
            if op in ("reserve", "fork"):
                seqs.add(args[-2] if op == "reserve" else args[1])
            elif op == "free":
                seqs.discard(args[0])
        else:
            assert r_ref[1] == r_nat[1]
            assert state(ref, seqs) == before, "a failed operation changed the state"
        assert nat.num_free_pages == ref.num_free_pages
        if step % 97 == 0:
            assert state(nat, seqs) == state(ref, seqs)
            check_invariants(nat, seqs)
    for s in list(seqs):
        nat.free(s)
    assert nat.num_free_pages == num_pages


@pytest.mark.parametrize("Alloc", IMPLS)
def test_reserve_fork_writable_free(Alloc):
    a = Alloc(8, 4)
    a.reserve(1, 9)  # 3 pages, lowest ids first
    assert a.pages(1) == [0, 1, 2] and a.num_free_pages == 5
    a.reserve(1, 5)  # never shrinks
    assert a.pages(1) == [0, 1, 2]
    a.fork(1, 2)
    assert a.pages(2) == [0, 1, 2] and a.refcount(0) == 2 and a.num_free_pages == 5
    assert a.writable(2, 5, 9) == [(1, 3), (2, 4)]  # tokens 5..8 live on logical pages 1, 2
    assert a.pages(2) == [0, 3, 4] and a.pages(1) == [0, 1, 2]
    assert a.writable(2, 5, 9) == []  # already private
    assert a.writable(2, 4, 4) == []  # empty range
    a.free(1)
    assert a.refcount(0) == 1 and a.refcount(1) == 0 and a.num_free_pages == 5
    a.free(2)
    assert a.num_free_pages == 8


@pytest.mark.parametrize("Alloc", IMPLS)
def test_errors_leave_state_unchanged(Alloc):
    a = Alloc(4, 2)
    a.reserve(1, 6)
    with pytest.raises(
        RuntimeError, match=r"PageAllocator.reserve: out of pages: needs 2, 1 free of 4"
    ):
        a.reserve(2, 4)
    assert a.num_free_pages == 1 and a.pages(1) == [0, 1, 2]
    with pytest.raises(KeyError, match=r"PageAllocator.pages: unknown sequence id 2"):
        a.pages(2)  # the failed reserve did not create it
    a.fork(1, 3)
    a.reserve(4, 2)  # takes the last page
    with pytest.raises(
        RuntimeError, match=r"PageAllocator.writable: out of pages: needs 3, 0 free"
    ):
        a.writable(3, 0, 6)
    assert a.pages(3) == [0, 1, 2] and a.refcount(0) == 2
    with pytest.raises(ValueError, match=r"PageAllocator.writable: token range \[0, 7\) outside"):
        a.writable(3, 0, 7)
    with pytest.raises(
        ValueError, match=r"PageAllocator.fork: destination sequence id 1 already exists"
    ):
        a.fork(3, 1)
    a.free(4)
    with pytest.raises(KeyError, match=r"PageAllocator.free: unknown sequence id 4"):
        a.free(4)  # double free
    with pytest.raises(KeyError):
        a.fork(9, 10)
    with pytest.raises(ValueError, match=r"num_tokens must be >= 0"):
        a.reserve(1, -1)
    with pytest.raises(IndexError):
        a.refcount(4)


@pytest.mark.parametrize("Alloc", IMPLS)
def test_bad_construction(Alloc):
    with pytest.raises(ValueError, match=r"num_pages and page_size must be >= 1"):
        Alloc(0, 4)
    with pytest.raises(ValueError, match=r"num_pages and page_size must be >= 1"):
        Alloc(4, 0)
