"""Reference cache_gather: a batch of paged sequences into contiguous, zero-padded k / v.

The cache of one layer is a pair of tensors [num_pages, page_size, H_kv, D] (the FlashInfer /
vLLM "NHD" layout); token slot s lives at page s // page_size, offset s % page_size.
"""

from __future__ import annotations

import torch

from .. import _checks


def cache_gather(k_cache: torch.Tensor, v_cache: torch.Tensor, block_table: torch.Tensor,
                 kv_lens: torch.Tensor, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """k[b, t] = k_cache[block_table[b, t // S], t % S] for t < kv_lens[b], zeros after.

    Args:
        k_cache, v_cache: [num_pages, page_size, H_kv, D].
        block_table: int32 [B, max_pages], row b's physical pages in logical order.
        kv_lens: int32 [B], tokens cached for row b (<= max_pages * page_size).
        max_len: the output length; None = max(kv_lens) (reads kv_lens: a device sync on CUDA).
            A row longer than max_len is cut to its first max_len tokens.

    Returns:
        (k, v): contiguous [B, max_len, H_kv, D] in the cache's dtype, zero past each row's length.
    """
    max_len = _checks.cache_gather(k_cache, v_cache, block_table, kv_lens, max_len)
    if max_len is None:
        max_len = int(kv_lens.max()) if kv_lens.numel() else 0
    P, S, H, D = k_cache.shape
    B = block_table.shape[0]
    t = torch.arange(max_len, device=k_cache.device)
    valid = t.unsqueeze(0) < kv_lens.unsqueeze(1).long()                # [B, max_len]
    col = (t // S).clamp(max=max(block_table.shape[1] - 1, 0))
    pages = block_table.long()[:, col] if block_table.shape[1] else torch.zeros(B, max_len, dtype=torch.long, device=k_cache.device)
    pages = torch.where(valid, pages, torch.zeros_like(pages))
    offset = (t % S).unsqueeze(0).expand(B, -1)
    out = []
    for cache in (k_cache, v_cache):
        g = cache[pages, offset]                                         # [B, max_len, H, D]
        out.append(torch.where(valid[..., None, None], g, torch.zeros((), dtype=cache.dtype, device=cache.device)).contiguous())
    return out[0], out[1]
