"""dllm-kernels: native kernels and runtime for masked-diffusion language models.

    import dllm_kernels as dk
    dk.backend_info()                     # compiled ops loaded? CUDA kernels? built for what?
    n = dk.num_transfer_tokens(x == mask_id, steps)
    dk.commit_(x, x0, transfer)

The ops live in dllm_kernels.ops (re-exported here), their pure-PyTorch specification in
dllm_kernels.reference, and `python -m dllm_kernels` verifies and benchmarks them.
"""

from . import models, reference, tasks
from ._native import backend_info
from .cache import CachePlan, CachePolicy, PageAllocator, PagedKVCache
from .ops import (
    block_attention,
    cache_copy_pages_,
    cache_gather,
    cache_write_,
    commit_,
    denoise_and_select,
    denoise_step,
    num_transfer_tokens,
    select_transfer,
)
from .runtime import GenerateOutput, generate

__version__ = "0.1.0"
__all__ = [
    "CachePlan",
    "GenerateOutput",
    "generate",
    "CachePolicy",
    "PageAllocator",
    "PagedKVCache",
    "backend_info",
    "block_attention",
    "cache_copy_pages_",
    "cache_gather",
    "cache_write_",
    "commit_",
    "denoise_and_select",
    "denoise_step",
    "num_transfer_tokens",
    "reference",
    "select_transfer",
    "__version__",
]
