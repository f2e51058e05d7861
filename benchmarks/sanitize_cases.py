"""One small case per CUDA kernel, for compute-sanitizer (memcheck, racecheck, synccheck).

    python benchmarks/sanitize_cases.py [--device cuda|cpu] [--only SUBSTRING ...] [--quick]
    [--list]
    compute-sanitizer --tool racecheck --error-exitcode 86 python benchmarks/sanitize_cases.py
    --quick

Every kernel (and each launch variant: V split over blocks or not, sampled, filtered, the fused
denoise_and_select both ways, every block_attention head_dim and mask, split-KV or not) runs once
on tiny inputs, so the sanitizers, which slow kernels down 10-100x (racecheck most), finish in
seconds. Each result is also compared with the reference computed on the CPU (exact for integers
and bools, the registry's tolerances for floats): a case prints `ok` or `MISMATCH` and the exit
status is 1 if any case mismatched or raised. With --device cpu the same cases run the CPU kernels
(benchmarks/gpu_session.sh --dry-run does this, so the cases cannot rot without a GPU).

Run it under the sanitizers with PYTORCH_NO_CUDA_MEMORY_CACHING=1 (gpu_session.sh does): with
torch's caching allocator a tensor is a slice of a larger cudaMalloc block, and memcheck cannot see
an access past its end. --quick leaves out the one large case (select_transfer's L > 4096
fallback, O(L^2)) for racecheck.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback

import torch

import dllm_kernels as dk
from dllm_kernels import reference, registry

MASK = registry.LLADA_MASK_ID
_DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
CASES = []  # (name, fn(device, gen) -> [(label, got, want, spec)], large)


def case(name, large=False):
    def wrap(fn):
        CASES.append((name, fn, large))
        return fn

    return wrap


def cpu(t):
    return t.cpu() if isinstance(t, torch.Tensor) else t


def cpu_kw(kw):
    return {k: cpu(v).clone() if isinstance(v, torch.Tensor) else v for k, v in kw.items()}


def logits_x(B, L, V, dtype, device, gen, masked=0.75):
    logits = (torch.randn(B, L, V, generator=gen) * 3).to(_DT[dtype])
    x = torch.randint(0, V, (B, L), generator=gen)
    x[torch.rand(B, L, generator=gen) < masked] = MASK
    return logits.to(device), x.to(device)


# ---- commit_, num_transfer_tokens
# -------------------------------------------------------------------


@case("commit_ (strided x)")
def _commit(device, gen):
    base = torch.randint(0, 1000, (37, 3), generator=gen).to(device)
    x = base.t()  # [3, 37], non-contiguous
    x0 = torch.randint(0, 1000, (3, 37), generator=gen).to(device)
    tr = (torch.rand(3, 37, generator=gen) < 0.4).to(device)
    want = cpu(x).clone()
    reference.commit_(want, cpu(x0), cpu(tr))
    dk.commit_(x, x0, tr)
    return [("x", x, want, None)]


@case("num_transfer_tokens")
def _ntt(device, gen):
    m = (torch.rand(3, 37, generator=gen) < 0.7).to(device)
    return [("n", dk.num_transfer_tokens(m, 5), reference.num_transfer_tokens(cpu(m), 5), None)]


# ---- denoise_step
# ------------------------------------------------------------------------------------
# The fast kernel splits V over blocks (and a merge kernel joins them) when B * L is small and
# V >= 8192; V = 1000 runs unsplit. top_k / top_p take the filtered kernel.


def _denoise(device, gen, B, L, V, dtype, **kw):
    logits, x = logits_x(B, L, V, dtype, device, gen)
    got = dk.denoise_step(logits, x, MASK, **kw)
    ref_kw = {k: (torch.tensor(v) if k == "suppress_tokens" else v) for k, v in kw.items()}
    want = reference.denoise_step(cpu(logits), cpu(x), MASK, **ref_kw)
    spec = registry.DENOISE_STEP
    return [("x0, conf", got, want, spec)]


@case("denoise_step fast, V unsplit, bf16 prob T=0")
def _ds1(device, gen):
    return _denoise(device, gen, 2, 5, 1000, "bf16")


@case("denoise_step fast, V split + merge, f32 neg_entropy, suppress_tokens")
def _ds2(device, gen):
    return _denoise(
        device, gen, 1, 3, 20000, "f32", confidence="neg_entropy", suppress_tokens=[5, 77, 19999]
    )


@case("denoise_step fast sampled, V split, f16 margin T=1")
def _ds3(device, gen):
    return _denoise(device, gen, 1, 3, 20000, "f16", confidence="margin", temperature=1.0, seed=11)


@case("denoise_step fast sampled, random confidence, shift_logits")
def _ds4(device, gen):
    return _denoise(
        device,
        gen,
        2,
        4,
        3000,
        "bf16",
        confidence="random",
        temperature=0.7,
        seed=3,
        shift_logits=True,
    )


@case("denoise_step filtered, top_k + top_p T=1 bf16")
def _ds5(device, gen):
    return _denoise(device, gen, 2, 3, 3000, "bf16", temperature=1.0, top_k=50, top_p=0.9, seed=5)


@case("denoise_step filtered, top_p_first T=0 f32 sampling source")
def _ds6(device, gen):
    return _denoise(
        device,
        gen,
        1,
        4,
        3000,
        "f32",
        top_k=20,
        top_p=0.8,
        filter_order="top_p_first",
        confidence_source="sampling",
    )


# ---- select_transfer
# ---------------------------------------------------------------------------------


def _conf(B, L, device, gen):
    c = torch.rand(B, L, generator=gen)
    c[torch.rand(B, L, generator=gen) < 0.25] = float("-inf")
    return c.to(device)


def _select(device, gen, B, L, **rule):
    c = _conf(B, L, device, gen)
    got = dk.select_transfer(c, **rule)
    want = reference.select_transfer(cpu(c), **{k: cpu(v) for k, v in rule.items()})
    return [("transfer", got, want, None)]


@case("select_transfer num_transfer (per-row k)")
def _st1(device, gen):
    return _select(device, gen, 3, 37, num_transfer=torch.tensor([1, 5, 40], device=device))


@case("select_transfer threshold / factor / probability")
def _st2(device, gen):
    return (
        _select(device, gen, 3, 37, threshold=0.6)
        + _select(device, gen, 3, 37, factor=1.0)
        + _select(device, gen, 3, 37, probability=0.3, seed=9)
    )


@case("select_transfer L > 4096 (rank-count fallback)", large=True)
def _st3(device, gen):
    return _select(device, gen, 1, 4100, num_transfer=7)


# ---- denoise_and_select (one fused kernel)
# -----------------------------------------------------------


def _das(device, gen, B, L, V, dtype, commit, **kw):
    logits, x = logits_x(B, L, V, dtype, device, gen)
    x_ref = cpu(x).clone()
    got = dk.denoise_and_select(logits, x, MASK, commit=commit, **kw)
    rule = {
        k: cpu(kw.pop(k)) for k in ("num_transfer", "threshold", "factor", "probability") if k in kw
    }
    seed = kw.pop("seed", 0)
    x0, conf = reference.denoise_step(cpu(logits), x_ref, MASK, seed=seed, **kw)
    tr = reference.select_transfer(conf, **rule, seed=seed)
    if commit:
        reference.commit_(x_ref, x0, tr)
    return [
        ("x0, conf", got[:2], (x0, conf), registry.DENOISE_STEP),
        ("transfer", got[2], tr, None),
        ("x", x, x_ref, None),
    ]


@case("denoise_and_select fused, V split, f32 top-k commit")
def _das1(device, gen):
    return _das(device, gen, 1, 4, 20000, "f32", True, num_transfer=2)


@case("denoise_and_select fused, V unsplit, bf16 threshold, B=3")
def _das2(device, gen):
    return _das(device, gen, 3, 7, 1000, "bf16", True, threshold=0.05)


@case("denoise_and_select fused filtered, f16 top_p T=1 factor")
def _das3(device, gen):
    return _das(
        device, gen, 2, 5, 3000, "f16", False, temperature=1.0, top_p=0.9, factor=1.0, seed=4
    )


@case("denoise_and_select fused sampled, V split, probability per row")
def _das4(device, gen):
    return _das(
        device,
        gen,
        2,
        3,
        20000,
        "bf16",
        True,
        temperature=1.0,
        confidence="neg_entropy",
        probability=torch.tensor([0.5, 0.9], device=device),
        seed=8,
    )


# ---- tensor parallelism: the shard kernels (dllm_kernels.tp, ranks as threads)
# --------------------------------------------------------------


def _tp(device, gen, world, B, L, V, dtype, **kw):
    """The sharded denoise_step at tp = world through tp.py's real code path, the ranks as threads
    of this process (tp.LocalGroup): every rank's outputs must equal the unsharded op's on the
    same device bit for bit (the reference is that op, checked against the reference elsewhere)."""
    from dllm_kernels import tp

    logits, x = logits_x(B, L, V, dtype, device, gen)
    want = dk.denoise_step(logits, x, MASK, return_argmax=True, **kw)
    group = tp.LocalGroup(world)

    def rank_call(rank):
        vs, n = tp.vocab_range(V, rank, world)
        shard = logits[..., vs : vs + n]
        return dk.denoise_step(
            shard, x, MASK, group=group, vocab_start=vs, return_argmax=True, **kw
        )

    return [
        (f"rank {r} x0, conf, argmax", got, want, None)
        for r, got in enumerate(group.run(rank_call))
    ]


@case("tp shards: state / sums / finalize, V split, bf16 neg_entropy T=1, tp=2")
def _tp1(device, gen):
    return _tp(
        device, gen, 2, 1, 3, 20000, "bf16", temperature=1.0, confidence="neg_entropy", seed=9
    )


@case("tp shards: top_k + top_p levels, f32 margin T=0.8, tp=3 (unequal shards)")
def _tp2(device, gen):
    return _tp(
        device,
        gen,
        3,
        2,
        3,
        3001,
        "f32",
        temperature=0.8,
        top_k=40,
        top_p=0.9,
        confidence="margin",
        seed=10,
    )


# ---- paged KV cache
# ----------------------------------------------------------------------------------


def _pool(P, H, D, dtype, device, gen):
    return [(torch.randn(P, 16, H, D, generator=gen) + 3).to(dtype).to(device) for _ in range(2)]


@case("cache_write_ (padded slots, bf16)")
def _cw(device, gen):
    kc, vc = _pool(6, 2, 64, torch.bfloat16, device, gen)
    k, v = (
        (torch.randn(20, 2, 64, generator=gen) + 3).to(torch.bfloat16).to(device) for _ in range(2)
    )
    slots = torch.randperm(96, generator=gen)[:20]
    slots[::7] = -1
    slots = slots.to(device)
    want_k, want_v = cpu(kc).clone(), cpu(vc).clone()
    reference.cache_write_(want_k, want_v, cpu(k), cpu(v), cpu(slots))
    dk.cache_write_(kc, vc, k, v, slots)
    return [("k_cache", kc, want_k, None), ("v_cache", vc, want_v, None)]


@case("cache_gather (ragged, f16)")
def _cg(device, gen):
    kc, vc = _pool(7, 2, 64, torch.float16, device, gen)
    table = torch.tensor([[3, 0, 5], [6, 1, 0]], dtype=torch.int32, device=device)
    lens = torch.tensor([40, 17], dtype=torch.int32, device=device)
    got = dk.cache_gather(kc, vc, table, lens)
    want = reference.cache_gather(cpu(kc), cpu(vc), cpu(table), cpu(lens))
    return [("k, v", got, want, None)]


@case("cache_copy_pages_ (f32)")
def _cp(device, gen):
    kc, vc = _pool(8, 2, 64, torch.float32, device, gen)
    pairs = torch.tensor([[1, 6], [3, 2], [0, 7]], device=device)
    want_k, want_v = cpu(kc).clone(), cpu(vc).clone()
    reference.cache_copy_pages_(want_k, want_v, cpu(pairs))
    dk.cache_copy_pages_(kc, vc, pairs)
    return [("k_cache", kc, want_k, None), ("v_cache", vc, want_v, None)]


# ---- block_attention
# ---------------------------------------------------------------------------------
# bf16 / f16 only on CUDA (the CPU also takes fp32). One row of a small batch over a paged prefix
# of 300 tokens is split over CTAs (split-KV + merge kernel); a prefill with no cache is not.
# Tolerances: the registry's for bf16, and for f16 the same rule scaled to f16's 3 more mantissa
# bits (both kernels accumulate in fp32 and round the output once; ~2.5 ulps).
ATTN = dataclasses.replace(
    registry.BLOCK_ATTENTION,
    dtype_tol=registry.BLOCK_ATTENTION.dtype_tol + ((torch.float16, 2e-4, 3e-3),),
)


def _attn(device, gen, B, Lq, Hq, Hkv, D, dtype, cache_lens, Lk, page_size=16, odd=False, **kw):
    def rnd(*shape):
        n = 1
        for s in shape:
            n *= s
        t = torch.randn(n + int(odd), generator=gen).to(dtype).to(device)
        return t[int(odd) :].view(shape)  # odd: rows one element off 16-byte alignment

    args = {}
    if cache_lens:
        need = [-(-n // page_size) for n in cache_lens]
        P = sum(need) + 2
        perm = torch.randperm(P, generator=gen)
        table = torch.full((B, max(need)), -1, dtype=torch.int32)
        start = 0
        for b, n in enumerate(need):
            table[b, :n] = perm[start : start + n].to(torch.int32)
            start += n
        args.update(
            k_cache=rnd(P, page_size, Hkv, D),
            v_cache=rnd(P, page_size, Hkv, D),
            block_table=table.to(device),
            cache_lens=torch.tensor(cache_lens, dtype=torch.int32, device=device),
        )
    q, k, v = rnd(B, Lq, Hq, D), rnd(B, Lk, Hkv, D), rnd(B, Lk, Hkv, D)
    args.update(kw)
    out, lse = dk.block_attention(q, k, v, **args, return_lse=True)
    want = reference.block_attention(cpu(q), cpu(k), cpu(v), **cpu_kw(args), return_lse=True)
    return [("out, lse", (out, lse), want, ATTN)]


@case("block_attention full, paged prefix, split-KV, GQA, D=128 bf16")
def _ba1(device, gen):
    return _attn(device, gen, 2, 8, 4, 2, 128, torch.bfloat16, [300, 45], 8)


@case("block_attention block_causal prefill, D=64 f16, odd offsets")
def _ba2(device, gen):
    return _attn(
        device,
        gen,
        1,
        40,
        2,
        1,
        64,
        torch.float16,
        None,
        40,
        odd=True,
        mask="block_causal",
        block_size=16,
    )


@case("block_attention block_causal over cache + q_start, D=96 bf16, kv_lens")
def _ba3(device, gen):
    return _attn(
        device,
        gen,
        2,
        12,
        3,
        3,
        96,
        torch.bfloat16,
        [20, 33],
        12,
        page_size=8,
        mask="block_causal",
        block_size=8,
        q_start=torch.tensor([20, -4], dtype=torch.int32, device=device),
        kv_lens=torch.tensor([12, 9], dtype=torch.int32, device=device),
    )


@case("block_attention full, D=256 f16, one page")
def _ba4(device, gen):
    return _attn(device, gen, 1, 5, 2, 2, 256, torch.float16, [9], 5)


# ---- driver
# ------------------------------------------------------------------------------------------


def _flat(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def check(label, got, want, spec):
    got, want = tuple(cpu(t) for t in _flat(got)), tuple(cpu(t) for t in _flat(want))
    if spec is None:  # integers / bools / copies: exact
        ok = all(
            g.shape == w.shape and g.dtype == w.dtype and torch.equal(g, w)
            for g, w in zip(got, want)
        )
        return ok, 0.0
    return registry.compare(spec, got, want)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--only", action="append", help="cases whose name contains this (repeatable)")
    ap.add_argument("--quick", action="store_true", help="leave out the large case (for racecheck)")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    a = ap.parse_args(argv)
    cases = [c for c in CASES if not (a.quick and c[2])]
    if a.only:
        cases = [c for c in cases if any(o in c[0] for o in a.only)]
    if a.list:
        for name, _, large in cases:
            print(name + ("  (large)" if large else ""))
        return 0
    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("sanitize_cases: no CUDA device")
        if not dk.backend_info()["cuda"]:
            sys.exit("sanitize_cases: dllm_kernels._C has no CUDA kernels: nothing to sanitize")
    bad = 0
    t_all = time.perf_counter()
    for name, fn, _ in cases:
        t = time.perf_counter()
        gen = torch.Generator().manual_seed(len(name))
        try:
            results = fn(device, gen)
            if device.type == "cuda":
                torch.cuda.synchronize()
            notes = []
            ok_all = True
            for label, got, want, spec in results:
                ok, err = check(label, got, want, spec)
                ok_all &= ok
                if not ok:
                    notes.append(f"{label}: max err {err:.3g}")
            status = "ok" if ok_all else "MISMATCH"
        except Exception as e:  # a launch error or a sanitizer-reported fault surfaces here
            ok_all, status, notes = False, "ERROR", [f"{type(e).__name__}: {str(e)[:300]}"]
            traceback.print_exc()
        bad += not ok_all
        print(
            f"{status:<8} {time.perf_counter() - t:6.2f} s  {name}"
            + (f"  ({'; '.join(notes)})" if notes else ""),
            flush=True,
        )
    print(
        f"sanitize_cases: {len(cases) - bad}/{len(cases)} cases ok on {device} in "
        f"{time.perf_counter() - t_all:.1f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
