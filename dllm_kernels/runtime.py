"""The generation runtime: whole dLLM generations on the kernels.

    out = dllm_kernels.generate(model, prompt_ids, gen_length=256, block_length=32, steps=256,
                                cache="dual", threshold=0.9)
    out.tokens, out.nfe, out.timing

Decoding is LLaDA's semi-autoregressive block loop: the generated region is split into blocks of
block_length; each block is denoised in steps (a fixed schedule of `steps // num_blocks` steps
committing LLaDA's linear number of tokens, or `threshold` / `factor` parallel decoding that runs
until the block has no mask left), each step = one model forward + denoise_and_select (candidate
tokens, confidences, selection and commit in one op).

Cache modes (dllm_kernels.cache.DLLMCache): "none" (every step a full forward, like LLaDA),
"prefix" / "dual" (Fast-dLLM v1: a full forward at each block start refreshes the cache, which
then serves the block's remaining steps; refresh_interval adds refreshes), "block" (block
diffusion: the prompt is prefilled once with the staircase mask, each step feeds only the current
block, and a finished block's K/V are committed once by one more forward).

The model interface. Any model with `forward(input_ids, positions, attn) -> logits` works (if its
forward also takes `logits_range=(lo, hi)`, the runtime asks only for the logits it uses: the
block's columns in a step, none in a prefill / commit forward): given
input_ids [B, n] and RoPE positions [B, n], it computes q [B, n, Hq, D], k / v [B, n, Hkv, D]
(after RoPE) in each attention layer `i` and calls `attn(i, q, k, v) -> [B, n, Hq, D]` instead of
its own attention; the runtime's `attn` writes the fresh K/V into the paged cache and attends to
cache + fresh keys as the cache mode says (dllm_kernels.block_attention). The model must also
expose `num_layers`, and `config` with `num_kv_heads`, `head_dim`, `mask_id`. See
dllm_kernels.models.TinyLLaDA.

Host synchronisation: with a fixed schedule the step loop never reads device values; plans are
built on the host once per block (and per refresh) and copied without a sync. threshold / factor
decoding read one flag per step (does the block still hold a mask: the loop's stopping test),
eos_id reads one flag per block (which rows are done) plus a few reads in a block where a row
finishes (compaction), and trace / profile sync per step.

Randomness: the Philox stream of a step is keyed by (seed, step, row index in the call, position),
so at T > 0 (or random remasking) a row's tokens depend on its index in the batch, and after
EOS compaction the remaining rows are renumbered.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from dataclasses import dataclass, field

import torch

from . import ops, reference
from .cache import DLLMCache, PagedKVCache

CACHE_MODES = ("none", "prefix", "dual", "block")
REMASKING = {"low_confidence": "prob", "random": "random", "margin": "margin", "entropy": "neg_entropy"}


@dataclass
class GenerateOutput:
    """tokens int64 [B, P + gen_length] (prompts left-padded to P, the longest); nfe: model
    forward calls; timing: seconds in total / model / sampling / cache and tokens per second
    (model / sampling / cache are measured only with profile=True); trace: with trace=True, one
    dict per step: block, step, rows (batch rows still generating), committed bool [b, L] and conf
    float [b, L] of the block (CPU tensors)."""

    tokens: torch.Tensor
    nfe: int
    timing: dict = field(default_factory=dict)
    trace: list | None = None


class _Backend:
    """The ops a generation runs on: the kernels or the reference (the specification)."""

    def __init__(self, name: str):
        if name not in ("kernels", "reference"):
            raise ValueError(f"dllm_kernels.generate: backend must be 'kernels' or 'reference', got {name!r}")
        self.name = name

    def cache_write(self, kc, vc, k, v, slots):
        if self.name == "kernels":
            ops.cache_write_(kc, vc, k, v, slots, check=False)
        else:
            reference.cache_write_(kc, vc, k, v, slots, check=False)

    def attention(self, q, k, v, **kw):
        if self.name == "kernels":
            return ops.block_attention(q, k, v, **kw, check=False)
        return reference.block_attention(q, k, v, **kw)

    def denoise_and_select(self, logits, x, mask_id, rule, seed, offset, sampling):
        if self.name == "kernels":
            return ops.denoise_and_select(logits, x, mask_id, **rule, **sampling, commit=True,
                                          seed=seed, offset=offset)
        x0, conf = reference.denoise_step(logits, x, mask_id, **sampling, seed=seed, offset=offset)
        transfer = reference.select_transfer(conf, **rule, seed=seed, offset=offset)
        reference.commit_(x, x0, transfer)
        return x0, conf, transfer


class _Profiler:
    """Seconds per part; a section inside another (a cache write inside the model) is charged to
    the inner part only, so the parts add up to at most the total."""

    def __init__(self, enabled: bool, device: torch.device):
        self.enabled, self.device = enabled, device
        self.t = {"model": 0.0, "sampling": 0.0, "cache": 0.0}
        self._stack: list[list] = []   # [name, start, time spent in nested sections]

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def section(self, name: str):
        prof = self

        class _S:
            def __enter__(self):
                if prof.enabled:
                    prof._stack.append([name, prof._now(), 0.0])

            def __exit__(self, *exc):
                if prof.enabled:
                    _, t0, nested = prof._stack.pop()
                    dt = prof._now() - t0
                    prof.t[name] += dt - nested
                    if prof._stack:
                        prof._stack[-1][2] += dt
        return _S()


class _PlanAttention:
    """The `attn` a model calls in each layer: write the fed K/V the plan asks for, then attend."""

    def __init__(self, cache: PagedKVCache, plan, backend: _Backend, prof: _Profiler):
        self.cache, self.plan, self.backend, self.prof = cache, plan, backend, prof

    def __call__(self, layer: int, q, k, v):
        p = self.plan
        if p.slot_mapping is not None:
            with self.prof.section("cache"):
                self.backend.cache_write(self.cache.k(layer), self.cache.v(layer), k, v, p.slot_mapping)
        kf = vf = None
        if p.attend_from is not None:
            kf, vf = k[:, p.attend_from:], v[:, p.attend_from:]
        return self.backend.attention(
            q, kf, vf, k_cache=self.cache.k(layer), v_cache=self.cache.v(layer),
            block_table=p.block_table, cache_lens=p.cache_lens, q_start=p.q_start, mask=p.mask,
            block_size=p.block_size)


def _left_pad(prompt_ids, attention_mask, pad_id: int, device):
    """(x_prompt [B, P] left-padded with P = the longest prompt, prompt_lens list) from a tensor
    (+ mask) or a list of lists."""
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.dim() != 2:
            raise ValueError(f"dllm_kernels.generate: prompt_ids must be [B, P], got {list(prompt_ids.shape)}")
        ids = prompt_ids.to(device=device, dtype=torch.int64)
        if attention_mask is None:
            return ids, [ids.shape[1]] * ids.shape[0]
        m = attention_mask.to(device=device, dtype=torch.bool)
        lens = m.sum(1).tolist()  # once per generation
        P = ids.shape[1]
        want = torch.arange(P, device=device).unsqueeze(0) >= (P - m.sum(1, keepdim=True))
        if not torch.equal(m, want):
            raise ValueError("dllm_kernels.generate: attention_mask must be left padding (zeros, then ones)")
        lens = [int(n) for n in lens]
        longest = max(lens + [0])
        return torch.where(m, ids, torch.full_like(ids, pad_id))[:, P - longest:], lens
    if attention_mask is not None:
        raise ValueError("dllm_kernels.generate: attention_mask goes with a prompt tensor; a list of "
                         "token lists needs none")
    rows = [list(map(int, r)) for r in prompt_ids]
    P = max(len(r) for r in rows)
    x = torch.full((len(rows), P), pad_id, dtype=torch.int64)
    for b, r in enumerate(rows):
        if r:
            x[b, P - len(r):] = torch.tensor(r)
    return x.to(device), [len(r) for r in rows]


def generate(model, prompt_ids, *, gen_length: int, block_length: int, steps: int,
             temperature: float = 0.0, remasking: str = "low_confidence", threshold=None,
             factor=None, cache: str = "none", refresh_interval: int | None = None,
             attention_mask=None, eos_id: int | None = None, backend: str = "kernels",
             seed: int | None = None, progress: bool = False, trace: bool = False,
             profile: bool = False, page_size: int = 16, pad_id: int | None = None,
             cuda_graph: bool = False, **sampling_options) -> GenerateOutput:
    """tokens = prompt + gen_length tokens decoded by blockwise masked diffusion.

    Args:
        model: implements the runtime interface (module docstring), e.g. TinyLLaDA.
        prompt_ids: int [B, P] (with attention_mask for left padding) or a list of token lists.
        gen_length, block_length, steps: generated tokens, block size (gen_length a multiple),
            total denoising steps for the fixed schedule (a multiple of the number of blocks).
        temperature: 0 = argmax; > 0 Gumbel-max sampling with the Philox stream of `seed`.
        remasking: "low_confidence" | "random" | "margin" | "entropy" (the confidence ranked).
        threshold / factor: parallel decoding (Fast-dLLM): each block runs until it has no mask
            left (at most block_length steps); `steps` is not used.
        cache: "none" | "prefix" | "dual" | "block"; refresh_interval: extra refreshes
            (prefix / dual only) every that many steps within a block. In "block" mode the
            generated blocks start at each row's prompt end (LLaDA's layout), not at multiples of
            block_length.
        eos_id: a row that committed EOS in a finished block is filled with EOS after it and
            leaves the batch (stops costing compute); every row is EOS-filled at the end.
        backend: "kernels" or "reference" (the reference ops; same tokens at T = 0).
        seed: the Philox seed (None: drawn from torch's default generator).
        progress: a tqdm bar; trace: record every step; profile: time model / sampling / cache
            (synchronises the device around each part).
        page_size: of the paged KV cache the runtime allocates.
        pad_id: the token written into the left padding of out.tokens (default eos_id, else 0).
        cuda_graph: not implemented yet (raises).
        sampling_options: top_k, top_p, filter_order, confidence_source, suppress_tokens,
            shift_logits (cache="none" only), passed to denoise_and_select.

    Returns:
        GenerateOutput(tokens, nfe, timing, trace).
    """
    if cuda_graph:
        raise NotImplementedError("dllm_kernels.generate: cuda_graph=True is not implemented yet")
    if cache not in CACHE_MODES:
        raise ValueError(f"dllm_kernels.generate: cache must be one of {list(CACHE_MODES)}, got {cache!r}")
    if remasking not in REMASKING:
        raise ValueError(f"dllm_kernels.generate: remasking must be one of {list(REMASKING)}, got {remasking!r}")
    if block_length < 1 or gen_length % block_length:
        raise ValueError(f"dllm_kernels.generate: gen_length ({gen_length}) must be a multiple of block_length ({block_length})")
    num_blocks = gen_length // block_length
    parallel = threshold is not None or factor is not None
    if threshold is not None and factor is not None:
        raise ValueError("dllm_kernels.generate: give threshold or factor, not both")
    if not parallel and (steps < num_blocks or steps % num_blocks):
        raise ValueError(f"dllm_kernels.generate: steps ({steps}) must be a multiple of the number of blocks ({num_blocks})")
    if sampling_options.get("shift_logits") and cache != "none":
        raise ValueError("dllm_kernels.generate: shift_logits needs cache='none' (the cached modes do not feed the column before the block)")
    unknown = set(sampling_options) - {"top_k", "top_p", "filter_order", "confidence_source",
                                       "suppress_tokens", "shift_logits"}
    if unknown:
        raise TypeError(f"dllm_kernels.generate: unknown options {sorted(unknown)}")
    if refresh_interval is not None and cache not in ("prefix", "dual"):
        raise ValueError(f"dllm_kernels.generate: refresh_interval applies to cache='prefix' or 'dual', not {cache!r}")
    ops_ = _Backend(backend)
    cfg = model.config
    mask_id = int(cfg.mask_id)
    device = next(model.parameters()).device if hasattr(model, "parameters") else torch.device("cpu")
    dtype = next(model.parameters()).dtype if hasattr(model, "parameters") else torch.float32
    if device.type == "cuda" and dtype == torch.float32 and backend == "kernels":
        raise ValueError("dllm_kernels.generate: the CUDA attention kernel takes bfloat16 / float16; "
                         "cast the model (model.to(torch.bfloat16)) or use backend='reference'")
    if seed is None:   # drawn only when something is random (keeps the caller's RNG state otherwise)
        random = temperature > 0 or remasking == "random"
        seed = int(torch.empty((), dtype=torch.int64).random_().item()) if random else 0
    shift = bool(sampling_options.pop("shift_logits", False))
    if isinstance(sampling_options.get("suppress_tokens"), (list, tuple)):  # once, not per step
        ids = sorted({int(t) for t in sampling_options["suppress_tokens"]})
        sampling_options["suppress_tokens"] = torch.tensor(ids, dtype=torch.int64, device=device) if ids else None
    sampling = {"temperature": temperature, "confidence": REMASKING[remasking], **sampling_options}
    if pad_id is None:
        pad_id = eos_id if eos_id is not None else 0
    prof = _Profiler(profile, device)
    t_start = time.perf_counter()

    x_prompt, prompt_lens = _left_pad(prompt_ids, attention_mask, pad_id, device)
    B, P = x_prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.int64, device=device)
    x[:, :P] = x_prompt
    with prof.section("cache"):
        totals = [p + gen_length for p in prompt_lens]
        pages = sum(-(-t // page_size) for t in totals) + B
        kv = PagedKVCache(model.num_layers, cfg.num_kv_heads, cfg.head_dim, num_pages=pages,
                          page_size=page_size, dtype=dtype, device=device)
        policy = DLLMCache(kv, prompt_lens, gen_length, block_length,
                           "dual" if cache == "none" else cache, refresh_interval=refresh_interval)
    rows = torch.arange(B, device=device)          # batch rows still generating
    nfe, offset = 0, 0
    steps_log = [] if trace else None
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=num_blocks, desc="blocks", unit="block")
        except ImportError:
            bar = None

    takes_range = "logits_range" in inspect.signature(model.forward).parameters

    def forward(plan, want=None):
        """The model over the plan's columns; logits of fed tokens want = (lo, hi) (None: none
        needed), returned as [B, hi - lo, V]."""
        nonlocal nfe
        c0, c1 = plan.columns
        lo, hi = want if want is not None else (0, 0)
        ids = x[rows, c0:c1] if len(rows) != B else x[:, c0:c1]
        attn = _PlanAttention(kv, plan, ops_, prof)
        with prof.section("model"):
            if takes_range:
                logits = model.forward(ids, plan.positions, attn, logits_range=(lo, hi))
            else:
                logits = model.forward(ids, plan.positions, attn)[:, lo:hi]
        nfe += 1
        return logits

    def step_want(plan, k):
        """Which fed tokens' logits a step of block k reads, and whether the op still shifts."""
        lo = policy.block_columns(k)[0] - plan.columns[0]
        if shift and lo > 0:           # Dream: column c reads the logits of column c - 1
            return (lo - 1, lo - 1 + block_length), False
        return (lo, lo + block_length), shift   # (the very first column reads its own)

    if cache == "block":
        with prof.section("cache"):
            plan = policy.prefill()
        forward(plan)
    for k in range(num_blocks):
        c0, c1 = policy.block_columns(k)
        xs = x if len(rows) == B else None
        block = (xs if xs is not None else x[rows])[:, c0:c1]
        if not parallel:
            with prof.section("sampling"):
                ntt = ops.num_transfer_tokens if backend == "kernels" else reference.num_transfer_tokens
                schedule = ntt(block == mask_id, steps // num_blocks)
        logits = None
        if cache in ("prefix", "dual"):
            with prof.section("cache"):
                plan = policy.refresh(k)
            want, step_shift = step_want(plan, k)
            logits = forward(plan, want)
        s = 0
        while True:
            if parallel:
                if s >= block_length or not bool((block == mask_id).any()):  # the stopping test
                    break
            elif s >= steps // num_blocks:
                break
            if logits is None:
                with prof.section("cache"):
                    if cache == "none" or (policy.refresh_due(s) and cache != "block"):
                        plan = policy.refresh(k)
                    else:
                        plan = policy.step(k)
                want, step_shift = step_want(plan, k)
                logits = forward(plan, want)
            rule = ({"threshold": threshold} if threshold is not None else
                    {"factor": factor} if factor is not None else {"num_transfer": schedule[:, s]})
            with prof.section("sampling"):
                _, conf, transfer = ops_.denoise_and_select(
                    logits, block, mask_id, rule, seed, offset,
                    {**sampling, "shift_logits": step_shift})
            if trace:
                steps_log.append({"block": k, "step": s, "rows": rows.cpu(),
                                  "committed": transfer.cpu(), "conf": conf.cpu()})
            if xs is None:
                x[rows, c0:c1] = block
            logits = None
            offset = (offset + 1) % (1 << 32)
            s += 1
        if cache == "block":
            with prof.section("cache"):
                plan = policy.commit(k)
            forward(plan)
        if bar is not None:
            bar.update(1)
        if eos_id is not None and k + 1 < num_blocks:
            gen = x[rows, P:c1]
            done = (gen == eos_id).any(1)
            if bool(done.any()):                      # one flag per block
                after = (gen == eos_id).long().cumsum(1) > 0
                filled = torch.where(after[done], torch.full_like(gen[done], eos_id), gen[done])
                x[rows[done], P:c1] = filled
                x[rows[done], c1:] = eos_id
                keep = (~done).nonzero().flatten()
                with prof.section("cache"):
                    policy = policy.subset(keep.tolist())
                rows = rows[keep]
                if len(rows) == 0:
                    break
    policy.close()
    if bar is not None:
        bar.close()
    if eos_id is not None:             # every row: EOS after its first EOS (incl. the last block)
        gen = x[:, P:]
        gen.masked_fill_((gen == eos_id).cumsum(1) > 0, eos_id)
    if parallel and bool((x[:, P:] == mask_id).any()):   # one read per generation
        warnings.warn("dllm_kernels.generate: some positions are still masked (every candidate "
                      "was ineligible, e.g. all suppressed or NaN logits)", RuntimeWarning, stacklevel=2)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - t_start
    timing = {"total_s": total, "tokens_per_s": B * gen_length / total if total > 0 else math.inf}
    if profile:
        timing.update({f"{k}_s": v for k, v in prof.t.items()})
    return GenerateOutput(tokens=x, nfe=nfe, timing=timing, trace=steps_log)
