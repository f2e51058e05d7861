"""block_attention: kernel vs an fp64 evaluation of the reference math (fp32 within 1e-4; bf16 /
fp16 by FlashAttention-3's rule: error <= 2x that of the same math done in the input precision),
both masks, ragged batches, page sizes, GQA, cache-only / contiguous-only / both, rows that see no
key, strided inputs, SDPA as an independent oracle, opcheck and errors."""

import math

import pytest
import torch
import torch.nn.functional as F

import dllm_kernels as dk
from dllm_kernels import reference
from dllm_kernels.reference.block_attention import attention_math

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def make(B, Lq, Hq, Hkv, D, cache_lens, kv_lens, Lk, page_size, dtype, device, gen, extra_pages=3):
    """Random q, k, v and a fragmented paged cache (pages in random order). cache_lens None: no
    cache part; Lk None: no contiguous part."""
    def rnd(*shape):
        return torch.randn(shape, generator=gen).to(dtype).to(device)
    kw = {}
    if cache_lens is not None:
        need = [-(-n // page_size) for n in cache_lens]
        P = sum(need) + extra_pages
        perm = torch.randperm(P, generator=gen)
        table = torch.full((B, max(need + [1])), -1, dtype=torch.int32)
        start = 0
        for b, n in enumerate(need):
            table[b, :n] = perm[start:start + n].to(torch.int32)
            start += n
        kw.update(k_cache=rnd(P, page_size, Hkv, D), v_cache=rnd(P, page_size, Hkv, D),
                  block_table=table.to(device),
                  cache_lens=torch.tensor(cache_lens, dtype=torch.int32, device=device))
    k = v = None
    if Lk is not None:
        k, v = rnd(B, Lk, Hkv, D), rnd(B, Lk, Hkv, D)
        if kv_lens is not None:
            kw["kv_lens"] = torch.tensor(kv_lens, dtype=torch.int32, device=device)
    return rnd(B, Lq, Hq, D), k, v, kw


def math_at(q, k, v, kw, mask, block_size, acc_dtype, q_start=None):
    B = q.shape[0]
    dev = q.device
    cache_lens = kw.get("cache_lens", torch.zeros(B, dtype=torch.int32, device=dev))
    kv_lens = kw.get("kv_lens", torch.full((B,), k.shape[1] if k is not None else 0, dtype=torch.int32, device=dev))
    qs = q_start if q_start is not None else cache_lens
    return attention_math(q, k, v, kw.get("k_cache"), kw.get("v_cache"), kw.get("block_table"),
                          cache_lens, kv_lens, qs, mask, block_size or 1, q.shape[-1] ** -0.5,
                          acc_dtype)


def check_accuracy(out, lse, q, k, v, kw, mask, block_size, q_start=None):
    ref, ref_lse = math_at(q, k, v, kw, mask, block_size, torch.float64, q_start)
    err = (out.double() - ref).abs().max().item() if out.numel() else 0.0
    if q.dtype == torch.float32:
        assert err <= 1e-4, err
    else:
        low, _ = math_at(q, k, v, kw, mask, block_size, q.dtype, q_start)
        low_err = (low.double() - ref).abs().max().item() if out.numel() else 0.0
        assert err <= 2 * low_err + 1e-6, (err, low_err)
    finite = torch.isfinite(ref_lse)
    assert torch.equal(torch.isfinite(lse), finite)               # -inf exactly where no key
    assert (lse[finite].double() - ref_lse[finite]).abs().max().item() <= (1e-4 if q.dtype == torch.float32 else 2e-3) if finite.any() else True


CASES = [  # B, Lq, Hq, Hkv, D, cache_lens, kv_lens, Lk, page_size
    (1, 32, 4, 4, 128, [1000], None, 32, 16),           # step: prefix + block, MHA
    (2, 7, 8, 2, 64, [33, 0], None, 7, 1),              # GQA 4, page size 1, a row without cache
    (3, 33, 7, 1, 64, [4097, 1, 64], [33, 5, 0], 33, 64),  # GQA 7 (MQA), ragged contiguous part
    (2, 1, 4, 4, 96, [33, 1000], None, None, 16),       # cache only, Lq = 1, D = 96
    (2, 32, 4, 1, 128, None, [32, 7], 32, None),        # contiguous only
    (1, 7, 2, 2, 256, [0], [0], 7, 16),                 # no key at all: zeros, lse = -inf
    (2, 33, 4, 2, 256, [70, 33], None, 33, 16),         # D = 256 with keys
    (1, 32, 14, 2, 128, [100], None, 32, 16),           # GQA 7 with two KV heads
    (2, 7, 4, 4, 64, None, [1000, 333], 1000, None),    # a long contiguous part
    (3, 32, 4, 2, 96, [50, 0, 17], [32, 0, 5], 32, 16), # a row with no key among normal rows
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("mask", ["full", "block_causal"])
def test_matches_reference_math(device, gen, case, mask, dtype):
    B, Lq, Hq, Hkv, D, cache_lens, kv_lens, Lk, S = case
    if device.type == "cuda" and dtype == torch.float32:
        pytest.skip("fp32 attention is CPU only")
    q, k, v, kw = make(B, Lq, Hq, Hkv, D, cache_lens, kv_lens, Lk, S or 16, dtype, device, gen)
    bs = 16 if mask == "block_causal" else None
    out, lse = dk.block_attention(q, k, v, **kw, mask=mask, block_size=bs, return_lse=True)
    assert out.shape == q.shape and out.dtype == dtype and lse.shape == (B, Hq, Lq)
    check_accuracy(out, lse, q, k, v, kw, mask, bs)


HAS_AMX = bool(dk.backend_info().get("cpu_features", {}).get("amx_bf16"))


@pytest.mark.skipif(not HAS_AMX, reason="this CPU (or OS) gives no AMX-BF16")
@pytest.mark.parametrize("amx", ["1", "0"], ids=["amx", "fp32-path"])
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("mask", ["full", "block_causal"])
def test_cpu_bf16_paths_match_reference_math(monkeypatch, gen, case, mask, amx):
    """bf16 on CPU has two kernels, AMX tiles (default where available) and the fp32 FMA path
    (DLLM_KERNELS_AMX=0): both meet the FlashAttention-3 rule on every case, and the switch
    really changes the path (the AMX one rounds P to bf16, so the results differ slightly)."""
    B, Lq, Hq, Hkv, D, cache_lens, kv_lens, Lk, S = case
    q, k, v, kw = make(B, Lq, Hq, Hkv, D, cache_lens, kv_lens, Lk, S or 16, torch.bfloat16,
                       torch.device("cpu"), gen)
    bs = 16 if mask == "block_causal" else None
    monkeypatch.setenv("DLLM_KERNELS_AMX", amx)
    out, lse = dk.block_attention(q, k, v, **kw, mask=mask, block_size=bs, return_lse=True)
    check_accuracy(out, lse, q, k, v, kw, mask, bs)
    monkeypatch.setenv("DLLM_KERNELS_AMX", "0" if amx == "1" else "1")
    other, other_lse = dk.block_attention(q, k, v, **kw, mask=mask, block_size=bs, return_lse=True)
    assert torch.equal(lse.isfinite(), other_lse.isfinite())
    if lse.isfinite().any():  # scores are exact bf16 products summed in fp32 on both paths
        assert (lse - other_lse)[lse.isfinite()].abs().max().item() <= 1e-4
    assert (out.float() - other.float()).abs().max().item() <= 1.6e-2


@pytest.mark.skipif(not HAS_AMX, reason="this CPU (or OS) gives no AMX-BF16")
def test_cpu_amx_path_is_taken_and_threads_agree(monkeypatch, gen):
    """The AMX kernel is what runs for bf16 (its output differs from the fp32 path's), and it is
    deterministic across thread counts (each unit is computed by one thread)."""
    q, k, v, kw = make(2, 32, 8, 2, 128, [700, 129], None, 32, 16, torch.bfloat16,
                       torch.device("cpu"), gen)
    monkeypatch.setenv("DLLM_KERNELS_AMX", "1")
    amx = dk.block_attention(q, k, v, **kw)
    monkeypatch.setenv("DLLM_KERNELS_AMX", "0")
    fp32_path = dk.block_attention(q, k, v, **kw)
    assert not torch.equal(amx, fp32_path)
    monkeypatch.setenv("DLLM_KERNELS_AMX", "1")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = dk.block_attention(q, k, v, **kw)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(amx, single)


@pytest.mark.native
@pytest.mark.parametrize("amx", ["1", "0"])
@pytest.mark.parametrize("D", [64, 128])
def test_cpu_bf16_output_rounding_matches_torch(monkeypatch, gen, amx, D):
    """Every key of a row has the same K (random), so every probability is exactly 1 / 4. V holds
    bf16 multiples of 2^-8 below 8 in magnitude, so (v_0 + v_1 + v_2 + v_3) / 4 is exact in fp32
    in any order of summation (a multiple of 2^-10 below 8: at most 13 significant bits) on both
    kernels, yet mostly needs rounding to bf16 (8 bits); that rounding (the kernel's own
    vectorised store) must equal torch's, bit for bit, ties and all."""
    B, Lq, Hq, Hkv = 2, 33, 8, 2
    q = torch.randn(B, Lq, Hq, D, generator=gen).bfloat16()
    k = torch.randn(B, 1, Hkv, D, generator=gen).bfloat16().expand(B, 4, Hkv, D).contiguous()
    v = ((torch.randn(B, 4, Hkv, D, generator=gen) * 1024).round().clamp(-2047, 2047) / 256).bfloat16()
    assert (v.float() * 256 == (v.float() * 256).round()).all()  # still multiples of 2^-8
    monkeypatch.setenv("DLLM_KERNELS_AMX", amx)
    out = dk.block_attention(q, k, v)
    mean = v.float().sum(dim=1) / 4                                     # [B, Hkv, D], exact
    want = mean.repeat_interleave(Hq // Hkv, dim=1).unsqueeze(1).expand(B, Lq, Hq, D).bfloat16()
    assert torch.equal(out, want)


@pytest.mark.parametrize("L", [1, 7, 32, 33, 100])
def test_staircase_prefill_equals_dense_mask_sdpa(device, gen, L):
    """The block-causal prefill (no cache) equals SDPA with an explicit boolean mask."""
    bs, H, D = 32, 4, 64
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, k, v, _ = make(1, L, H, H, D, None, None, L, None, dtype, device, gen)
    out = dk.block_attention(q, k, v, mask="block_causal", block_size=bs)
    pos = torch.arange(L, device=device)
    allowed = reference.block_causal_mask(pos.unsqueeze(1), pos.unsqueeze(0), bs)  # [query, key]
    want = F.scaled_dot_product_attention(q.transpose(1, 2).float(), k.transpose(1, 2).float(),
                                          v.transpose(1, 2).float(), attn_mask=allowed).transpose(1, 2)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert (out.float() - want).abs().max().item() <= tol


def test_step_equals_sdpa_on_gathered_cache(device, gen):
    """A dLLM step (block over a paged prefix, full mask) equals SDPA over gathered K/V."""
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, k, v, kw = make(1, 32, 8, 2, 128, [513], None, 32, 16, dtype, device, gen)
    out = dk.block_attention(q, k, v, **kw)
    kc, vc = dk.cache_gather(kw["k_cache"], kw["v_cache"], kw["block_table"], kw["cache_lens"])
    K = torch.cat([kc, k], 1).repeat_interleave(4, 2).transpose(1, 2).float()
    V = torch.cat([vc, v], 1).repeat_interleave(4, 2).transpose(1, 2).float()
    want = F.scaled_dot_product_attention(q.transpose(1, 2).float(), K, V).transpose(1, 2)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert (out.float() - want).abs().max().item() <= tol


def test_q_start_and_block_causal_over_cache(device, gen):
    """Block diffusion step: block k attends to committed blocks (cache) + itself; an explicit
    q_start that puts the queries earlier hides the later cached blocks, and queries at negative
    positions (left padding) see nothing."""
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    q, k, v, kw = make(2, 16, 4, 2, 64, [64, 40], None, 16, 16, dtype, device, gen)
    q_start = torch.tensor([16, -5], dtype=torch.int32, device=device)   # row 1: left padded
    out, lse = dk.block_attention(q, k, v, **kw, q_start=q_start, mask="block_causal",
                                  block_size=16, return_lse=True)
    check_accuracy(out, lse, q, k, v, kw, "block_causal", 16, q_start)


def test_strided_inputs(device, gen):
    """q / k / v as views of a fused qkv [B, L, 3, H, D] and a cache that is the two halves of one
    [P, 2, S, H, D] allocation."""
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    B, L, H, D, S = 2, 33, 4, 64, 16
    qkv = torch.randn(B, L, 3, H, D, generator=gen).to(dtype).to(device)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    kv = torch.randn(6, 2, S, H, D, generator=gen).to(dtype).to(device)
    kw = dict(k_cache=kv[:, 0], v_cache=kv[:, 1],
              block_table=torch.tensor([[4, 1, 0], [2, 5, 3]], dtype=torch.int32, device=device),
              cache_lens=torch.tensor([40, 33], dtype=torch.int32, device=device))
    out, lse = dk.block_attention(q, k, v, **kw, return_lse=True)
    check_accuracy(out, lse, q, k, v, kw, "full", None)
    ref = reference.block_attention(q.contiguous(), k.contiguous(), v.contiguous(),
                                    k_cache=kw["k_cache"].contiguous(), v_cache=kw["v_cache"].contiguous(),
                                    block_table=kw["block_table"], cache_lens=kw["cache_lens"])
    assert (out.float() - ref.float()).abs().max().item() <= (1e-5 if dtype == torch.float32 else 2e-2)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_odd_element_offsets(device, gen, dtype):
    """q / k / v / cache starting one element into their storage (rows not 4- or 16-byte aligned)."""
    if device.type == "cuda" and dtype == torch.float32:
        pytest.skip("fp32 attention is CPU only")
    B, L, H, D = 2, 9, 4, 64

    def odd(*shape):
        n = 1
        for s_ in shape:
            n *= s_
        return torch.randn(n + 1, generator=gen).to(dtype).to(device)[1:].view(shape)

    q, k, v = odd(B, L, H, D), odd(B, L, 2, D), odd(B, L, 2, D)
    kw = dict(k_cache=odd(5, 16, 2, D), v_cache=odd(5, 16, 2, D),
              block_table=torch.tensor([[3, 0], [1, 4]], dtype=torch.int32, device=device),
              cache_lens=torch.tensor([20, 7], dtype=torch.int32, device=device))
    out, lse = dk.block_attention(q, k, v, **kw, return_lse=True)
    check_accuracy(out, lse, q, k, v, kw, "full", None)


def test_softmax_scale(device, gen):
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, k, v, kw = make(1, 7, 2, 2, 64, None, None, 9, None, dtype, device, gen)
    a = dk.block_attention(q, k, v, softmax_scale=0.5)
    b = dk.block_attention(q * (0.5 / 64 ** -0.5), k, v)
    assert (a.float() - b.float()).abs().max().item() <= (1e-5 if dtype == torch.float32 else 3e-2)


def test_unchecked_bad_values_never_crash(device, gen):
    """check=False with out-of-range lengths / page ids: clamped, no crash, finite output."""
    q, k, v, kw = make(2, 7, 4, 4, 64, [20, 5], None, 7, 16, torch.bfloat16 if device.type == "cuda" else torch.float32, device, gen)
    kw["block_table"][0, 0] = 10**6
    kw["cache_lens"][1] = 10**6
    out = dk.block_attention(q, k, v, **kw, check=False)
    assert torch.isfinite(out.float()).all()


@pytest.mark.native
def test_opcheck(device, gen):
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, k, v, kw = make(2, 7, 4, 2, 64, [33, 5], [7, 3], 7, 16, dtype, device, gen)
    args = (q, k, v, kw["k_cache"], kw["v_cache"], kw["block_table"], kw["cache_lens"], kw["kv_lens"],
            None, "block_causal", 16, 0.125, True)
    torch.library.opcheck(torch.ops.dllm_kernels.block_attention, args)


@pytest.mark.native
def test_torch_compile_fullgraph(gen):
    q, k, v, kw = make(1, 7, 2, 2, 64, [20], None, 7, 16, torch.float32, "cpu", gen)
    want = dk.block_attention(q, k, v, **kw)
    fn = torch.compile(lambda *a: dk.block_attention(*a, **kw, check=False), fullgraph=True, backend="eager")
    assert torch.allclose(fn(q, k, v), want)


# ---- bad input ------------------------------------------------------------------------------------

def _bad():
    def with_kw(**over):
        def f(q, k, v, kw):
            return q, k, v, {**kw, **over}
        return f
    return {
        "heads": (lambda q, k, v, kw: (q[:, :, :3], k, v, kw), r"block_attention: q heads Hq = 3 must be a multiple of the key/value heads Hkv = 2"),
        "head_dim": (lambda q, k, v, kw: (q[..., :48], k[..., :48], v[..., :48], {}), r"block_attention: q head_dim must be one of"),
        "dtype mix": (lambda q, k, v, kw: (q, k.double(), v, kw), r"block_attention: k must have dtype"),
        "cache dtype": (lambda q, k, v, kw: (q, k, v, {**kw, "k_cache": kw["k_cache"].half(), "v_cache": kw["v_cache"].half()}),
                        r"block_attention: k_cache must have dtype"),
        "page out of range": (with_kw(block_table=torch.tensor([[0, 1, 99], [2, 0, 0]], dtype=torch.int32)),
                              r"block_attention: block_table\[0, 2\] = 99 is not a page id in \[0, 8\)"),
        "len beyond table": (with_kw(cache_lens=torch.tensor([40, 49], dtype=torch.int32)),
                             r"block_attention: cache_lens\[1\] = 49 must be in \[0, max_pages 3 x page_size 16 = 48\]"),
        "kv_lens beyond Lk": (with_kw(kv_lens=torch.tensor([7, 8], dtype=torch.int32)), r"block_attention: kv_lens\[1\] = 8 must be in \[0, Lk = 7\]"),
        "lens int64": (with_kw(cache_lens=torch.tensor([4, 4])), r"block_attention: cache_lens must have dtype"),
        "cache without table": (lambda q, k, v, kw: (q, k, v, {key: val for key, val in kw.items() if key != "block_table"}),
                                r"block_attention: k_cache/v_cache/block_table must be given together"),
        "mask": (with_kw(mask="causal"), r"block_attention: mask must be one of"),
        "no block_size": (with_kw(mask="block_causal"), r"block_attention: block_size "),
        "cache heads": (lambda q, k, v, kw: (q, k[:, :, :1], v[:, :, :1], kw), r"block_attention: k_cache must have Hkv = 1 heads like k"),
    }


BAD = _bad()


@pytest.mark.parametrize("impl", ["public", "native", "reference"])
@pytest.mark.parametrize("case", BAD)
def test_bad_input(device, gen, case, impl):
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, k, v, kw = make(2, 7, 4, 2, 64, [40, 20], None, 7, 16, dtype, device, gen)
    make_bad, pattern = BAD[case]
    q, k, v, kw = make_bad(q, k, v, kw)
    kw = {key: (val.to(device) if isinstance(val, torch.Tensor) else val) for key, val in kw.items()}
    if impl == "native":
        mask = kw.pop("mask", "full")
        bs = kw.pop("block_size", None)
        call = lambda: torch.ops.dllm_kernels.block_attention(
            q, k, v, kw.get("k_cache"), kw.get("v_cache"), kw.get("block_table"), kw.get("cache_lens"),
            kw.get("kv_lens"), None, mask, bs if bs is not None else 0, 0.125, True)
        if case == "no block_size":
            pattern = r"block_attention: block_size must be in \[1, 2\^62\], got 0"
    else:
        fn = dk.block_attention if impl == "public" else reference.block_attention
        call = lambda: fn(q, k, v, **kw)
    with pytest.raises(RuntimeError, match=pattern):
        call()


# ---- more shapes, messages identical on every path, unchecked values on the reference ------------

@pytest.mark.parametrize("shape", [(0, 7), (2, 0)], ids=["B=0", "Lq=0"])
def test_empty_shapes(device, gen, shape):
    B, Lq = shape
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q = torch.randn(B, Lq, 4, 64, generator=gen).to(dtype).to(device)
    k = torch.randn(B, 5, 2, 64, generator=gen).to(dtype).to(device)
    out, lse = dk.block_attention(q, k, k.clone(), return_lse=True)
    assert out.shape == q.shape and lse.shape == (B, 4, Lq)


def test_empty_contiguous_part(device, gen):
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, _, _, kw = make(2, 7, 4, 2, 64, [20, 3], None, None, 16, dtype, device, gen)
    k = torch.zeros(2, 0, 2, 64, dtype=dtype, device=device)
    out, lse = dk.block_attention(q, k, k.clone(), **kw, return_lse=True)
    check_accuracy(out, lse, q, None, None, kw, "full", None)


def _messages(q, k, v, kw):
    """The error text of each path (None: accepted)."""
    out = {}
    for impl in ("public", "native", "reference"):
        try:
            if impl == "native":
                torch.ops.dllm_kernels.block_attention(
                    q, k, v, kw.get("k_cache"), kw.get("v_cache"), kw.get("block_table"),
                    kw.get("cache_lens"), kw.get("kv_lens"), kw.get("q_start"), kw.get("mask", "full"),
                    kw.get("block_size") or 1, kw.get("softmax_scale", 0.125), True)
            else:
                fn = dk.block_attention if impl == "public" else reference.block_attention
                fn(q, k, v, **kw)
            out[impl] = None
        except RuntimeError as e:
            out[impl] = str(e).split("\n")[0]
    return out


SAME_MESSAGE = {
    "q int": lambda q, k, v, kw: (q.int(), k, v, kw),
    "q double": lambda q, k, v, kw: (q.double(), k, v, kw),
    "v shape": lambda q, k, v, kw: (q, k, v[:, :3], kw),
    "k without v": lambda q, k, v, kw: (q, k, None, kw),
    "kv_lens without k": lambda q, k, v, kw: (q, None, None, {**kw, "kv_lens": torch.tensor([1, 1], dtype=torch.int32)}),
    "cache_lens without cache": lambda q, k, v, kw: (q, k, v, {"cache_lens": kw["cache_lens"]}),
    "negative cache_lens": lambda q, k, v, kw: (q, k, v, {**kw, "cache_lens": torch.tensor([4, -1], dtype=torch.int32)}),
    "q_start int64": lambda q, k, v, kw: (q, k, v, {**kw, "q_start": torch.tensor([0, 0])}),
    "q_start shape": lambda q, k, v, kw: (q, k, v, {**kw, "q_start": torch.tensor([0], dtype=torch.int32)}),
    "table int64": lambda q, k, v, kw: (q, k, v, {**kw, "block_table": kw["block_table"].long()}),
    "table rows": lambda q, k, v, kw: (q, k, v, {**kw, "block_table": kw["block_table"][:1]}),
    "q head_dim strided": lambda q, k, v, kw: (torch.cat([q, q], -1)[..., ::2], k, v, kw),
    "k head_dim": lambda q, k, v, kw: (q, torch.cat([k, k], -1), torch.cat([v, v], -1), kw),
    "cache head_dim": lambda q, k, v, kw: (q, None, None, {**kw, "k_cache": torch.cat([kw["k_cache"]] * 2, -1), "v_cache": torch.cat([kw["v_cache"]] * 2, -1)}),
    "nan scale": lambda q, k, v, kw: (q, k, v, {**kw, "softmax_scale": float("nan")}),
    "inf scale": lambda q, k, v, kw: (q, k, v, {**kw, "softmax_scale": float("inf")}),
    "huge scale": lambda q, k, v, kw: (q, k, v, {**kw, "softmax_scale": 1e300}),
    "block_size 2^70": lambda q, k, v, kw: (q, k, v, {**kw, "mask": "block_causal", "block_size": 2 ** 62 + 1}),
    "page and length": lambda q, k, v, kw: (q, k, v, {**kw, "block_table": torch.tensor([[0, 9, 1], [2, 3, 4]], dtype=torch.int32),
                                                      "cache_lens": torch.tensor([30, 99], dtype=torch.int32)}),
    "2^31 keys": lambda q, k, v, kw: (q, torch.zeros(1, 1, 2, 64).expand(2, 2 ** 31, 2, 64), torch.zeros(1, 1, 2, 64).expand(2, 2 ** 31, 2, 64), {}),
}


@pytest.mark.native
@pytest.mark.parametrize("case", SAME_MESSAGE)
def test_same_message_on_every_path(gen, case):
    q, k, v, kw = make(2, 7, 4, 2, 64, [40, 20], None, 7, 16, torch.float32, "cpu", gen)
    msgs = _messages(*SAME_MESSAGE[case](q, k, v, kw))
    assert msgs["public"] is not None and msgs["public"].startswith("dllm_kernels.block_attention: "), msgs
    assert msgs["public"] == msgs["reference"], msgs
    if case not in ("kv_lens without k", "cache_lens without cache"):   # the schema cannot express
        assert msgs["native"] == msgs["public"], msgs                  # Python-only argument slots


def test_reference_unchecked_clamps_like_the_kernel(gen):
    q, k, v, kw = make(2, 7, 4, 4, 64, [20, 5], None, 7, 16, torch.float32, "cpu", gen)
    kw["block_table"][0, 0] = 10 ** 6
    kw["cache_lens"][1] = 10 ** 6
    a = dk.block_attention(q, k, v, **kw, check=False)
    b = reference.block_attention(q, k, v, **kw, check=False)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.native
@pytest.mark.parametrize("variant", ["no cache", "no k", "q_start", "Lq=1 full"])
def test_opcheck_variants(device, gen, variant):
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    q, k, v, kw = make(2, 1 if variant == "Lq=1 full" else 7, 4, 2, 64, [33, 5], None, 7, 16, dtype, device, gen)
    if variant == "no cache":
        kw = {}
    if variant == "no k":
        k = v = None
    qs = torch.tensor([-3, 40], dtype=torch.int32, device=device) if variant == "q_start" else None
    mask = "block_causal" if variant == "q_start" else "full"
    args = (q, k, v, kw.get("k_cache"), kw.get("v_cache"), kw.get("block_table"), kw.get("cache_lens"),
            None, qs, mask, 16, 0.125, True)
    torch.library.opcheck(torch.ops.dllm_kernels.block_attention, args)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fp32_on_cuda_is_rejected_everywhere(gen):
    q, k, v, kw = make(1, 7, 2, 2, 64, None, None, 7, None, torch.float32, "cuda", gen)
    msgs = _messages(q, k, v, kw)
    assert all(m is not None and "Float attention is CPU only" in m for m in msgs.values()), msgs
