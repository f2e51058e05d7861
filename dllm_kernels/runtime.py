"""The generation runtime: whole dLLM generations on the kernels.

    out = dllm_kernels.generate(model, prompt_ids, gen_length=256, block_length=32, steps=256,
                                cache="dual", threshold=0.9)
    out.tokens, out.nfe, out.timing

Decoding is LLaDA's semi-autoregressive block loop: the generated region is split into blocks of
block_length; each block is denoised in steps (a fixed schedule of `steps // num_blocks` steps
committing LLaDA's linear number of tokens, or `threshold` / `factor` parallel decoding that runs
until the block has no mask left), each step = one model forward + denoise_and_select (candidate
tokens, confidences, selection and commit in one op).

Cache modes (dllm_kernels.cache.CachePolicy): "none" (every step a full forward, like LLaDA),
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

import contextlib
import inspect
import math
import sys
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import ops, reference
from ._checks import ATTN_HEAD_DIMS
from .cache import CachePolicy, PagedKVCache
from .schedules import dream_num_transfer, dream_timesteps

CACHE_MODES = ("none", "prefix", "dual", "block")
# remasking -> the confidence ranked; the last three are Dream's algorithm names
REMASKING = {
    "low_confidence": "prob",
    "random": "random",
    "margin": "margin",
    "entropy": "neg_entropy",
    "maskgit_plus": "prob",
    "topk_margin": "margin",
    "origin": "prob",
}
SCHEDULES = ("linear", "dream", "mdlm")
DEFAULT_EPS = {"linear": 1e-3, "dream": 1e-3, "mdlm": 1e-5}


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
    """The ops a generation runs on: the kernels or the reference (the specification).

    tp_group: tensor parallelism (generate's tp_group); then the logits every sampling call gets
    are this rank's vocabulary shard, tokens vocab_start .. (see _sample)."""

    def __init__(self, name: str, tp_group=None, vocab_start: int = 0):
        if name not in ("kernels", "reference"):
            raise ValueError(
                f"dllm_kernels.generate: backend must be 'kernels' or 'reference', got {name!r}"
            )
        self.name = name
        self.tp = tp_group is not None
        self.tp_group, self.vocab_start = tp_group, int(vocab_start)

    def _sample(self, fn, logits, *args, **kw):
        """fn(logits, *args, **kw) for a sampling op fn (one that reads logits rows: denoise_step,
        denoise_and_select): every sampling call of a generation goes through here. Under tensor
        parallelism logits (and uncond_logits) are the rank's vocabulary shard [b, L, V_local]
        and every rank gets the result of the unsharded op on the full [b, L, V] logits."""
        if not self.tp:
            return fn(logits, *args, **kw)
        if self.name == "kernels":  # the vocabulary-parallel op (dllm_kernels.tp)
            return fn(logits, *args, **kw, group=self.tp_group, vocab_start=self.vocab_start)
        # the reference backend: the reference ops have no sharded form
        return _gathered_call(
            fn, logits, *args, group=self.tp_group, vocab_start=self.vocab_start, **kw
        )

    def cache_write(self, kc, vc, k, v, slots):
        if self.name == "kernels":
            ops.cache_write_(kc, vc, k, v, slots, check=False)
        else:
            reference.cache_write_(kc, vc, k, v, slots, check=False)

    def attention(self, q, k, v, **kw):
        why = _attention_fallback_reason(q, self.name)
        if why is not None:
            _warn_once(
                why,
                f"dllm_kernels.generate: {why}: attention falls back to gather + SDPA "
                "(slower; the kernels' other ops still run)",
            )
            return sdpa_attention(q, k, v, **kw)
        if self.name == "kernels":
            return ops.block_attention(q, k, v, **kw, check=False)
        return reference.block_attention(q, k, v, **kw)

    def denoise_and_select(self, logits, x, mask_id, rule, seed, offset, sampling):
        """sampling may hold uncond_logits / cfg_scale (CFG formed inside the op's pass)."""
        if self.name == "kernels":
            return self._sample(
                ops.denoise_and_select,
                logits,
                x,
                mask_id,
                **rule,
                **sampling,
                commit=True,
                seed=seed,
                offset=offset,
            )
        x0, conf = self._sample(
            reference.denoise_step, logits, x, mask_id, **sampling, seed=seed, offset=offset
        )
        transfer = reference.select_transfer(conf, **rule, seed=seed, offset=offset)
        reference.commit_(x, x0, transfer)
        return x0, conf, transfer

    def denoise_step(self, logits, x, mask_id, seed, offset, sampling):
        fn = ops.denoise_step if self.name == "kernels" else reference.denoise_step
        return self._sample(fn, logits, x, mask_id, **sampling, seed=seed, offset=offset)

    def select_transfer(self, conf, **rule):
        fn = ops.select_transfer if self.name == "kernels" else reference.select_transfer
        return fn(conf, **rule)

    def commit(self, x, x0, transfer):
        (ops.commit_ if self.name == "kernels" else reference.commit_)(x, x0, transfer)

    def num_transfer_tokens(self, mask_index, steps):
        fn = ops.num_transfer_tokens if self.name == "kernels" else reference.num_transfer_tokens
        return fn(mask_index, steps)


def _gathered_call(fn, logits, *args, group, vocab_start: int, **kw):
    """A reference sampling op under tensor parallelism (backend="reference"): all-gathers the
    ranks' vocabulary shards of logits (and uncond_logits) along V into the full [b, L, V] logits
    on every rank (shards may differ in size: padded to the largest; ordered by vocab_start,
    which must tile 0 .. V) and calls the unsharded fn on them: the same result on every rank,
    at the cost of a [b, L, V] all-gather per step (the kernels' sharded op moves a few bytes per
    position instead; on CUDA or without the native build it all-gathers the same way)."""
    import torch.distributed as dist

    tp = dist.get_world_size(group)

    def gather(t):
        t = t.contiguous()
        meta = torch.tensor([vocab_start, t.shape[-1]], dtype=torch.int64, device=t.device)
        metas = [torch.empty_like(meta) for _ in range(tp)]
        dist.all_gather(metas, meta, group=group)
        starts, sizes = zip(*(m.tolist() for m in metas))
        width = max(sizes)
        padded = F.pad(t, (0, width - t.shape[-1]))
        parts = [torch.empty_like(padded) for _ in range(tp)]
        dist.all_gather(parts, padded, group=group)
        order = sorted(range(tp), key=lambda i: starts[i])
        pos = 0
        for i in order:
            if starts[i] != pos:
                raise ValueError(
                    f"dllm_kernels.generate: the ranks' vocabulary shards do not tile the "
                    f"vocabulary (vocab_start {list(starts)}, sizes {list(sizes)})"
                )
            pos += sizes[i]
        return torch.cat([parts[i][..., : sizes[i]] for i in order], dim=-1)

    if kw.get("uncond_logits") is not None:
        kw["uncond_logits"] = gather(kw["uncond_logits"])
    return fn(gather(logits), *args, **kw)


_warned: set[str] = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)


def _attention_fallback_reason(q: torch.Tensor, backend: str) -> str | None:
    """Why block_attention cannot take q (None: it can): a head_dim outside the compiled set, or
    float32 on CUDA (the CUDA kernel takes bf16 / f16)."""
    D = q.shape[-1]
    if D not in ATTN_HEAD_DIMS:
        return f"head_dim {D} is not one of the attention kernel's {list(ATTN_HEAD_DIMS)}"
    if backend == "kernels" and q.device.type == "cuda" and q.dtype == torch.float32:
        return "float32 on CUDA (the CUDA attention kernel takes bfloat16 / float16)"
    return None


def sdpa_attention(
    q,
    k=None,
    v=None,
    *,
    k_cache,
    v_cache,
    block_table,
    cache_lens,
    q_start=None,
    mask="full",
    block_size=None,
    softmax_scale=None,
):
    """block_attention's result (same keys, masks and zeros for a query that sees nothing) by
    gathering the cached K/V and calling torch's scaled_dot_product_attention: the fallback for
    shapes the kernel does not take. q [B, Lq, Hq, D], k / v [B, Lk, Hkv, D] or None."""
    B, Lq, Hq, D = q.shape
    dev = q.device
    kc, vc = ops.cache_gather(k_cache, v_cache, block_table, cache_lens)
    Nc = kc.shape[1]
    keys, values = [kc], [vc]
    t = torch.arange(Nc, device=dev).unsqueeze(0)
    kpos, valid = [t.expand(B, -1)], [t < cache_lens.to(dev).unsqueeze(1)]
    if k is not None:
        tk = torch.arange(k.shape[1], device=dev).unsqueeze(0)
        keys.append(k.to(kc.dtype)), values.append(v.to(vc.dtype))
        (
            kpos.append(tk + cache_lens.to(dev).long().unsqueeze(1)),
            valid.append(tk.expand(B, -1) >= 0),
        )
    K, V = torch.cat(keys, 1), torch.cat(values, 1)  # [B, Nk, Hkv, D]
    kp, see = torch.cat(kpos, 1), torch.cat(valid, 1)  # [B, Nk]
    see = see.unsqueeze(1).expand(B, Lq, -1)  # [B, Lq, Nk]
    if mask == "block_causal":
        qs = cache_lens if q_start is None else q_start
        qp = qs.to(dev).long().unsqueeze(1) + torch.arange(Lq, device=dev).unsqueeze(0)
        see = see & reference.block_causal_mask(qp.unsqueeze(2), kp.unsqueeze(1), block_size)
    group = Hq // K.shape[2]
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        K.to(q.dtype).repeat_interleave(group, 2).transpose(1, 2),
        V.to(q.dtype).repeat_interleave(group, 2).transpose(1, 2),
        attn_mask=see.unsqueeze(1),
        scale=softmax_scale,
    )
    out = out.transpose(1, 2)
    return torch.where(
        see.any(-1)[:, :, None, None], out, torch.zeros((), dtype=out.dtype, device=dev)
    )


class _Profiler:
    """Seconds per part; a section inside another (a cache write inside the model) is charged to
    the inner part only, so the parts add up to at most the total."""

    def __init__(self, enabled: bool, device: torch.device):
        self.enabled, self.device = enabled, device
        self.t = {"model": 0.0, "sampling": 0.0, "cache": 0.0}
        self._stack: list[list] = []  # [name, start, time spent in nested sections]

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

    def __call__(self, layer: int, q, k, v, softmax_scale: float | None = None):
        p = self.plan
        if p.slot_mapping is not None:
            with self.prof.section("cache"):
                self.backend.cache_write(
                    self.cache.k(layer), self.cache.v(layer), k, v, p.slot_mapping
                )
        kf = vf = None
        if p.attend_from is not None:
            kf, vf = k[:, p.attend_from :], v[:, p.attend_from :]
        return self.backend.attention(
            q,
            kf,
            vf,
            k_cache=self.cache.k(layer),
            v_cache=self.cache.v(layer),
            block_table=p.block_table,
            cache_lens=p.cache_lens,
            q_start=p.q_start,
            mask=p.mask,
            block_size=p.block_size,
            softmax_scale=softmax_scale,
        )


def _left_pad(prompt_ids, attention_mask, pad_id: int, device):
    """(x_prompt [B, P] left-padded with P = the longest prompt, prompt_lens list) from a tensor
    (+ mask) or a list of lists."""
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.dim() != 2:
            raise ValueError(
                f"dllm_kernels.generate: prompt_ids must be [B, P], got {list(prompt_ids.shape)}"
            )
        ids = prompt_ids.to(device=device, dtype=torch.int64)
        if attention_mask is None:
            return ids, [ids.shape[1]] * ids.shape[0]
        m = attention_mask.to(device=device, dtype=torch.bool)
        lens = m.sum(1).tolist()  # once per generation
        P = ids.shape[1]
        want = torch.arange(P, device=device).unsqueeze(0) >= (P - m.sum(1, keepdim=True))
        if not torch.equal(m, want):
            raise ValueError(
                "dllm_kernels.generate: attention_mask must be left padding (zeros, then ones)"
            )
        lens = [int(n) for n in lens]
        longest = max(lens + [0])
        return torch.where(m, ids, torch.full_like(ids, pad_id))[:, P - longest :], lens
    if attention_mask is not None:
        raise ValueError(
            "dllm_kernels.generate: attention_mask goes with a prompt tensor; a list of "
            "token lists needs none"
        )
    rows = [list(map(int, r)) for r in prompt_ids]
    P = max(len(r) for r in rows)
    x = torch.full((len(rows), P), pad_id, dtype=torch.int64)
    for b, r in enumerate(rows):
        if r:
            x[b, P - len(r) :] = torch.tensor(r)
    return x.to(device), [len(r) for r in rows]


MODEL_KINDS = (
    "a model must be one of: (a) the runtime interface: forward(input_ids, positions, attn[, "
    "logits_range]) -> logits, with num_layers and config.num_kv_heads / head_dim (see "
    "dllm_kernels.models.TinyLLaDA; every cache mode); (b) any callable whose model(input_ids[, "
    "attention_mask=...]) returns an object with .logits (cache='none' only); (c) a transformers "
    "(>= 5) PreTrainedModel whose attention dispatches through AttentionInterface (Llama, Qwen2, "
    "Mistral, Gemma, LLaDA2-MoE, ...; every cache mode)"
)


def _is_runtime_model(model) -> bool:
    fwd = getattr(model, "forward", None)
    if fwd is None or not hasattr(model, "num_layers"):
        return False
    try:
        params = inspect.signature(fwd).parameters
    except (TypeError, ValueError):
        return False
    cfg = getattr(model, "config", None)
    return "attn" in params and hasattr(cfg, "num_kv_heads") and hasattr(cfg, "head_dim")


def model_kind(model) -> str:
    """ "runtime" (a), "transformers" (c) or "callable" (b): how generate drives `model`."""
    if _is_runtime_model(model):
        return "runtime"
    if "transformers" in sys.modules:  # a transformers model means transformers is imported
        from .integrations import transformers as hf

        if hf.is_attention_interface_model(model):
            return "transformers"
    if callable(model):
        return "callable"
    raise TypeError(f"dllm_kernels.generate: cannot drive {type(model).__name__}: {MODEL_KINDS}")


class _CallableModel:
    """Kind (b): logits of the whole sequence from model(x[, attention_mask=m]).logits."""

    def __init__(self, model):
        self.model = model
        try:
            params = inspect.signature(
                model.forward if hasattr(model, "forward") else model
            ).parameters
        except (TypeError, ValueError):
            params = {}
        self.takes_mask = "attention_mask" in params or any(
            p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()
        )

    def __call__(self, x, attention_mask=None):
        if attention_mask is None:
            out = self.model(x)
        elif not self.takes_mask:
            raise ValueError(
                f"dllm_kernels.generate: {type(self.model).__name__} takes no "
                "attention_mask, so it cannot run a left-padded (ragged) batch"
            )
        else:
            out = self.model(x, attention_mask=attention_mask)
        logits = getattr(out, "logits", None)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(
                f"dllm_kernels.generate: model(input_ids) returned {type(out).__name__} "
                f"with no .logits tensor; {MODEL_KINDS}"
            )
        return logits


def _tp_setup(model, kind: str, tp_group):
    """generate's tp_group checked against the model: (tp_group, vocab_start), or None without
    tensor parallelism."""
    from .models.tensor_parallel import is_tensor_parallel

    sharded = kind == "runtime" and is_tensor_parallel(model)
    if tp_group is None:
        if sharded and model.tp_size > 1:
            raise ValueError(
                f"dllm_kernels.generate: {type(model).__name__} is a tensor-parallel shard "
                f"(tp_size={model.tp_size}; its forward returns the logits of tokens "
                f"{model.vocab_start} .. {model.vocab_start + model.vocab_size_local - 1} only): "
                "pass tp_group=model.tp_group, and call generate on every rank of the group"
            )
        return None
    if kind != "runtime":
        raise ValueError(
            f"dllm_kernels.generate: tp_group (tensor parallelism) is not supported for a "
            f"{'transformers model' if kind == 'transformers' else 'plain callable'} "
            f"({type(model).__name__}); it needs a tensor-parallel model of the runtime "
            "interface, e.g. dllm_kernels.models.tensor_parallel(TinyLLaDA(...), group)"
        )
    if not sharded:
        raise ValueError(
            f"dllm_kernels.generate: tp_group needs a tensor-parallel model (attributes tp_group, "
            f"tp_size, vocab_start, vocab_size_local, vocab_size; its forward returning the "
            f"rank's vocabulary shard), e.g. dllm_kernels.models.tensor_parallel(model, group); "
            f"{type(model).__name__} is not one"
        )
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "dllm_kernels.generate: tp_group given but torch.distributed is not initialized"
        )
    if (
        tp_group is not (model.tp_group if model.tp_group is not None else dist.group.WORLD)
        or dist.get_world_size(tp_group) != model.tp_size
        or dist.get_rank(tp_group) != getattr(model, "tp_rank", dist.get_rank(tp_group))
    ):
        raise ValueError(
            f"dllm_kernels.generate: tp_group is not the process group the model was sharded "
            f"over (model: tp_size={model.tp_size}, rank {getattr(model, 'tp_rank', '?')}; "
            f"tp_group: size {dist.get_world_size(tp_group)}, rank {dist.get_rank(tp_group)}); "
            "pass tp_group=model.tp_group"
        )
    return tp_group, int(model.vocab_start)


def _tp_broadcast_seed(seed: int, group, device) -> int:
    """The seed of the group's first rank, on every rank (a drawn seed differs per rank)."""
    import torch.distributed as dist

    t = torch.tensor([seed], dtype=torch.int64, device=device)
    dist.broadcast(t, src=dist.get_global_rank(group, 0), group=group)
    return int(t.item())


def _tp_check_same(group, device, *args) -> None:
    """Raises ValueError on every rank unless every rank of the group passed equal args (the
    prompt and the options): a rank that decodes differently would desynchronise the
    collectives. One all_gather of one int64 per generation."""
    import zlib

    import torch.distributed as dist

    digest = zlib.crc32(
        repr([a.tolist() if isinstance(a, torch.Tensor) else a for a in args]).encode()
    )
    t = torch.tensor([digest], dtype=torch.int64, device=device)
    got = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    dist.all_gather(got, t, group=group)
    if len({int(g.item()) for g in got}) > 1:
        raise ValueError(
            "dllm_kernels.generate: the ranks of tp_group called generate with different "
            "prompts or options; every rank must pass the same ones"
        )


def _resolve_mask_id(mask_id, *configs) -> int:
    if mask_id is not None:
        return int(mask_id)
    for cfg in configs:
        for name in ("mask_id", "mask_token_id"):
            v = getattr(cfg, name, None) if cfg is not None else None
            if v is not None:
                return int(v)
    raise ValueError(
        "dllm_kernels.generate: no mask_id: pass mask_id=..., or give the model's "
        "config a mask_id / mask_token_id"
    )


def _model_device_dtype(model, prompt_ids):
    """The model's parameters' device and dtype; for a callable without parameters, the prompt
    tensor's device (else the CPU)."""
    try:
        p = next(model.parameters())
        return p.device, p.dtype
    except (AttributeError, StopIteration, TypeError):
        dev = prompt_ids.device if isinstance(prompt_ids, torch.Tensor) else torch.device("cpu")
        return dev, torch.float32


def _edit_options(
    edit_threshold,
    max_post_edit_steps,
    penalty_lambda,
    threshold,
    factor,
    entropy_bound,
    temperature,
    remasking,
    sampling_options,
):
    """generate's token-editing arguments checked: None without edit_threshold, else a dict."""
    if edit_threshold is None:
        if penalty_lambda != 0:
            raise ValueError(
                "dllm_kernels.generate: penalty_lambda applies to token editing; "
                "give edit_threshold too"
            )
        return None
    if (
        isinstance(edit_threshold, bool)
        or not isinstance(edit_threshold, (int, float))
        or not 0 <= edit_threshold <= 1
    ):
        raise ValueError(
            f"dllm_kernels.generate: edit_threshold must be a number in [0, 1], "
            f"got {edit_threshold!r}"
        )
    if threshold is None or factor is not None or entropy_bound is not None:
        raise ValueError(
            "dllm_kernels.generate: edit_threshold (token editing, sglang's "
            "JointThreshold) needs threshold (the mask -> token threshold) and no "
            "factor / entropy_bound"
        )
    if (
        isinstance(max_post_edit_steps, bool)
        or not isinstance(max_post_edit_steps, int)
        or max_post_edit_steps < 0
    ):
        raise ValueError(
            f"dllm_kernels.generate: max_post_edit_steps must be an int >= 0, got "
            f"{max_post_edit_steps!r}"
        )
    if (
        isinstance(penalty_lambda, bool)
        or not isinstance(penalty_lambda, (int, float))
        or not 0 <= penalty_lambda < math.inf
    ):
        raise ValueError(
            f"dllm_kernels.generate: penalty_lambda must be a finite number >= 0, "
            f"got {penalty_lambda!r}"
        )
    if temperature != 0 or remasking != "low_confidence":
        raise ValueError(
            "dllm_kernels.generate: edit_threshold (token editing) is greedy: "
            "temperature must be 0 and remasking 'low_confidence'"
        )
    if penalty_lambda > 0 and sampling_options.get("shift_logits"):
        raise ValueError("dllm_kernels.generate: penalty_lambda does not combine with shift_logits")
    return {
        "threshold": float(threshold),
        "edit_threshold": float(edit_threshold),
        "max_post_edit_steps": max_post_edit_steps,
        "penalty_lambda": float(penalty_lambda),
    }


def _penalize_previous_token(
    logits: torch.Tensor, block: torch.Tensor, lam: float, vocab_start: int | None = None
) -> None:
    """logits[b, l, block[b, l - 1]] -= lam for l >= 1, in place, in the logits' dtype (sglang
    JointThreshold's repetition penalty): B * (L - 1) elements, no [B, L, V] pass.
    logits [b, L, V] (any strides), block [b, L] int64. Under tensor parallelism (vocab_start
    given) logits is the vocabulary shard of tokens vocab_start .. vocab_start + V - 1, and
    tokens outside it are skipped (no host read)."""
    prev = block[:, :-1].unsqueeze(-1)  # [b, L-1, 1]
    val = torch.full(prev.shape, -lam, dtype=logits.dtype, device=logits.device)
    if vocab_start is not None:
        prev = prev - vocab_start
        inside = (prev >= 0) & (prev < logits.shape[-1])
        prev, val = prev.clamp(0, logits.shape[-1] - 1), val * inside
    logits[:, 1:].scatter_add_(2, prev, val)


def edit_step(
    ops_, logits, uncond, block, mask_id, editable, done, post, edit, sampling, seed, offset
):
    """One token-editing step (sglang JointThreshold) of a block, in place: block [b, L] int64
    gets the step's M2T and T2T writes, done [b] bool / post [b] int64 (the rows' states) are
    updated. logits (and uncond, CFG) [b, L, V] of the block (penalised in place when
    edit["penalty_lambda"] > 0); editable [b, L] bool: the block's non-prompt positions.
    Returns (transfer [b, L] bool, p [b, L] float32: argmax probability, -inf where not
    denoised). ops_: a _Backend; no host synchronisation."""
    if edit["penalty_lambda"] > 0:
        for t in (logits, uncond):  # on c and u: z - lambda = (u - l) + (s+1)(c - u)
            if t is not None:
                _penalize_previous_token(
                    t, block, edit["penalty_lambda"], ops_.vocab_start if ops_.tp else None
                )
    x0, p = ops_.denoise_step(
        logits, block, mask_id, seed, offset, {**sampling, "eligible": editable & ~done[:, None]}
    )
    masked = block == mask_id
    m2t = ops_.select_transfer(
        p.masked_fill(~masked, -math.inf), threshold=edit["threshold"], strict=True
    )  # p > threshold, else the best
    no_mask = ~masked.any(1)
    post += (no_mask & ~done).long()
    out = no_mask & (post > edit["max_post_edit_steps"])  # the edit budget is spent
    t2t = (p > edit["edit_threshold"]) & (x0 != block) & ~masked
    transfer = (m2t | t2t) & ~out[:, None]
    done |= out | ~transfer.any(1)  # nothing changed: finished
    ops_.commit(block, x0, transfer)
    return transfer, p


def generate(
    model,
    prompt_ids,
    *,
    gen_length: int,
    block_length: int | None = None,
    steps: int | None = None,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    threshold=None,
    factor=None,
    entropy_bound=None,
    edit_threshold=None,
    max_post_edit_steps: int = 16,
    penalty_lambda: float = 0.0,
    schedule: str = "linear",
    eps: float | None = None,
    cfg_scale: float = 0.0,
    mask_id: int | None = None,
    cache: str = "none",
    refresh_interval: int | None = None,
    attention_mask=None,
    eos_id: int | None = None,
    backend: str = "kernels",
    seed: int | None = None,
    progress: bool = False,
    trace: bool = False,
    profile: bool = False,
    page_size: int = 16,
    pad_id: int | None = None,
    tp_group=None,
    **sampling_options,
) -> GenerateOutput:
    """tokens = prompt + gen_length tokens decoded by blockwise masked diffusion.

    Args:
        model: one of three kinds, told apart automatically (model_kind): (a) the runtime
            interface (module docstring), e.g. TinyLLaDA; (b) any callable with
            model(input_ids[, attention_mask=]).logits (cache="none" only); (c) a transformers
            model whose attention goes through AttentionInterface (every cache mode; the runtime
            switches it to the "dllm_kernels" attention for the call and passes position_ids).
        prompt_ids: int [B, P] (with attention_mask for left padding) or a list of token lists.
        gen_length, block_length: generated tokens and block size (gen_length a multiple;
            default one block of gen_length).
        steps: total denoising steps of the fixed schedule (a multiple of the number of blocks);
            not needed with threshold / factor.
        temperature: 0 = argmax; > 0 Gumbel-max sampling with the Philox stream of `seed`.
        remasking: the confidence ranked: "low_confidence" | "random" | "margin" | "entropy", or
            Dream's algorithm names "maskgit_plus" (prob), "topk_margin" (margin), "entropy"
            (negative entropy), "origin" (each masked position commits with probability 1 - s/t
            of Dream's timesteps, 1 at the last step).
        threshold / factor: parallel decoding (Fast-dLLM): each block runs until it has no mask
            left (at most block_length steps).
        entropy_bound: gamma > 0, entropy-bounded parallel decoding (arXiv 2505.24857, as
            transformers' DiffusionGemma EntropyBoundSampler): each step commits the masked
            positions in ascending entropy H of their distribution while
            sum_{j<=k} H_j - max_{j<=k} H_j <= gamma (at least one per step); each block runs
            until it has no mask left. Ranks by entropy (remasking "low_confidence" / "entropy").
        edit_threshold: token editing (LLaDA2.1, sglang's JointThreshold): per step over the
            block, mask -> token for masked positions with p > threshold (if none, the most
            confident one), plus token -> token for already decoded positions of the block whose
            argmax differs from their token with p > edit_threshold; a row's block ends when a
            step changes nothing in it, or after max_post_edit_steps steps with no mask left (at
            most block_length + max_post_edit_steps + 1 steps). Needs threshold; greedy
            (temperature 0, remasking "low_confidence"); every cache mode (an edited position's
            K/V are rewritten by the next forward, which feeds the whole block).
        max_post_edit_steps: with edit_threshold, the steps a row may edit its block once no mask
            is left (sglang's default 16).
        penalty_lambda: with edit_threshold, a repetition penalty: lambda is subtracted from the
            logit of position l (l >= 1 in the block) for the token at position l - 1 before the
            argmax (sglang's penalty_lambda; 0 = off).
        schedule: "linear" (LLaDA: the block's masks spread evenly over its steps) or "dream"
            (k = int(mean_masked * (1 - s/t)) on linspace(1, eps, steps + 1), everything left at
            the last step; also makes confidences come from the sampling distribution and top-p
            filter before top-k, as Dream does, unless confidence_source / filter_order are given),
            or "mdlm" (MDLM's ancestral sampler on its log-linear schedule: at step s each masked
            position unmasks with probability (t_s - t_{s+1}) / t_s on linspace(1, eps, steps + 1);
            a step after one that committed nothing reuses its logits instead of running the model
            (MDLM's cache), and a last argmax forward decodes what is left (MDLM's noise removal);
            MDLM samples tokens at temperature=1.0).
        eps: the final timestep (default 1e-3 for Dream, 1e-5 for MDLM).
        cfg_scale: LLaDA's classifier-free guidance: the unconditional copy is the sequence with
            the prompt masked, logits = u + (cfg_scale + 1) * (c - u), both in one batched forward
            (every cache mode; with eos_id rows leave the batch only at the end).
        mask_id: the mask token (default: the model config's mask_id, then mask_token_id).
        cache: "none" | "prefix" | "dual" | "block"; refresh_interval: extra refreshes
            (prefix / dual only) every that many steps within a block. In "block" mode the
            generated blocks start at each row's prompt end (LLaDA's layout).
        eos_id: a row that committed EOS in a finished block is filled with EOS after it and
            leaves the batch (stops costing compute); every row is EOS-filled at the end.
        backend: "kernels" or "reference" (the reference ops; same tokens at T = 0).
        seed: the Philox seed (None: drawn from torch's default generator).
        progress: a tqdm bar; trace: record every step; profile: time model / sampling / cache
            (synchronises the device around each part).
        page_size: of the paged KV cache the runtime allocates.
        pad_id: the token written into the left padding of out.tokens (default eos_id, else 0).
        tp_group: tensor parallelism over this torch.distributed process group: every rank of the
            group calls generate with the same prompt and options and its shard of the model (a
            runtime-interface model with tp_group / tp_size / vocab_start / vocab_size_local /
            vocab_size whose forward returns the rank's vocabulary shard of the logits and whose
            config.num_kv_heads are the rank's kv heads, e.g.
            dllm_kernels.models.tensor_parallel(model, group)); the K/V cache holds the rank's
            heads, every sampling call reads the local logits shard, and every rank returns the
            same tokens (those of the unsharded model up to float summation order). Every cache
            mode and decoding option works; a drawn seed (seed=None) is rank 0's. Needs a model
            of kind (a).
        sampling_options: top_k, top_p, filter_order, confidence_source, suppress_tokens,
            shift_logits (Dream-style models: position i reads the logits of i - 1; cache="none"
            only), passed to denoise_and_select.

    Returns:
        GenerateOutput(tokens, nfe, timing, trace).
    """
    if cache not in CACHE_MODES:
        raise ValueError(
            f"dllm_kernels.generate: cache must be one of {list(CACHE_MODES)}, got {cache!r}"
        )
    if remasking not in REMASKING:
        raise ValueError(
            f"dllm_kernels.generate: remasking must be one of {list(REMASKING)}, got {remasking!r}"
        )
    if schedule not in SCHEDULES:
        raise ValueError(
            f"dllm_kernels.generate: schedule must be one of {list(SCHEDULES)}, got {schedule!r}"
        )
    if block_length is None:
        block_length = gen_length
    if gen_length < 1 or block_length < 1 or gen_length % block_length:
        raise ValueError(
            f"dllm_kernels.generate: gen_length ({gen_length}) must be a multiple of block_length "
            f"({block_length})"
        )
    num_blocks = gen_length // block_length
    rules = [
        n
        for n, v in (("threshold", threshold), ("factor", factor), ("entropy_bound", entropy_bound))
        if v is not None
    ]
    parallel = bool(rules)
    if len(rules) > 1:
        raise ValueError(
            f"dllm_kernels.generate: give one of threshold, factor, entropy_bound, "
            f"not {' and '.join(rules)}"
        )
    if parallel and (schedule != "linear" or remasking == "origin"):
        raise ValueError(
            f"dllm_kernels.generate: {rules[0]} replaces the schedule; it does not "
            "combine with schedule='dream' / 'mdlm' or remasking='origin'"
        )
    if entropy_bound is not None:
        if (
            isinstance(entropy_bound, bool)
            or not isinstance(entropy_bound, (int, float))
            or not 0 < entropy_bound < math.inf
        ):
            raise ValueError(
                f"dllm_kernels.generate: entropy_bound must be a finite number > 0, "
                f"got {entropy_bound!r}"
            )
        if remasking not in ("low_confidence", "entropy"):
            raise ValueError(
                f"dllm_kernels.generate: entropy_bound ranks positions by entropy; "
                f"it does not combine with remasking={remasking!r}"
            )
    edit = _edit_options(
        edit_threshold,
        max_post_edit_steps,
        penalty_lambda,
        threshold,
        factor,
        entropy_bound,
        temperature,
        remasking,
        sampling_options,
    )
    if not parallel:
        if steps is None:
            raise TypeError(
                "dllm_kernels.generate: steps is required (total denoising steps) "
                "unless threshold, factor or entropy_bound is given"
            )
        if steps < num_blocks or steps % num_blocks:
            raise ValueError(
                f"dllm_kernels.generate: steps ({steps}) must be a multiple of the number of "
                f"blocks ({num_blocks})"
            )
    if not cfg_scale >= 0:
        raise ValueError(f"dllm_kernels.generate: cfg_scale must be >= 0, got {cfg_scale}")
    if eps is None:
        eps = DEFAULT_EPS.get(schedule, 1e-3)
    if not 0 < eps < 1:
        raise ValueError(f"dllm_kernels.generate: eps must be in (0, 1), got {eps}")
    if sampling_options.get("shift_logits") and cache != "none":
        raise ValueError(
            "dllm_kernels.generate: shift_logits needs cache='none' (the cached modes do not feed "
            "the column before the block)"
        )
    unknown = set(sampling_options) - {
        "top_k",
        "top_p",
        "filter_order",
        "confidence_source",
        "suppress_tokens",
        "shift_logits",
    }
    if unknown:
        raise TypeError(f"dllm_kernels.generate: unknown options {sorted(unknown)}")
    if refresh_interval is not None and cache not in ("prefix", "dual"):
        raise ValueError(
            "dllm_kernels.generate: refresh_interval applies to cache='prefix' or 'dual', not "
            f"{cache!r}"
        )
    kind = model_kind(model)
    tp = _tp_setup(model, kind, tp_group)
    if kind == "callable" and cache != "none":
        raise ValueError(
            f"dllm_kernels.generate: cache={cache!r} needs a model whose attention the runtime "
            f"serves; {type(model).__name__} is a plain callable (model(input_ids).logits), which "
            f"runs cache='none' only. {MODEL_KINDS}"
        )
    gen_cfg = getattr(model, "generation_config", None)
    if kind == "transformers":
        from .integrations.transformers import TransformersModel

        served = TransformersModel(model)  # a context: restores the model's attention after
    else:
        served = contextlib.nullcontext(model if kind == "runtime" else _CallableModel(model))
    with served as rt:
        if kind == "transformers":
            configs = (rt.config, model.config, gen_cfg)
        else:
            configs = (getattr(model, "config", None), gen_cfg)
        return _generate(
            rt,
            kind,
            prompt_ids,
            gen_length,
            block_length,
            num_blocks,
            steps,
            temperature,
            remasking,
            threshold,
            factor,
            schedule,
            eps,
            cfg_scale,
            {"entropy_bound": entropy_bound, "edit": edit},
            _resolve_mask_id(mask_id, *configs),
            cache,
            refresh_interval,
            attention_mask,
            eos_id,
            backend,
            seed,
            progress,
            trace,
            profile,
            page_size,
            pad_id,
            sampling_options,
            tp,
        )


@torch.no_grad()
def _generate(
    model,
    kind,
    prompt_ids,
    gen_length,
    block_length,
    num_blocks,
    steps,
    temperature,
    remasking,
    threshold,
    factor,
    schedule,
    eps,
    cfg_scale,
    decoding,
    mask_id,
    cache,
    refresh_interval,
    attention_mask,
    eos_id,
    backend,
    seed,
    progress,
    trace,
    profile,
    page_size,
    pad_id,
    sampling_options,
    tp=None,
) -> GenerateOutput:
    """generate() after its arguments are checked and the model resolved (see generate); tp:
    (tp_group, vocab_start) under tensor parallelism."""
    ops_ = _Backend(backend, *(tp or ()))
    entropy_bound, edit = decoding["entropy_bound"], decoding["edit"]
    parallel = threshold is not None or factor is not None or entropy_bound is not None
    device, dtype = _model_device_dtype(model.model if kind == "callable" else model, prompt_ids)
    seed_arg, drawn = seed, False
    if seed is None:  # drawn only when something is random (keeps the caller's RNG state otherwise)
        drawn = temperature > 0 or remasking in ("random", "origin") or schedule == "mdlm"
        seed = int(torch.empty((), dtype=torch.int64).random_().item()) if drawn else 0
    shift = bool(sampling_options.pop("shift_logits", False))
    if isinstance(sampling_options.get("suppress_tokens"), (list, tuple)):  # once, not per step
        ids = sorted({int(t) for t in sampling_options["suppress_tokens"]})
        sampling_options["suppress_tokens"] = (
            torch.tensor(ids, dtype=torch.int64, device=device) if ids else None
        )
    if schedule == "dream":  # Dream ranks its sampling distribution, top-p filtered first
        sampling_options.setdefault("confidence_source", "sampling")
        sampling_options.setdefault("filter_order", "top_p_first")
    sampling = {"temperature": temperature, "confidence": REMASKING[remasking], **sampling_options}
    if entropy_bound is not None:
        sampling["confidence"] = "neg_entropy"  # H = -conf, the EB rule's entropies
    if pad_id is None:
        pad_id = eos_id if eos_id is not None else 0
    guided = cfg_scale > 0
    prof = _Profiler(profile, device)
    t_start = time.perf_counter()

    x_prompt, prompt_lens = _left_pad(prompt_ids, attention_mask, pad_id, device)
    if tp is not None:
        _tp_check_same(
            tp[0],
            device,
            x_prompt,
            prompt_lens,
            (gen_length, block_length, steps, temperature, remasking, threshold, factor),
            (schedule, eps, cfg_scale, decoding, mask_id, cache, refresh_interval, eos_id),
            (backend, seed_arg, page_size, pad_id, shift),
            sorted(
                (k, v.tolist() if isinstance(v, torch.Tensor) else v)
                for k, v in sampling_options.items()
            ),
        )
        if drawn:  # after the check: every rank agrees that there is a seed to share
            seed = _tp_broadcast_seed(seed, tp[0], device)
    B, P = x_prompt.shape
    T = P + gen_length
    # xm: the rows the model sees; with CFG the unconditional copies (prompt masked) follow the
    # B conditional rows, and x (the output) is a view of the first B.
    xm = torch.full((2 * B if guided else B, T), mask_id, dtype=torch.int64, device=device)
    xm[:B, :P] = x_prompt
    if guided:
        pad_cols = torch.arange(P, device=device).unsqueeze(0) < (
            P - torch.tensor(prompt_lens, device=device)
        ).unsqueeze(1)
        xm[B:, :P] = torch.where(pad_cols, x_prompt, torch.full_like(x_prompt, mask_id))
    x = xm[:B]
    lens_m = prompt_lens * (2 if guided else 1)
    policy = None
    if kind != "callable":
        with prof.section("cache"):
            pages = sum(-(-(p + gen_length) // page_size) for p in lens_m) + len(lens_m)
            kv = PagedKVCache(
                model.num_layers,
                model.config.num_kv_heads,
                model.config.head_dim,
                num_pages=pages,
                page_size=page_size,
                dtype=dtype,
                device=device,
            )
            policy = CachePolicy(
                kv, lens_m, gen_length, block_length, cache, refresh_interval=refresh_interval
            )
    pad_mask = None
    if kind == "callable" and min(lens_m) < P:  # the callable sees the padding: mask it
        lens_t = torch.tensor(lens_m, device=device).unsqueeze(1)
        pad_mask = (torch.arange(T, device=device).unsqueeze(0) >= (P - lens_t)).long()
    compact = eos_id is not None and not guided
    rows = torch.arange(B, device=device)  # batch rows still generating
    nfe, offset = 0, 0
    steps_log = [] if trace else None
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=num_blocks, desc="blocks", unit="block")
        except ImportError:
            bar = None
    spb = steps // num_blocks if steps is not None else None
    takes_range = (
        kind != "callable" and "logits_range" in inspect.signature(model.forward).parameters
    )

    def model_rows():
        return rows if not guided else torch.cat([rows, rows + B])

    def forward(plan, want=None):
        """The model over the plan's columns; logits of fed tokens want = (lo, hi) (None: none
        needed), returned as [B, hi - lo, V]."""
        nonlocal nfe
        c0, c1 = plan.columns
        lo, hi = want if want is not None else (0, 0)
        ids = xm[model_rows(), c0:c1] if len(rows) != B else xm[:, c0:c1]
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
        if shift and lo > 0:  # Dream: column c reads the logits of column c - 1
            return (lo - 1, lo - 1 + block_length), False
        return (lo, lo + block_length), shift  # (the very first column reads its own)

    def callable_logits(k):
        """Kind (b): the whole sequence through the model, the block's logits out."""
        nonlocal nfe
        c0 = P + k * block_length
        ids = xm[model_rows()] if len(rows) != B else xm
        am = None if pad_mask is None else (pad_mask[model_rows()] if len(rows) != B else pad_mask)
        with prof.section("model"):
            full = model(ids, am)
        nfe += 1
        lo = c0 - 1 if shift and c0 > 0 else c0
        return full[:, lo : lo + block_length], shift and c0 == 0

    # per-step commit probabilities of the probability-rule schedules, computed once
    unmask_p = None
    if (
        not parallel and schedule == "mdlm"
    ):  # log-linear: (alpha_s - alpha_t) / (1 - alpha_t) = (t - s) / t
        ts = torch.linspace(1, eps, spb + 1, dtype=torch.float64)
        unmask_p = [float((ts[i] - ts[i + 1]) / ts[i]) for i in range(spb)]
    elif not parallel and remasking == "origin":
        ts = dream_timesteps(spb, eps)
        unmask_p = [1.0 if i == spb - 1 else float(1 - ts[i + 1] / ts[i]) for i in range(spb)]

    def step_rule(k, s, block, linear):
        if parallel:
            if entropy_bound is not None:
                return {"entropy_bound": entropy_bound}
            return {"threshold": threshold} if threshold is not None else {"factor": factor}
        if unmask_p is not None:
            return {"probability": unmask_p[s]}
        if schedule == "dream":  # Dream's batch-wide count (one host read per step, as Dream)
            return {"num_transfer": dream_num_transfer(block == mask_id, s, spb, eps)}
        return {"num_transfer": linear[:, s]}

    def step_logits(k, s):
        """The logits of step s of block k ([B, block_length, V]) and whether the op shifts."""
        if kind == "callable":
            return callable_logits(k)
        with prof.section("cache"):
            plan = policy.step_plan(k, s)
        want, step_shift = step_want(plan, k)
        return forward(plan, want), step_shift

    def forward_unread(plans):
        """Forwards whose logits nobody reads (a block-mode prefill / commit)."""
        for plan in plans:
            forward(plan)

    def split_cfg(logits):
        """(conditional, unconditional) logits of a step; (logits, None) without CFG."""
        return tuple(logits.chunk(2, dim=0)) if guided else (logits, None)

    def cfg_args(uncond):
        """CFG inside the op's one pass: z = u + (cfg_scale + 1)(c - u), no [B, L, V] temporary."""
        return {} if uncond is None else {"uncond_logits": uncond, "cfg_scale": cfg_scale}

    def log_step(k, s, transfer, conf):
        if trace:
            steps_log.append(
                {
                    "block": k,
                    "step": s,
                    "rows": rows.cpu(),
                    "committed": transfer.cpu(),
                    "conf": conf.cpu(),
                }
            )

    def write_back(block, xs, c0, c1):
        """The block's tokens into x (when it is a copy) and into the unconditional rows."""
        if xs is None:
            x[rows, c0:c1] = block
        if guided:
            xm[B:, c0:c1] = block

    def schedule_block(k, block, xs, c0, c1):
        """Block k by the schedule or a parallel rule (threshold / factor / entropy_bound)."""
        nonlocal offset
        linear = None
        if not parallel and schedule == "linear" and remasking != "origin":
            with prof.section("sampling"):
                linear = ops_.num_transfer_tokens(block == mask_id, spb)
        s = 0
        reuse = None  # MDLM: the last step's logits while x is unchanged
        while True:
            last = schedule == "mdlm" and s == spb  # MDLM's noise removal: argmax what is left
            if parallel:
                if s >= block_length or not bool((block == mask_id).any()):  # the stopping test
                    break
            elif s > spb or (s == spb and not (last and bool((block == mask_id).any()))):
                break
            if reuse is not None:
                logits, uncond, step_shift = reuse
            else:
                logits, step_shift = step_logits(k, s)
                logits, uncond = split_cfg(logits)
            rule = {"probability": 1.0} if last else step_rule(k, s, block, linear)
            step_sampling = {**sampling, "shift_logits": step_shift, **cfg_args(uncond)}
            if last:
                step_sampling["temperature"] = 0.0
            with prof.section("sampling"):
                _, conf, transfer = ops_.denoise_and_select(
                    logits, block, mask_id, rule, seed, offset, step_sampling
                )
            if schedule == "mdlm":  # one flag per step, as MDLM's cache test
                reuse = (logits, uncond, step_shift) if not bool(transfer.any()) else None
            log_step(k, s, transfer, conf)
            write_back(block, xs, c0, c1)
            offset = (offset + 1) % (1 << 32)
            s += 1

    def edit_block(k, block, xs, c0, c1):
        """Block k with token editing (sglang JointThreshold; see generate's edit_threshold):
        per step one forward and one denoise_step over the block's non-prompt positions of the
        rows still editing (argmax and p at masked and decoded positions alike), then M2T / T2T
        on [b, L] tensors. One host read per step (are all rows done)."""
        nonlocal offset
        editable = block == mask_id  # non-prompt: masked when the block starts
        b_rows = block.shape[0]
        post = torch.zeros(b_rows, dtype=torch.int64, device=device)
        done = torch.zeros(b_rows, dtype=torch.bool, device=device)
        greedy = {**sampling, "temperature": 0.0, "confidence": "prob"}
        for s in range(block_length + edit["max_post_edit_steps"] + 1):  # sglang's max_steps
            logits, step_shift = step_logits(k, s)
            logits, uncond = split_cfg(logits)
            with prof.section("sampling"):
                transfer, p = edit_step(
                    ops_,
                    logits,
                    uncond,
                    block,
                    mask_id,
                    editable,
                    done,
                    post,
                    edit,
                    {**greedy, "shift_logits": step_shift, **cfg_args(uncond)},
                    seed,
                    offset,
                )
            log_step(k, s, transfer, p)
            write_back(block, xs, c0, c1)
            offset = (offset + 1) % (1 << 32)
            if bool(done.all()):  # the stopping test
                break

    if policy is not None:
        with prof.section("cache"):
            before = policy.plans_before()
        forward_unread(before)
    for k in range(num_blocks):
        c0, c1 = P + k * block_length, P + (k + 1) * block_length
        xs = x if len(rows) == B else None
        block = (xs if xs is not None else x[rows])[:, c0:c1]
        (edit_block if edit is not None else schedule_block)(k, block, xs, c0, c1)
        if policy is not None:
            with prof.section("cache"):
                after = policy.plans_after_block(k)
            forward_unread(after)
        if bar is not None:
            bar.update(1)
        if compact and k + 1 < num_blocks:
            gen = x[rows, P:c1]
            done = (gen == eos_id).any(1)
            if bool(done.any()):  # one flag per block
                after = (gen == eos_id).long().cumsum(1) > 0
                filled = torch.where(after[done], torch.full_like(gen[done], eos_id), gen[done])
                x[rows[done], P:c1] = filled
                x[rows[done], c1:] = eos_id
                keep = (~done).nonzero().flatten()
                if policy is not None:
                    with prof.section("cache"):
                        policy = policy.subset(keep.tolist())
                rows = rows[keep]
                if len(rows) == 0:
                    break
    if policy is not None:
        policy.close()
    if bar is not None:
        bar.close()
    if eos_id is not None:  # every row: EOS after its first EOS (incl. the last block)
        gen = x[:, P:]
        gen.masked_fill_((gen == eos_id).cumsum(1) > 0, eos_id)
    if (parallel or remasking == "origin") and bool((x[:, P:] == mask_id).any()):  # one read
        warnings.warn(
            "dllm_kernels.generate: some positions are still masked (every candidate "
            "was ineligible, e.g. all suppressed or NaN logits)",
            RuntimeWarning,
            stacklevel=3,
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - t_start
    timing = {"total_s": total, "tokens_per_s": B * gen_length / total if total > 0 else math.inf}
    if profile:
        timing.update({f"{k}_s": v for k, v in prof.t.items()})
    return GenerateOutput(
        tokens=x.contiguous() if guided else x, nfe=nfe, timing=timing, trace=steps_log
    )
