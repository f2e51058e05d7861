"""Reference cache_write_: tokens into their paged-KV-cache slots.

The cache of one layer is a pair of tensors [num_pages, page_size, H_kv, D] (the FlashInfer /
vLLM "NHD" layout); token slot s lives at page s // page_size, offset s % page_size.
"""

from __future__ import annotations

import torch

from .. import _checks


def cache_write_(k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 slot_mapping: torch.Tensor, *, check: bool = True) -> None:
    """k_cache[s // S, s % S] = k[i] and v_cache[...] = v[i] for s = slot_mapping[i] >= 0.

    Args:
        k_cache, v_cache: [num_pages, page_size, H_kv, D] fp32/bf16/fp16, written in place.
        k, v: [N, H_kv, D] or [B, L, H_kv, D] in the cache's dtype, any strides.
        slot_mapping: int64 with k's leading shape ([N] or [B, L]); < 0 = skip (padding).
        check: reject slots >= num_pages * page_size and repeated slots before writing anything.
            With check=False such slots are skipped like padding (never written out of bounds).
    """
    _checks.cache_write_(k_cache, v_cache, k, v, slot_mapping, check)
    P, S, H, D = k_cache.shape
    slots = slot_mapping.reshape(-1)
    keep = (slots >= 0) & (slots < P * S)
    slots = slots[keep]
    page, offset = slots // S, slots % S
    k_cache[page, offset] = k.reshape(-1, H, D)[keep]
    v_cache[page, offset] = v.reshape(-1, H, D)[keep]
