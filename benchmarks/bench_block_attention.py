"""Benchmark block_attention against, in the same run, on the same inputs and timer:
  - dllm_kernels.reference.block_attention (the spec: gather, fp32 einsum, masked softmax),
  - eager gather + SDPA: dk.cache_gather of the paged prefix, torch.cat with the block's k / v,
    then torch.nn.functional.scaled_dot_product_attention (enable_gqa=True; a boolean attn_mask
    only where some key is hidden: the staircase prefill), once per SDPA backend (CUDA: FLASH,
    EFFICIENT, CUDNN, MATH; CPU: FLASH, MATH; a backend that raises is skipped with a note),
  - the same SDPA on K / V gathered beforehand (attention alone: the gap to the row above is
    what the gather + cat cost),
  - FlexAttention (torch.nn.attention.flex_attention, torch.compile'd, with a block mask built
    from the same mask rule), after the same gather + cat and on pre-gathered K / V
    (--no-flex skips it; a compile failure is a note, not an error).

    python benchmarks/bench_block_attention.py [--device cpu|cuda] [--json PATH] [--no-flex]
                                               [--reps N] [--case SUBSTRING ...]

Cases: dllm_kernels.registry's block_attention cases (CPU: LLaDA-8B / Dream-7B steps, Lq = 32
over a 512..2048-token fragmented paged prefix, and a staircase prefill; CUDA: its cuda_cases,
bf16, B in {1, 8, 32} x prefix {512, 2048, 8192} x LLaDA / Dream heads, and staircase prefills
of 1024 / 4096 tokens with 32-token blocks). Ours runs with check=False (the per-step path).

Columns: median time; TFLOP/s of the useful work (4 * visible keys * H_q * D per query: masked
keys are not counted, so a peer that computes them scores lower); GB/s of K / V read once per KV
head (the same napkin count for every implementation, whatever it really moves: the gather +
cat read and write K / V twice more); % of the measured peak on the binding roof (compute or
bandwidth, whichever the napkin model says bounds the case, marked F / B); ours x = peer time /
our time, where each peer is timed in turn with ours, call by call, and the ratio is of the two
medians of that pairing (the machine's speed drifts; a ratio of separately timed medians drifts with
it: ours' own row is timed alone); err = max |out - reference| on the first input set (flagged if
beyond the tolerance).
Peers are not charged for building their masks (done once per case, outside the timed call) nor
for the copy from SDPA's [B, H, L, D] output to our [B, L, H, D] layout. Calls rotate over up to
8 input sets so that K / V come from memory, not the last-level cache.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

import dllm_kernels as dk
from dllm_kernels import benchmark as bm
from dllm_kernels import reference, registry

SPEC = registry.get("block_attention")


# ---- the mask rule, once: for SDPA's dense boolean mask and FlexAttention's mask_mod ----------------

def _lengths(inputs):
    """cache_lens, kv_lens, q_start (int64 [B], on q's device) and max_cache (host int)."""
    q, k = inputs["q"], inputs.get("k")
    B, dev = q.shape[0], q.device
    zeros = torch.zeros(B, dtype=torch.int64, device=dev)
    cache = inputs["cache_lens"].long() if inputs.get("cache_lens") is not None else zeros
    if inputs.get("kv_lens") is not None:
        kv = inputs["kv_lens"].long()
    else:
        kv = torch.full((B,), k.shape[1] if k is not None else 0, dtype=torch.int64, device=dev)
    start = inputs["q_start"].long() if inputs.get("q_start") is not None else cache
    max_cache = int(cache.max()) if inputs.get("cache_lens") is not None else 0
    return cache, kv, start, max_cache


def make_mask_mod(inputs):
    """mask_mod(b, h, q_idx, kv_idx) -> bool over the gathered layout [cache padded to max_cache,
    then the k / v tokens]: the op's rule (valid keys; block_causal: reference.block_causal_mask)."""
    cache, kv, start, max_cache = _lengths(inputs)
    causal = inputs.get("mask", "full") == "block_causal"
    bs = int(inputs.get("block_size") or 1)

    def mask_mod(b, h, q_idx, kv_idx):
        in_cache = kv_idx < max_cache
        valid = torch.where(in_cache, kv_idx < cache[b], kv_idx - max_cache < kv[b])
        if causal:
            kpos = torch.where(in_cache, kv_idx, cache[b] + kv_idx - max_cache)
            valid = valid & reference.block_causal_mask(start[b] + q_idx, kpos, bs)
        return valid

    return mask_mod, max_cache


def dense_mask(inputs, n_keys: int):
    """Boolean [B, 1, Lq, N] for SDPA, or None where every query sees every key."""
    mask_mod, _ = make_mask_mod(inputs)
    q = inputs["q"]
    B, Lq, dev = q.shape[0], q.shape[1], q.device
    b = torch.arange(B, device=dev).view(B, 1, 1)
    allowed = mask_mod(b, None, torch.arange(Lq, device=dev).view(1, Lq, 1),
                       torch.arange(n_keys, device=dev).view(1, 1, n_keys))
    allowed = allowed.expand(B, Lq, n_keys)
    return None if bool(allowed.all()) else allowed.unsqueeze(1).contiguous()


# ---- the peers -----------------------------------------------------------------------------------

def gather_kv(inputs, max_cache: int):
    """K, V [B, max_cache + Lk, H_kv, D]: the prefix gathered from its pages, then the block.
    max_cache comes from the host, as a scheduler knows it (reading cache_lens would sync)."""
    k, v = inputs.get("k"), inputs.get("v")
    if inputs.get("k_cache") is None:
        return k, v
    kc, vc = dk.cache_gather(inputs["k_cache"], inputs["v_cache"], inputs["block_table"],
                             inputs["cache_lens"], max_cache)
    if k is None:
        return kc, vc
    return torch.cat([kc, k], 1), torch.cat([vc, v], 1)


def sdpa(q, K, V, mask):
    """[B, L, H, D] views in, [B, Lq, H_q, D] view out (no layout copy charged)."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), K.transpose(1, 2), V.transpose(1, 2),
                                          attn_mask=mask, enable_gqa=True).transpose(1, 2)


def backends(device: torch.device):
    from torch.nn.attention import SDPBackend
    names = ["FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"] if device.type == "cuda" \
        else ["FLASH_ATTENTION", "MATH"]
    return [(n, getattr(SDPBackend, n)) for n in names if hasattr(SDPBackend, n)]


def _short(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:90] if str(e).strip() else ''}"


# ---- one case ------------------------------------------------------------------------------------

def _input_sets(case, device, gen, budget):
    first = SPEC.make_inputs(case.params, device, gen)
    size = sum(v.numel() * v.element_size() for v in first.values() if isinstance(v, torch.Tensor))
    n = max(1, min(8, budget // size, -(-2 * bm.cache_bytes(device) // size)))
    return [first] + [SPEC.make_inputs(case.params, device, gen) for _ in range(n - 1)]


def bench_case(case, device, peaks, reps, use_flex, log):
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the previous case's input sets are gone by now
    gen = torch.Generator().manual_seed(0)
    budget = (4 << 30) if device.type == "cuda" else (1 << 30)
    sets = _input_sets(case, device, gen, budget)
    n = len(sets)
    first = sets[0]
    nflops, nbytes = SPEC.flops(first), SPEC.bytes_moved(first)
    kv_bytes = registry.block_attention_kv_bytes(first)
    dtype = first["q"].dtype
    flops_peak = bm.flops_peak(peaks, dtype, device)
    compute_bound = nflops / flops_peak > nbytes / peaks["bandwidth"]
    err_tol = 1e-3 if dtype == torch.float32 else 3e-2  # peers: fp32 vs fp32, or one bf16 rounding + P in bf16
    slow = device.type == "cpu"
    ref_out = SPEC.reference(**first).float()

    rows = []

    def ours(i):
        return dk.block_attention(**sets[i % n])

    def measure(impl, fn, out_fn=None, warmup=3, max_seconds=(1.5 if slow else 2.0), note=""):
        """Time fn(i) (rotating over the input sets), check out_fn() against the reference. A peer
        is timed in turn with ours, call by call, and its ratio taken from that pairing."""
        err = None
        try:
            if out_fn is not None:
                err = float((out_fn().float() - ref_out).abs().max())
            if fn is ours:
                t = t_ours = bm.time_fn(fn, device, warmup=warmup, reps=reps, max_seconds=max_seconds)
            else:
                t_ours, t = bm.time_paired([ours, fn], device, warmup=warmup, reps=reps,
                                           max_seconds=max_seconds)
        except Exception as e:  # the row says why it is missing
            rows.append({"impl": impl, "time_s": None, "note": _short(e)})
            log(f"  {impl:<30} skipped: {_short(e)}")
            return None
        if err is not None and not err <= err_tol:
            note = (note + "; " if note else "") + f"MISMATCH (> {err_tol:g})"
        pct = 100 * (nflops / t / flops_peak if compute_bound else nbytes / t / peaks["bandwidth"])
        rows.append({"impl": impl, "time_s": t, "tflops": nflops / t / 1e12, "kv_gbps": kv_bytes / t / 1e9,
                     "pct_peak": pct, "max_err": err, "note": note, "ours_paired_s": t_ours,
                     "speedup_ours_vs": t / t_ours})
        return t

    # (a) ours, (b) the reference
    measure("ours (block_attention)", ours, lambda: dk.block_attention(**first))
    ref_kw = [{k: v for k, v in s.items() if k != "check"} for s in sets]
    measure("reference", lambda i: reference.block_attention(**ref_kw[i % n]), None, warmup=1)

    # (c) eager gather + SDPA, per backend; and SDPA alone on pre-gathered K / V
    max_cache = _lengths(first)[3]  # the same for every set: lengths are fixed per case
    pre = [gather_kv(s, max_cache) for s in sets]
    mask = dense_mask(first, pre[0][0].shape[1])
    from torch.nn.attention import sdpa_kernel
    for name, backend in backends(device):
        tag = name.replace("_ATTENTION", "")

        def gathered(i, backend=backend):
            s = sets[i % n]
            K, V = gather_kv(s, max_cache)
            with sdpa_kernel(backend):
                return sdpa(s["q"], K, V, mask)

        def attn_only(i, backend=backend):
            with sdpa_kernel(backend):
                return sdpa(sets[i % n]["q"], *pre[i % n], mask)

        if measure(f"gather+SDPA[{tag}]", gathered, lambda: gathered(0)) is not None:
            measure(f"SDPA[{tag}] pre-gathered", attn_only, lambda: attn_only(0))

    # (d) FlexAttention, compiled, block mask from the same rule
    if use_flex:
        try:
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            torch._dynamo.reset()  # one compile per case: no recompile-limit fallback to eager
            flex = torch.compile(flex_attention, dynamic=False)
            mask_mod, _ = make_mask_mod(first)
            N = pre[0][0].shape[1]
            B, Lq = first["q"].shape[:2]
            block_mask = None if mask is None else create_block_mask(
                mask_mod, B, None, Lq, N, device=str(device))

            def flex_call(q, K, V):
                return flex(q.transpose(1, 2), K.transpose(1, 2), V.transpose(1, 2),
                            block_mask=block_mask, enable_gqa=True).transpose(1, 2)

            t0 = time.perf_counter()
            flex_call(first["q"], *pre[0])  # compile outside the timed region
            note = f"compile {time.perf_counter() - t0:.1f} s"
        except Exception as e:
            rows.append({"impl": "gather+flex (compiled)", "time_s": None, "note": _short(e)})
            log(f"  FlexAttention skipped: {_short(e)}")
        else:
            def flex_gathered(i):
                s = sets[i % n]
                return flex_call(s["q"], *gather_kv(s, max_cache))

            measure("gather+flex (compiled)", flex_gathered, lambda: flex_gathered(0), note=note)
            measure("flex pre-gathered", lambda i: flex_call(sets[i % n]["q"], *pre[i % n]),
                    lambda: flex_call(first["q"], *pre[0]))

    return {"case": case.label, **case.params, "flops": nflops, "bytes": nbytes, "kv_bytes": kv_bytes,
            "bound": "compute" if compute_bound else "bandwidth", "input_sets": n, "impls": rows}


def format_case(res) -> str:
    f = bm.format_time
    lines = [(f"{res['case']}: {res['flops'] / 1e9:.2f} GFLOP, K/V {res['kv_bytes'] / 1e6:.1f} MB "
              f"({res['bytes'] / 1e6:.1f} MB in all), {res['bound']}-bound, {res['input_sets']} input set(s)"),
             f"  {'impl':<30} {'time':>10} {'TFLOP/s':>8} {'KV GB/s':>8} {'%peak':>7} {'ours x':>7} {'err':>8}  note"]
    mark = "F" if res["bound"] == "compute" else "B"
    for r in res["impls"]:
        if r.get("time_s") is None:
            lines.append(f"  {r['impl']:<30} {'-':>10} {'-':>8} {'-':>8} {'-':>7} {'-':>7} {'-':>8}  {r['note']}")
            continue
        err = "-" if r["max_err"] is None else f"{r['max_err']:.1e}"
        lines.append(f"  {r['impl']:<30} {f(r['time_s']):>10} {r['tflops']:>8.3f} {r['kv_gbps']:>8.1f} "
                     f"{r['pct_peak']:>6.1f}{mark} {r['speedup_ours_vs']:>6.2f}x {err:>8}  {r['note']}")
    return "\n".join(lines)


def cases(device: torch.device, pattern):
    """The device's cases; pattern (a string or a list of them): only the cases whose label
    contains one, in the order of the patterns (a priority order for a run with a deadline)."""
    chosen = SPEC.cuda_cases if device.type == "cuda" else SPEC.cases  # fp32 attention is CPU only
    if pattern is None:
        return list(chosen)
    out = []
    for pat in [pattern] if isinstance(pattern, str) else pattern:
        out += [c for c in chosen if pat in c.label and c not in out]
    return out


def run(device: torch.device, reps: int, use_flex: bool, pattern=None, log=print,
        json_path: str | None = None):
    """Every case in turn; with json_path, the results so far are rewritten after each case (a run
    cut short by a time limit keeps the cases it finished)."""
    head = bm.header([device])
    peaks = bm.measure_peaks(device)
    head["peaks"] = {str(device): peaks}
    log(bm.format_header(head))  # prints the peaks
    log("  %peak: F = of the matmul peak of the case's dtype, B = of the copy bandwidth")
    out = {"header": head, "cases": []}
    for case in cases(device, pattern):
        out["cases"].append(bench_case(case, device, peaks, reps, use_flex, log))
        log(format_case(out["cases"][-1]))
        if json_path:
            bm.write_json(json_path, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="write the results (with the standard header) to this file")
    ap.add_argument("--no-flex", action="store_true", help="skip FlexAttention (and its compile)")
    ap.add_argument("--reps", type=int, default=20, help="timed calls per measurement (median)")
    ap.add_argument("--case", action="append",
                    help="only the cases whose label contains this (repeatable: run in this order)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not dk.backend_info()["cuda"]:
        print("note: no native CUDA kernels in this build: 'ours' is the reference fallback")
    run(device, args.reps, not args.no_flex, args.case, json_path=args.json)
    if args.json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
