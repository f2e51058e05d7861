"""Reference block_attention: the attention of a denoising step over a paged prefix (+ the block
and suffix), with a full or staircase (block-causal) mask, ragged batches and GQA."""

from __future__ import annotations

import math

import torch

from .. import _checks
from .cache_gather import cache_gather


def block_attention(q: torch.Tensor, k: torch.Tensor | None = None, v: torch.Tensor | None = None, *,
                    k_cache: torch.Tensor | None = None, v_cache: torch.Tensor | None = None,
                    block_table: torch.Tensor | None = None, cache_lens: torch.Tensor | None = None,
                    kv_lens: torch.Tensor | None = None, q_start: torch.Tensor | None = None,
                    mask: str = "full", block_size: int | None = None,
                    softmax_scale: float | None = None, return_lse: bool = False,
                    check: bool = True):
    """out[b, i, h] = softmax_j(scale · q[b, i, h] · key_j) · value_j over the keys row b's query i
    may see; keys are the first cache_lens[b] cached tokens (positions 0 ..), then the first
    kv_lens[b] tokens of k / v (positions cache_lens[b] ..).

    Args:
        q: [B, Lq, Hq, D] float32/bfloat16/float16, head_dim contiguous.
        k, v: [B, Lk, Hkv, D] or None: contiguous keys / values after the cached ones.
        k_cache, v_cache: [num_pages, page_size, Hkv, D] or None, with block_table int32
            [B, max_pages] and cache_lens int32 [B] (default 0).
        kv_lens: int32 [B], valid tokens of k / v per row (default Lk).
        q_start: int32 [B], absolute position of row b's first query (default cache_lens); may be
            negative (left padding): with mask="block_causal" a query at a position < 0 sees no key.
        mask: "full" (every valid key) or "block_causal": query at position p sees key position
            t iff t // block_size <= p // block_size (block_causal_mask).
        softmax_scale: default D ** -0.5.
        return_lse: also return the log-sum-exp [B, Hq, Lq] float32 (natural log, of the scaled
            scores; -inf for a query that sees no key).
        check: reject bad lengths / page ids; False clamps them like the kernels do (lengths to
            [0, capacity], page ids to [0, num_pages)), so a bad value never reads out of bounds.

    Returns:
        out [B, Lq, Hq, D] in q's dtype (zeros for a query that sees no key), and lse if asked.
    """
    a = _checks.block_attention(q, k, v, k_cache, v_cache, block_table, cache_lens, kv_lens,
                                q_start, mask, block_size, softmax_scale, values=check)
    cache_lens, kv_lens = a["cache_lens"], a["kv_lens"]
    if not check:
        if k_cache is not None:
            cache_lens = cache_lens.clamp(0, block_table.shape[1] * k_cache.shape[1])
            block_table = block_table.clamp(0, k_cache.shape[0] - 1)
        if k is not None:
            kv_lens = kv_lens.clamp(0, k.shape[1])
    out, lse = attention_math(q, k, v, k_cache, v_cache, block_table, cache_lens, kv_lens,
                              a["q_start"], mask, a["block_size"], a["scale"], torch.float32)
    out = out.to(q.dtype)
    return (out, lse) if return_lse else out


def block_causal_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, block_size: int) -> torch.Tensor:
    """The block-causal (staircase) rule, the one copy every layer uses: a query at position p
    sees key position t iff t // block_size <= p // block_size and p >= 0 (a query before
    position 0, i.e. left padding, sees no key).

    Args:
        q_pos, k_pos: integer tensors of query / key positions, broadcast elementwise: e.g.
            q_pos [B, Lq, 1] and k_pos [B, 1, Nk] give the [B, Lq, Nk] mask.
        block_size: tokens per block (> 0).

    Returns:
        bool tensor of the broadcast shape: True where the query sees the key.
    """
    return (k_pos // block_size <= q_pos // block_size) & (q_pos >= 0)


@torch.compiler.disable  # a value read on the host: eager under torch.compile (no graph value)
def host_max(lens: torch.Tensor) -> int:
    """max(lens) as a Python int (the padded length of a gather; a device sync on CUDA)."""
    return int(lens.max())


def attention_math(q, k, v, k_cache, v_cache, block_table, cache_lens, kv_lens, q_start, mask,
                   block_size, scale, acc_dtype):
    """The computation itself, with every product and sum in acc_dtype (float32 for the reference,
    float64 or the input dtype in the tests' error model). Lengths are int tensors on q's device."""
    B, Lq, Hq, D = q.shape
    dev = q.device
    keys, values, pos, valid = [], [], [], []
    if k_cache is not None:
        max_cache = host_max(cache_lens) if B else 0
        kc, vc = cache_gather(k_cache, v_cache, block_table, cache_lens.to(torch.int32), max_cache)
        t = torch.arange(max_cache, device=dev).unsqueeze(0).expand(B, -1)
        keys.append(kc), values.append(vc), pos.append(t), valid.append(t < cache_lens.unsqueeze(1))
    if k is not None:
        t = torch.arange(k.shape[1], device=dev).unsqueeze(0).expand(B, -1)
        keys.append(k), values.append(v)
        pos.append(t + cache_lens.unsqueeze(1)), valid.append(t < kv_lens.unsqueeze(1))
    Hkv = keys[0].shape[2] if keys else Hq
    K = torch.cat(keys, 1).to(acc_dtype) if keys else q.new_zeros((B, 0, Hkv, D), dtype=acc_dtype)
    V = torch.cat(values, 1).to(acc_dtype) if values else K
    kpos = torch.cat(pos, 1) if pos else torch.zeros((B, 0), dtype=torch.long, device=dev)
    see = torch.cat(valid, 1) if valid else torch.zeros((B, 0), dtype=torch.bool, device=dev)
    see = see.unsqueeze(1).expand(B, Lq, -1)                                   # [B, Lq, Nk]
    if mask == "block_causal":
        qpos = q_start.long().unsqueeze(1) + torch.arange(Lq, device=dev).unsqueeze(0)   # [B, Lq]
        see = see & block_causal_mask(qpos.unsqueeze(2), kpos.unsqueeze(1), block_size)
    group = Hq // Hkv
    K = K.repeat_interleave(group, dim=2)                                       # [B, Nk, Hq, D]
    V = V.repeat_interleave(group, dim=2)
    s = torch.einsum("bihd,bjhd->bhij", q.to(acc_dtype), K) * scale            # [B, Hq, Lq, Nk]
    s = s.masked_fill(~see.unsqueeze(1), -math.inf)
    lse = torch.logsumexp(s, dim=-1)                                            # -inf: no key
    p = torch.exp(s - lse.unsqueeze(-1).masked_fill(torch.isinf(lse).unsqueeze(-1), 0.0))
    out = torch.einsum("bhij,bjhd->bihd", p, V)
    return out, lse.float()
