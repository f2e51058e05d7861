"""Pure-PyTorch reference ops: the specification every native kernel is tested against.

Readable first, fast never. Each function validates its arguments like the native op does, so the
reference is also the fallback when the native extension is not available.
"""

from .block_attention import block_attention, block_causal_mask
from .cache_copy_pages import cache_copy_pages_
from .cache_gather import cache_gather
from .cache_write import cache_write_
from .commit import commit_
from .denoise_and_select import denoise_and_select
from .denoise_step import denoise_step
from .num_transfer_tokens import num_transfer_tokens
from .page_allocator import PageAllocator
from .select_transfer import select_transfer

__all__ = [
    "PageAllocator",
    "block_attention",
    "block_causal_mask",
    "cache_copy_pages_",
    "cache_gather",
    "cache_write_",
    "commit_",
    "denoise_and_select",
    "denoise_step",
    "num_transfer_tokens",
    "select_transfer",
]
