"""Paged KV cache: host-side page bookkeeping (PageAllocator).

PageAllocator is the C++ class from dllm_kernels._C (pybind11) when the extension is loaded, else
the pure-Python reference with identical behaviour (dllm_kernels.reference.PageAllocator).

    alloc = PageAllocator(num_pages, page_size)
    alloc.reserve(seq_id, num_tokens)    # grow seq to hold num_tokens tokens
    alloc.pages(seq_id)                  # physical page ids, logical order
    alloc.fork(src, dst)                 # share a prompt's pages (reference counted)
    alloc.writable(seq_id, start, end)   # copy-on-write: [(src_page, dst_page), ...] to copy
    alloc.free(seq_id)                   # unknown / already freed ids raise KeyError
    alloc.num_free_pages

Out of pages raises RuntimeError with the needed and free counts and changes nothing.
"""

from __future__ import annotations

from . import _native
from .reference.page_allocator import PageAllocator as ReferencePageAllocator

PageAllocator = _native.C.PageAllocator if _native.C is not None else ReferencePageAllocator

__all__ = ["PageAllocator", "ReferencePageAllocator"]
