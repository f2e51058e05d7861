"""Reference cache_copy_pages_: whole pages copied (copy-on-write of shared pages).

The cache of one layer is a pair of tensors [num_pages, page_size, H_kv, D] (the FlashInfer /
vLLM "NHD" layout); token slot s lives at page s // page_size, offset s % page_size.
"""

from __future__ import annotations

import torch

from .. import _checks


def cache_copy_pages_(k_cache: torch.Tensor, v_cache: torch.Tensor, pairs) -> None:
    """k_cache[dst] = k_cache[src] and v_cache[dst] = v_cache[src] for each (src, dst) in pairs.

    Args:
        k_cache, v_cache: [num_pages, page_size, H_kv, D], written in place.
        pairs: int64 [n, 2] tensor on the cache's device, or a sequence of (src, dst) page ids
            (what PageAllocator.writable returns). Every dst distinct and never also a src.
    """
    pairs = _checks.cache_copy_pages_(k_cache, v_cache, pairs)
    if pairs.numel():
        src, dst = pairs[:, 0], pairs[:, 1]
        k_cache[dst] = k_cache[src]
        v_cache[dst] = v_cache[src]
