"""Tensor-parallel TinyLLaDA over torch.distributed (Megatron-style sharding, inference only).

    import torch.distributed as dist
    dist.init_process_group("gloo")                  # or "nccl"; torchrun sets rank / world
    model, tok = dllm_kernels.models.load_pretrained("tiny-tasks")
    shard = dllm_kernels.models.tensor_parallel(model)           # group=None: the default group
    out = dllm_kernels.generate(shard, [ids], gen_length=8, steps=8, tp_group=shard.tp_group)

Every rank of the group builds the shard from the same full model (its own copy: the shard keeps
clones of its slices, so the full model can be dropped afterwards). With tp = the group's size and
r = the rank in it, rank r holds:

- attention: query heads [r * H/tp, (r+1) * H/tp) and kv heads [r * Hkv/tp, (r+1) * Hkv/tp) of
  wq / wk / wv (column-parallel; H and Hkv must be multiples of tp, so that a rank's query heads
  read only its own kv heads under GQA), and the matching input columns of wo (row-parallel: the
  partial products are summed with all_reduce);
- MLP: a contiguous part of the intermediate units (torch.arange(F).tensor_split(tp)) of w_gate /
  w_up (column-parallel) and the matching columns of w_down (row-parallel, all_reduce);
- embedding and the RMSNorm weights: replicated;
- LM head and lm_bias: a contiguous vocabulary range [vocab_start, vocab_start + vocab_size_local)
  of dllm_kernels.tp.vocab_range(V, r, tp), the layout the vocabulary-parallel sampling op takes:
  ceil(V / tp / 4) * 4 tokens per rank (its starts must be multiples of 4), the last rank fewer.

forward returns the rank's LOCAL logits shard [B, n, vocab_size_local] (the full logits are the
shards concatenated in rank order); two all_reduce per layer. The weights are slices of the
unsharded model's, so the shards equal its logits up to float summation order. generate(...,
tp_group=shard.tp_group) samples from the shards (every rank gets the same tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..tp import vocab_range
from .tiny_llada import TinyLLaDA, TinyLLaDAConfig


@dataclass(frozen=True)
class TensorParallelConfig:
    """A shard's view of the model: num_heads / num_kv_heads are this rank's (what attn receives,
    what the runtime's per-rank K/V cache holds); vocab_size and mask_id stay global. base: the
    full model's TinyLLaDAConfig."""

    base: TinyLLaDAConfig
    tp_size: int
    tp_rank: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    mask_id: int
    rope_theta: float
    rms_eps: float


def _group_size_rank(group) -> tuple:
    """(the group, None resolved to WORLD; its size; this process's rank in it)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "dllm_kernels.models.tensor_parallel: torch.distributed is not initialized "
            "(call torch.distributed.init_process_group first, e.g. under torchrun)"
        )
    if group is None:
        group = dist.group.WORLD
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError(
            "dllm_kernels.models.tensor_parallel: this process is not a member of the group"
        )
    return group, dist.get_world_size(group), rank


def _split(n: int, parts: int, i: int) -> tuple[int, int]:
    """(start, size) of part i of torch.arange(n).tensor_split(parts)."""
    base, extra = divmod(n, parts)
    return i * base + min(i, extra), base + (1 if i < extra else 0)


class TensorParallelLLaDA(torch.nn.Module):
    """One rank's shard of a TinyLLaDA (see the module docstring); build it with
    tensor_parallel(model, group) or model.shard(group).

    Attributes: tp_group (the process group; torch.distributed.group.WORLD for None), tp_size,
    tp_rank, vocab_start, vocab_size_local, vocab_size (the full vocabulary), config (a
    TensorParallelConfig: the rank's heads, the global vocabulary / mask_id), num_layers.
    forward(input_ids, positions, attn, logits_range=) -> the local logits shard
    [B, n, vocab_size_local] (the runtime interface; called as shard(input_ids) with no attn it
    runs full bidirectional attention and returns an object with .logits, the local shard).
    Every rank of the group must run every forward (collectives)."""

    def __init__(self, model: TinyLLaDA, group=None):
        super().__init__()
        if not isinstance(model, TinyLLaDA):
            raise TypeError(
                f"dllm_kernels.models.tensor_parallel: expected a TinyLLaDA, got "
                f"{type(model).__name__}"
            )
        c = model.config
        group, tp, r = _group_size_rank(group)
        H, Hkv, D, V = c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size
        if H % tp or Hkv % tp:
            raise ValueError(
                f"dllm_kernels.models.tensor_parallel: num_heads ({H}) and num_kv_heads ({Hkv}) "
                f"must both be multiples of the tensor-parallel size ({tp})"
            )
        if vocab_range(V, tp - 1, tp)[1] < 1:
            raise ValueError(
                f"dllm_kernels.models.tensor_parallel: vocab_size ({V}) is too small for "
                f"{tp} ranks of dllm_kernels.tp.vocab_range's ceil(V / tp / 4) * 4 tokens each "
                "(the last rank would hold none)"
            )
        self.tp_group, self.tp_size, self.tp_rank = group, tp, r
        self.vocab_size = V
        self.vocab_start, self.vocab_size_local = vocab_range(V, r, tp)
        Hl, Hkvl = H // tp, Hkv // tp
        self.config = TensorParallelConfig(
            base=c,
            tp_size=tp,
            tp_rank=r,
            num_heads=Hl,
            num_kv_heads=Hkvl,
            head_dim=D,
            hidden_size=c.hidden_size,
            vocab_size=V,
            mask_id=c.mask_id,
            rope_theta=c.rope_theta,
            rms_eps=c.rms_eps,
        )

        def part(t, lo, hi, dim=0):  # a contiguous copy of a slice, no gradients
            return torch.nn.Parameter(t.narrow(dim, lo, hi - lo).clone(), requires_grad=False)

        F_ = c.intermediate_size
        f0, f1 = _split(F_, tp, r)  # the MLP units: torch.arange(F).tensor_split(tp)
        f1 += f0
        q0, q1 = r * Hl * D, (r + 1) * Hl * D
        k0, k1 = r * Hkvl * D, (r + 1) * Hkvl * D
        self.embed = part(model.embed, 0, V)
        self.layers = torch.nn.ModuleList()
        for src in model.layers:
            layer = torch.nn.Module()
            layer.attn_norm = part(src.attn_norm, 0, c.hidden_size)
            layer.wq = part(src.wq, q0, q1)
            layer.wk = part(src.wk, k0, k1)
            layer.wv = part(src.wv, k0, k1)
            layer.wo = part(src.wo, q0, q1, dim=1)
            layer.mlp_norm = part(src.mlp_norm, 0, c.hidden_size)
            layer.w_gate = part(src.w_gate, f0, f1)
            layer.w_up = part(src.w_up, f0, f1)
            layer.w_down = part(src.w_down, f0, f1, dim=1)
            self.layers.append(layer)
        self.norm = part(model.norm, 0, c.hidden_size)
        v0, v1 = self.vocab_start, self.vocab_start + self.vocab_size_local
        self.lm_head = part(model.lm_head, v0, v1)
        self.lm_bias = part(model.lm_bias, v0, v1)

    @property
    def num_layers(self) -> int:
        return self.config.base.num_layers

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The row-parallel o-proj / down-proj outputs summed over the group (all_reduce)."""
        import torch.distributed as dist

        if self.tp_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.tp_group)
        return t

    # TinyLLaDA's forward with this rank's heads (config.num_heads / num_kv_heads are the rank's),
    # the all-reduces above, and the rank's vocabulary shard of the LM head: the logits are
    # [B, n, vocab_size_local] (tokens vocab_start ..).
    forward = TinyLLaDA.forward
    _rms = TinyLLaDA._rms


def tensor_parallel(model: TinyLLaDA, group=None) -> TensorParallelLLaDA:
    """This rank's tensor-parallel shard of `model` over the process group `group` (None: the
    default group, torch.distributed.group.WORLD). Call it on every rank of the group with the
    same model; needs torch.distributed initialized. Raises ValueError when num_heads or
    num_kv_heads is not a multiple of the group's size. See the module docstring for the layout;
    pass the shard to dllm_kernels.generate with tp_group=shard.tp_group."""
    return TensorParallelLLaDA(model, group)


def is_tensor_parallel(model) -> bool:
    """Whether `model` follows the runtime's tensor-parallel interface: tp_size / tp_group, and
    vocab_start / vocab_size_local / vocab_size (its forward returns that vocabulary shard)."""
    return all(
        hasattr(model, a)
        for a in ("tp_group", "tp_size", "vocab_start", "vocab_size_local", "vocab_size")
    )
