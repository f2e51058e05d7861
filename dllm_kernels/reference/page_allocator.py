"""Reference PageAllocator: the host-side page bookkeeping of a paged KV cache, in plain Python.

The C++ class (csrc/include/dllm/page_allocator.h, bound as dllm_kernels.PageAllocator) must
behave exactly like this one, including which physical page each call hands out, so that the
property tests can compare the two operation by operation. It is also the fallback when the
native extension is missing.

Pages are handed out lowest id first (a free list used as a stack). A sequence owns an ordered
list of pages; fork makes a second sequence share them (reference counts); writable makes the
pages covering a token range private again (copy-on-write) and returns the copies to perform.
"""

from __future__ import annotations


def _err(method: str, msg: str) -> str:
    return f"dllm_kernels.PageAllocator.{method}: {msg}"


class PageAllocator:
    """alloc = PageAllocator(num_pages, page_size); slot = page * page_size + offset."""

    def __init__(self, num_pages: int, page_size: int):
        if num_pages < 1 or page_size < 1:
            raise ValueError(
                _err(
                    "__init__",
                    f"num_pages and page_size must be >= 1, got {num_pages}, {page_size}",
                )
            )
        self.num_pages, self.page_size = int(num_pages), int(page_size)
        self._free = list(range(self.num_pages - 1, -1, -1))  # pop() gives the lowest id first
        self._ref = [0] * self.num_pages
        self._seqs: dict[int, list[int]] = {}

    @property
    def num_free_pages(self) -> int:
        return len(self._free)

    def _take(self, n: int, method: str) -> list[int]:
        if n > len(self._free):
            raise RuntimeError(
                _err(method, f"out of pages: needs {n}, {len(self._free)} free of {self.num_pages}")
            )
        pages = [self._free.pop() for _ in range(n)]
        for p in pages:
            self._ref[p] = 1
        return pages

    def _release(self, page: int) -> None:
        self._ref[page] -= 1
        if self._ref[page] == 0:
            self._free.append(page)

    def _get(self, seq_id: int, method: str) -> list[int]:
        if seq_id not in self._seqs:
            raise KeyError(_err(method, f"unknown sequence id {seq_id}"))
        return self._seqs[seq_id]

    def reserve(self, seq_id: int, num_tokens: int) -> None:
        """Make seq_id hold pages for num_tokens tokens in total (creates it; never shrinks)."""
        if num_tokens < 0:
            raise ValueError(_err("reserve", f"num_tokens must be >= 0, got {num_tokens}"))
        pages = self._seqs.get(seq_id, [])
        need = -(-num_tokens // self.page_size) - len(pages)
        new = self._take(max(need, 0), "reserve")
        self._seqs[seq_id] = pages + new

    def pages(self, seq_id: int) -> list[int]:
        return list(self._get(seq_id, "pages"))

    def fork(self, src_seq_id: int, dst_seq_id: int) -> None:
        """dst shares all of src's pages (reference counted)."""
        src = self._get(src_seq_id, "fork")
        if dst_seq_id in self._seqs:
            raise ValueError(_err("fork", f"destination sequence id {dst_seq_id} already exists"))
        for p in src:
            self._ref[p] += 1
        self._seqs[dst_seq_id] = list(src)

    def free(self, seq_id: int) -> None:
        for p in self._get(seq_id, "free"):
            self._release(p)
        del self._seqs[seq_id]

    def writable(self, seq_id: int, start: int, end: int) -> list[tuple[int, int]]:
        """Makes the pages covering tokens [start, end) private; returns (src, dst) page copies."""
        pages = self._get(seq_id, "writable")
        if not 0 <= start <= end <= len(pages) * self.page_size:
            raise ValueError(
                _err(
                    "writable",
                    f"token range [{start}, {end}) outside the {len(pages) * self.page_size} "
                    "reserved tokens",
                )
            )
        if start == end:
            return []
        first, last = start // self.page_size, (end - 1) // self.page_size
        shared = [i for i in range(first, last + 1) if self._ref[pages[i]] > 1]
        new = self._take(len(shared), "writable")
        copies = []
        for i, dst in zip(shared, new):
            copies.append((pages[i], dst))
            self._ref[pages[i]] -= 1  # still > 0: another sequence holds it
            pages[i] = dst
        return copies

    def refcount(self, page: int) -> int:
        if not 0 <= page < self.num_pages:
            raise IndexError(_err("refcount", f"page {page} outside [0, {self.num_pages})"))
        return self._ref[page]
