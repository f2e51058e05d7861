"""cache_gather: kernel vs reference (exact) for ragged batches, page sizes, strided tables and
caches, write -> gather round trips, max_len, opcheck and errors."""

import pytest
import torch
from cache_util import DTYPES, make_cache, rand

import dllm_kernels as dk
from dllm_kernels import reference

CASES = [  # (page_size, H, D, kv_lens)
    (1, 1, 64, [1]),
    (16, 4, 128, [33, 0, 1000, 7]),
    (64, 7, 96, [4097, 64, 65]),
    (16, 2, 3, [31, 32, 33]),  # odd head_dim: element path
]


def random_table(lens, S, P, gen, extra_cols=2):
    """Each row's pages: distinct random page ids; unused entries are garbage (-7 or huge)."""
    need = [(n + S - 1) // S for n in lens]
    cols = max(need + [0]) + extra_cols
    perm = torch.randperm(P, generator=gen).tolist()
    table = torch.full((len(lens), cols), -7, dtype=torch.int32)
    start = 0
    for b, n in enumerate(need):
        table[b, :n] = torch.tensor(perm[start : start + n], dtype=torch.int32)
        table[b, n:] = 10**6 if b % 2 else -7
        start += n
    return table


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_reference(device, gen, case, dtype):
    S, H, D, lens = case
    P = sum((n + S - 1) // S for n in lens) + 3
    k_cache, v_cache = make_cache(P, S, H, D, dtype, device, gen)
    table = random_table(lens, S, P, gen).to(device)
    kv_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    want = reference.cache_gather(k_cache, v_cache, table, kv_lens)
    got = dk.cache_gather(k_cache, v_cache, table, kv_lens)
    for g, w in zip(got, want):
        assert g.shape == (len(lens), max(lens), H, D) and g.is_contiguous()
        assert torch.equal(g, w)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_write_then_gather_round_trip(device, gen, dtype):
    """Tokens written through a block table read back exactly, in logical order, zero padded."""
    S, H, D, lens = 16, 4, 64, [5, 40, 17]
    P = 16
    k_cache, v_cache = make_cache(P, S, H, D, dtype, device, gen)
    table = random_table(lens, S, P, gen).to(device)
    B, T = len(lens), max(lens)
    k, v = rand((B, T, H, D), dtype, device, gen), rand((B, T, H, D), dtype, device, gen)
    t = torch.arange(T)
    slots = table.cpu().long()[:, (t // S).clamp(max=table.shape[1] - 1)] * S + t % S
    valid = t.unsqueeze(0) < torch.tensor(lens).unsqueeze(1)
    slots = torch.where(valid, slots, torch.full_like(slots, -1)).to(device)
    dk.cache_write_(k_cache, v_cache, k, v, slots)
    gk, gv = dk.cache_gather(
        k_cache, v_cache, table, torch.tensor(lens, dtype=torch.int32, device=device)
    )
    valid = valid.to(device)[..., None, None]
    assert torch.equal(gk, torch.where(valid, k, torch.zeros((), dtype=dtype, device=device)))
    assert torch.equal(gv, torch.where(valid, v, torch.zeros((), dtype=dtype, device=device)))


def test_max_len_pads_and_cuts(device, gen):
    S, H, D, lens = 4, 2, 16, [6, 3]
    k_cache, v_cache = make_cache(8, S, H, D, torch.float32, device, gen)
    table = random_table(lens, S, 8, gen).to(device)
    kv_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    full_k, full_v = dk.cache_gather(k_cache, v_cache, table, kv_lens)
    long_k, _ = dk.cache_gather(k_cache, v_cache, table, kv_lens, max_len=9)
    assert torch.equal(long_k[:, :6], full_k) and not long_k[:, 6:].any()
    cut_k, cut_v = dk.cache_gather(k_cache, v_cache, table, kv_lens, max_len=2)
    assert torch.equal(cut_k, full_k[:, :2]) and torch.equal(cut_v, full_v[:, :2])
    empty_k, _ = dk.cache_gather(k_cache, v_cache, table, kv_lens, max_len=0)
    assert empty_k.shape == (2, 0, H, D)


def test_strided_table_lens_and_cache(device, gen):
    S, H, D, lens = 16, 4, 64, [20, 50, 1]
    P = 12
    kv = rand((P, 2, S, H, D), torch.bfloat16, device, gen)
    k_cache, v_cache = kv[:, 0], kv[:, 1]
    table = random_table(lens, S, P, gen)
    wide = torch.zeros(table.shape[0], 2 * table.shape[1], dtype=torch.int32)
    wide[:, ::2] = table
    kv_lens = torch.tensor([x for n in lens for x in (n, -1)], dtype=torch.int32, device=device)[
        ::2
    ]
    strided = wide.to(device)[:, ::2]
    assert not strided.is_contiguous() and not kv_lens.is_contiguous()
    want = reference.cache_gather(k_cache, v_cache, strided, kv_lens)
    got = dk.cache_gather(k_cache, v_cache, strided, kv_lens)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_empty_batch(device, gen):
    k_cache, v_cache = make_cache(4, 4, 2, 8, torch.float32, device, gen)
    table = torch.zeros(0, 3, dtype=torch.int32, device=device)
    k, v = dk.cache_gather(
        k_cache, v_cache, table, torch.zeros(0, dtype=torch.int32, device=device)
    )
    assert k.shape == (0, 0, 2, 8) and v.shape == (0, 0, 2, 8)


@pytest.mark.native
def test_opcheck(device, gen):
    S, H, D, lens = 16, 4, 64, [20, 3]
    k_cache, v_cache = make_cache(6, S, H, D, torch.float16, device, gen)
    table = random_table(lens, S, 6, gen).to(device)
    kv_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    torch.library.opcheck(
        torch.ops.dllm_kernels.cache_gather, (k_cache, v_cache, table, kv_lens, 21)
    )


# ---- bad input
# ------------------------------------------------------------------------------------

BAD = {
    "len beyond table": (
        lambda t, l: (t, l + torch.tensor([0, 100], dtype=torch.int32, device=l.device)),
        r"cache_gather: kv_lens\[1\] = 1\d\d must be in \[0, max_pages",
    ),
    "negative len": (lambda t, l: (t, -l), r"cache_gather: kv_lens\[0\] = -\d+ must be in"),
    "page out of range": (
        lambda t, l: (torch.where(t == t[1, 0], 99, t), l),
        r"cache_gather: block_table\[1, 0\] = 99 is not a page id in \[0, 8\)",
    ),
    "table int64": (lambda t, l: (t.long(), l), r"cache_gather: block_table must have dtype"),
    "lens int64": (lambda t, l: (t, l.long()), r"cache_gather: kv_lens must have dtype"),
    "lens shape": (lambda t, l: (t, l[:1]), r"cache_gather: kv_lens must have shape \[B\] = \[2\]"),
    "table 1-D": (lambda t, l: (t[0], l), r"cache_gather: block_table must be 2-D"),
}
IMPLS = {
    "native": lambda kc, vc, t, l: torch.ops.dllm_kernels.cache_gather(kc, vc, t, l, 4),
    "public": lambda kc, vc, t, l: dk.cache_gather(kc, vc, t, l),
    "reference": lambda kc, vc, t, l: reference.cache_gather(kc, vc, t, l),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    make_bad, pattern = BAD[case]
    k_cache, v_cache = make_cache(8, 4, 2, 8, torch.float32, device, gen)
    table = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32, device=device)
    kv_lens = torch.tensor([9, 10], dtype=torch.int32, device=device)
    with pytest.raises(RuntimeError, match=pattern):
        IMPLS[impl](k_cache, v_cache, *make_bad(table, kv_lens))


def test_bad_max_len(gen):
    k_cache, v_cache = make_cache(8, 4, 2, 8, torch.float32, "cpu", gen)
    table = torch.zeros(1, 2, dtype=torch.int32)
    lens = torch.ones(1, dtype=torch.int32)
    for fn in (dk.cache_gather, reference.cache_gather):
        with pytest.raises(RuntimeError, match=r"cache_gather: max_len must be >= 0"):
            fn(k_cache, v_cache, table, lens, -1)
        with pytest.raises(RuntimeError, match=r"cache_gather: max_len must be an int"):
            fn(k_cache, v_cache, table, lens, 2.5)
