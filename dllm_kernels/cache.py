"""Paged KV cache for dLLM decoding: page bookkeeping, per-layer page pools, and the cache
policies of the published decoders (Fast-dLLM prefix / dual cache, block-diffusion commit, forked
prompts), built on the cache_write_ / cache_gather / cache_copy_pages_ ops.

    alloc = PageAllocator(num_pages, page_size)   # C++ (pybind11) when native, else the reference
    cache = PagedKVCache(num_layers, num_kv_heads, head_dim, num_pages=..., page_size=16,
                         dtype=torch.bfloat16, device="cuda")
    policy = CachePolicy(cache, prompt_lens, gen_length=256, block_length=32, mode="dual")
    plan = policy.step(k)                         # built once per block, reused by every step
    plan.write(cache, layer, k_new, v_new)        # in the model's attention layer: no host sync

Layout of a batch (what the runtime holds): prompts left-padded to the longest, P = max prompt
length, then gen_length generated columns, so column c of row b is token position c - (P - p_b)
and block k is the same columns [P + k * block_length, P + (k + 1) * block_length) in every row.
The cache stores real tokens only: position t of a row lives in slot pages[t // S] * S + t % S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _native, ops
from .reference.page_allocator import PageAllocator as ReferencePageAllocator

PageAllocator = _native.C.PageAllocator if _native.C is not None else ReferencePageAllocator


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host tensor -> device without a device sync (pinned staging, non_blocking)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class PagedKVCache:
    """The K/V page pools of every layer of one model and the PageAllocator they share.

    One allocation [num_layers, 2, num_pages, page_size, H_kv, D]; k(layer) / v(layer) are its
    [num_pages, page_size, H_kv, D] views (what the cache ops take). A sequence id owns pages in
    all layers at once; host-side bookkeeping only (no device sync).

    Args:
        num_layers, num_kv_heads, head_dim: the model's shape.
        num_pages, page_size: pool size (slot = page * page_size + offset).
        dtype, device: of the pools (float32 / bfloat16 / float16).
    """

    def __init__(
        self,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        num_pages: int,
        page_size: int = 16,
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str = "cpu",
    ):
        if min(num_layers, num_kv_heads, head_dim, num_pages, page_size) < 1:
            raise ValueError(
                "dllm_kernels.PagedKVCache: num_layers, num_kv_heads, head_dim, "
                "num_pages and page_size must be >= 1"
            )
        self.num_layers, self.num_kv_heads, self.head_dim = num_layers, num_kv_heads, head_dim
        self.num_pages, self.page_size = num_pages, page_size
        self.dtype, self.device = dtype, torch.device(device)
        self.storage = torch.zeros(
            (num_layers, 2, num_pages, page_size, num_kv_heads, head_dim),
            dtype=dtype,
            device=self.device,
        )
        self.allocator = PageAllocator(num_pages, page_size)
        self._seqs: dict[int, int] = {}  # seq id -> tokens reserved
        self._next_id = 0

    @classmethod
    def from_memory(
        cls,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        memory_bytes: int,
        page_size: int = 16,
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str = "cpu",
    ) -> "PagedKVCache":
        """As many pages as fit in memory_bytes (K and V of every layer)."""
        per_page = (
            2
            * num_layers
            * page_size
            * num_kv_heads
            * head_dim
            * torch.empty((), dtype=dtype).element_size()
        )
        return cls(
            num_layers,
            num_kv_heads,
            head_dim,
            num_pages=max(1, memory_bytes // per_page),
            page_size=page_size,
            dtype=dtype,
            device=device,
        )

    def k(self, layer: int) -> torch.Tensor:
        return self.storage[layer, 0]

    def v(self, layer: int) -> torch.Tensor:
        return self.storage[layer, 1]

    # ---- memory ----------------------------------------------------------------------------------
    @property
    def bytes_per_page(self) -> int:
        """K and V of one page in every layer."""
        return self.storage[:, :, 0].numel() * self.storage.element_size()

    @property
    def memory_bytes(self) -> int:
        return self.storage.numel() * self.storage.element_size()

    @property
    def used_bytes(self) -> int:
        return (self.num_pages - self.allocator.num_free_pages) * self.bytes_per_page

    @property
    def free_bytes(self) -> int:
        return self.allocator.num_free_pages * self.bytes_per_page

    # ---- sequences -------------------------------------------------------------------------------
    def new_seq_ids(self, n: int) -> list[int]:
        """n fresh sequence ids (never used by this cache)."""
        ids = list(range(self._next_id, self._next_id + n))
        self._next_id += n
        return ids

    def reserve(self, seq_ids, num_tokens) -> None:
        """Grow each sequence to hold num_tokens tokens (an int or one per sequence). All or
        nothing: out of pages raises with the needed and free counts and reserves nothing."""
        seq_ids = list(seq_ids)
        counts = (
            [int(num_tokens)] * len(seq_ids)
            if isinstance(num_tokens, int)
            else [int(n) for n in num_tokens]
        )
        if len(counts) != len(seq_ids):
            raise ValueError(
                f"dllm_kernels.PagedKVCache.reserve: {len(counts)} token counts for "
                f"{len(seq_ids)} sequences"
            )
        S = self.page_size
        need = sum(
            max(0, -(-n // S) - len(self.allocator.pages(s)) if s in self._seqs else -(-n // S))
            for s, n in zip(seq_ids, counts)
        )
        free = self.allocator.num_free_pages
        if need > free:
            raise RuntimeError(
                f"dllm_kernels.PagedKVCache.reserve: out of pages: needs {need}, "
                f"{free} free of {self.num_pages} ({self.free_bytes} bytes free)"
            )
        for s, n in zip(seq_ids, counts):
            self.allocator.reserve(s, n)
            self._seqs[s] = max(self._seqs.get(s, 0), n)

    def pages(self, seq_id: int) -> list[int]:
        return self.allocator.pages(seq_id)

    def fork(self, src_seq_id: int, dst_seq_ids) -> None:
        """Each dst shares all of src's pages (no copy; copy-on-write when written)."""
        for d in dst_seq_ids:
            self.allocator.fork(src_seq_id, d)
            self._seqs[d] = self._seqs[src_seq_id]

    def make_writable(self, seq_id: int, start: int, end: int) -> int:
        """Makes the pages covering token positions [start, end) of seq private, copying shared
        ones in every layer; returns the number of pages copied."""
        pairs = self.allocator.writable(seq_id, start, end)
        if pairs:
            t = _to_device(torch.tensor(pairs, dtype=torch.int64), self.device)
            for layer in range(self.num_layers):
                ops.cache_copy_pages_(self.k(layer), self.v(layer), t)
        return len(pairs)

    def free(self, seq_ids) -> None:
        for s in seq_ids:
            self.allocator.free(s)
            del self._seqs[s]

    @property
    def seq_ids(self) -> list[int]:
        return list(self._seqs)

    # ---- plans ---------------------------------------------------------------------------------
    def plan(
        self,
        seq_ids,
        pad,
        columns: tuple[int, int],
        *,
        write=None,
        cache_lens,
        attend_from: int | None = 0,
        mask: str = "full",
        block_size: int | None = None,
    ) -> "CachePlan":
        """Device tensors for model calls that feed batch columns [c0, c1) of left-padded rows.

        Args:
            seq_ids: one per row (None: a row that takes no part: no writes, nothing cached).
            pad: per row, its left padding (column c is position c - pad).
            columns: (c0, c1), the fed columns (the same for every row).
            write: per row (lo, hi): write the K/V of fed positions lo <= t < hi (None: no writes).
            cache_lens: per row, the cached tokens (positions 0 ..) the fed queries attend to.
            attend_from: the fed tokens from this offset on are also attended, after the cached
                ones (their positions must continue at cache_lens); None: only the cache.
            mask, block_size: the attention mask.
        """
        c0, c1 = columns
        B, S = len(seq_ids), self.page_size
        pad_t = torch.tensor(list(pad), dtype=torch.int64)
        pos = torch.arange(c0, c1, dtype=torch.int64).unsqueeze(0) - pad_t.unsqueeze(1)  # [B, n]
        valid = pos >= 0
        page_lists = [self.allocator.pages(s) if s is not None else [] for s in seq_ids]
        max_pages = max([len(p) for p in page_lists] + [1])
        table = torch.zeros((B, max_pages), dtype=torch.int32)
        for b, p in enumerate(page_lists):
            table[b, : len(p)] = torch.tensor(p, dtype=torch.int32)
        slots = None
        if write is not None:
            lo = torch.tensor(
                [w[0] if s is not None else 0 for w, s in zip(write, seq_ids)]
            ).unsqueeze(1)
            hi = torch.tensor(
                [w[1] if s is not None else 0 for w, s in zip(write, seq_ids)]
            ).unsqueeze(1)
            pc = pos.clamp(0, max_pages * S - 1)
            slots = table.long().gather(1, pc // S) * S + pc % S
            slots = torch.where((pos >= lo) & (pos < hi), slots, torch.full_like(slots, -1))
            for b, s in enumerate(seq_ids):  # never write past what the row reserved
                if s is not None and int(hi[b]) > len(page_lists[b]) * S:
                    raise ValueError(
                        f"dllm_kernels.PagedKVCache.plan: row {b} writes up to position "
                        f"{int(hi[b])} but holds {len(page_lists[b]) * S} tokens"
                    )
        lens = [int(c) if s is not None else 0 for c, s in zip(cache_lens, seq_ids)]
        return CachePlan(
            columns=(c0, c1),
            positions=_to_device(pos.clamp(min=0), self.device),
            valid=_to_device(valid, self.device),
            slot_mapping=_to_device(slots, self.device) if slots is not None else None,
            block_table=_to_device(table, self.device),
            cache_lens=_to_device(torch.tensor(lens, dtype=torch.int32), self.device),
            q_start=_to_device((c0 - pad_t).to(torch.int32), self.device),
            max_cache_len=max(lens + [0]),
            attend_from=attend_from,
            mask=mask,
            block_size=block_size,
        )


@dataclass
class CachePlan:
    """What a model call needs from the cache, as device tensors built on the host once (per
    block) and reused by every step: no device -> host sync on the per-step path.

    columns: (c0, c1) fed batch columns; positions int64 [B, c1 - c0] (RoPE positions, 0 where
    padding), valid bool [B, c1 - c0] (a real token); slot_mapping int64 [B, c1 - c0] or None
    (where each fed token's K/V is written, -1 = not written); block_table int32 [B, max_pages],
    cache_lens int32 [B] (cached tokens the queries attend to); q_start int32 [B] (position of fed
    column c0: negative for left padding); attend_from: fed tokens [attend_from:] are attended
    too, after the cached ones (None: only the cache, e.g. the dual cache whose fresh K/V were
    written first); mask / block_size: the attention mask ("full" or "block_causal").

    The model-side order per attention layer is: write (if slot_mapping), then attend.
    """

    columns: tuple[int, int]
    positions: torch.Tensor
    valid: torch.Tensor
    slot_mapping: torch.Tensor | None
    block_table: torch.Tensor
    cache_lens: torch.Tensor
    q_start: torch.Tensor
    max_cache_len: int
    attend_from: int | None = 0
    mask: str = "full"
    block_size: int | None = None

    def write(self, cache: PagedKVCache, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Writes the fed tokens' K/V [B, c1 - c0, H_kv, D] of one layer into their slots."""
        if self.slot_mapping is not None:
            ops.cache_write_(cache.k(layer), cache.v(layer), k, v, self.slot_mapping, check=False)

    def gather(self, cache: PagedKVCache, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The attended cache part of one layer, [B, max_cache_len, H_kv, D], zero padded (for the
        reference attention path and export; the fused attention reads the pages in place)."""
        return ops.cache_gather(
            cache.k(layer), cache.v(layer), self.block_table, self.cache_lens, self.max_cache_len
        )


class CachePolicy:
    """The cache policy of one batched dLLM generation, as per-block plans.

    mode:
      "prefix" (Fast-dLLM v1 prefix cache): at the start of block k a full forward (refresh(k))
          writes the K/V of positions [0, s_k) (prompt + finished blocks; s_k = p_b + k * bl) and
          attends to them + the fed block and suffix; each step (step(k)) feeds the block and the
          suffix, writes nothing and attends to the cached prefix + itself.
      "dual" (Fast-dLLM v1 dual cache): refresh(k) writes every position [0, p_b + gen_length)
          and attends to the cache; each step feeds only block k, overwrites the block's slots in
          place with its fresh K/V, then attends to the whole cache (attend_from=None). Refresh at
          each block start, and every refresh_interval steps if given (refresh_due). A refresh
          every step is an uncached full forward (how the runtime runs cache="none").
      "block" (block diffusion: BD3-LM, Fast-dLLM v2, SDAR): prefill() writes the prompt with the
          staircase (block-causal) mask; each step feeds block k and attends to the cache [0, s_k) +
          itself; commit(k) feeds the finished block once and appends its K/V. Pages grow per
          block; release(rows) frees finished rows mid-batch.
      "none" (no reuse: LLaDA): every step is a full forward, run as a dual refresh (writes every
          position, attends to the cache).
    The runtime drives every mode through the same three calls: plans_before() (forwards before
    the first block), step_plan(k, s) (the forward of step s of block k) and
    plans_after_block(k) (forwards once block k is decoded).
    prompt_cached=True (block mode): the rows' sequences already hold the prompt's K/V, e.g. forked
    from one prefilled prompt (PagedKVCache.fork, n samples per prompt: shared pages, no copy);
    prefill() then writes nothing, and commits copy a shared page only when they write into it.

    Args:
        cache: the PagedKVCache.
        prompt_lens: real prompt length of each row (ints); rows are left-padded to the longest.
        gen_length, block_length: generated tokens per row and block size (gen_length a multiple).
        mode: "prefix" | "dual" | "block".
        seq_ids: sequence ids of the rows (default: fresh ones; their pages are reserved here).
        refresh_interval: dual / prefix: also refresh after this many steps within a block.
    """

    MODES = ("none", "prefix", "dual", "block")

    def __init__(
        self,
        cache: PagedKVCache,
        prompt_lens,
        gen_length: int,
        block_length: int,
        mode: str,
        *,
        seq_ids=None,
        refresh_interval: int | None = None,
        prompt_cached: bool = False,
    ):
        if mode not in self.MODES:
            raise ValueError(
                f"dllm_kernels.CachePolicy: mode must be one of {list(self.MODES)}, got {mode!r}"
            )
        if block_length < 1 or gen_length % block_length:
            raise ValueError(
                f"dllm_kernels.CachePolicy: gen_length ({gen_length}) must be a multiple of "
                f"block_length ({block_length})"
            )
        if refresh_interval is not None and refresh_interval < 1:
            raise ValueError(
                f"dllm_kernels.CachePolicy: refresh_interval must be >= 1, got {refresh_interval}"
            )
        if prompt_cached and mode != "block":
            raise ValueError(
                "dllm_kernels.CachePolicy: prompt_cached needs mode='block' (prefix and "
                "dual refreshes rewrite the prompt's K/V)"
            )
        self.cache, self.mode = cache, mode
        self.prompt_lens = [int(p) for p in prompt_lens]
        self.B = len(self.prompt_lens)
        self.P = max(self.prompt_lens + [0])
        self.pad = [self.P - p for p in self.prompt_lens]
        self.gen_length, self.block_length = gen_length, block_length
        self.num_blocks = gen_length // block_length
        self.refresh_interval = refresh_interval
        self.prompt_cached = prompt_cached
        if seq_ids is None:
            seq_ids = cache.new_seq_ids(self.B)
        self.seq_ids: list[int | None] = list(seq_ids)
        if len(self.seq_ids) != self.B:
            raise ValueError(
                f"dllm_kernels.CachePolicy: {len(self.seq_ids)} seq_ids for {self.B} prompts"
            )
        self.total = [p + gen_length for p in self.prompt_lens]
        first = {
            "prefix": [t - block_length for t in self.total],
            "dual": self.total,
            "none": self.total,
            "block": self.prompt_lens,
        }[mode]
        cache.reserve(self.seq_ids, [max(0, n) for n in first])
        self._plans: dict[tuple, CachePlan] = {}

    def _start(self, k: int) -> list[int]:
        """s_k per row: the first position of block k."""
        return [p + k * self.block_length for p in self.prompt_lens]

    def block_columns(self, k: int) -> tuple[int, int]:
        c0 = self.P + k * self.block_length
        return c0, c0 + self.block_length

    def _plan(self, key, **kw) -> CachePlan:
        if key not in self._plans:
            self._plans[key] = self.cache.plan(self.seq_ids, self.pad, **kw)
        return self._plans[key]

    # ---- what the runtime calls, the same for every mode
    # ------------------------------------------
    def plans_before(self) -> list:
        """Forwards before the first block whose logits nobody reads (block: the prefill)."""
        return [self.prefill()] if self.mode == "block" else []

    def step_plan(self, k: int, s: int) -> CachePlan:
        """The forward of step s of block k: a refresh where the mode asks for one (every step
        in "none"; the block's first step, and every refresh_interval steps, in prefix / dual),
        else a cached step."""
        if self.mode == "none" or (
            self.mode in ("prefix", "dual") and (s == 0 or self.refresh_due(s))
        ):
            return self.refresh(k)
        return self.step(k)

    def plans_after_block(self, k: int) -> list:
        """Forwards once block k is decoded, logits unread (block: the commit of its K/V)."""
        return [self.commit(k)] if self.mode == "block" else []

    # ---- prefix / dual
    # -----------------------------------------------------------------------------
    def refresh(self, k: int) -> CachePlan:
        """Full forward over every column at the start of block k (or mid-block when refresh_due):
        writes the prefix [0, s_k) ("prefix") or everything ("dual"); attends to the fed tokens."""
        self._need("none", "prefix", "dual", what="refresh")
        if self.mode == "prefix":  # cache the prefix, attend to it + the fed block and suffix
            s = self._start(k)
            return self._plan(
                ("refresh", k),
                columns=(0, self.P + self.gen_length),
                write=[(0, h) for h in s],
                cache_lens=s,
                attend_from=self.block_columns(k)[0],
            )
        return self._plan(
            ("refresh", k),
            columns=(0, self.P + self.gen_length),
            write=[(0, h) for h in self.total],
            cache_lens=self.total,
            attend_from=None,
        )

    def refresh_due(self, step_in_block: int) -> bool:
        """Dual / prefix with refresh_interval: refresh before step `step_in_block` (> 0) of a
        block."""
        r = self.refresh_interval
        return r is not None and step_in_block > 0 and step_in_block % r == 0

    # ---- every mode ------------------------------------------------------------------------------
    def step(self, k: int) -> CachePlan:
        """A denoising step in block k (see the class doc for what each mode feeds and attends)."""
        self._need("prefix", "dual", "block", what="step")
        s = self._start(k)
        c0, c1 = self.block_columns(k)
        if self.mode == "prefix":
            return self._plan(("step", k), columns=(c0, self.P + self.gen_length), cache_lens=s)
        if self.mode == "dual":
            return self._plan(
                ("step", k),
                columns=(c0, c1),
                write=[(a, a + self.block_length) for a in s],
                cache_lens=self.total,
                attend_from=None,
            )
        return self._plan(("step", k), columns=(c0, c1), cache_lens=s)

    # ---- block diffusion
    # ---------------------------------------------------------------------------
    def prefill(self) -> CachePlan:
        """Block mode: the prompt columns [0, P) with the staircase mask, written into the cache
        (nothing written if prompt_cached)."""
        self._need("block", what="prefill")
        write = None if self.prompt_cached else [(0, p) for p in self.prompt_lens]
        return self._plan(
            ("prefill",),
            columns=(0, self.P),
            write=write,
            cache_lens=self.prompt_lens,
            attend_from=None,
            mask="block_causal",
            block_size=self.block_length,
        )

    def commit(self, k: int) -> CachePlan:
        """Block mode: feed finished block k once and append its K/V (pages grow here; a page
        still shared with a forked prompt is copied first)."""
        self._need("block", what="commit")
        s = self._start(k)
        live = [(sid, a) for sid, a in zip(self.seq_ids, s) if sid is not None]
        self.cache.reserve([sid for sid, _ in live], [a + self.block_length for _, a in live])
        for sid, a in live:
            self.cache.make_writable(sid, a, a + self.block_length)
        c0, c1 = self.block_columns(k)
        plan = self.cache.plan(
            self.seq_ids,
            self.pad,
            columns=(c0, c1),
            write=[(a, a + self.block_length) for a in s],
            cache_lens=s,
        )
        self._plans.pop(("step", k + 1), None)  # the next block's table grew
        return plan

    def release(self, rows) -> None:
        """Frees the pages of finished rows (e.g. that produced EOS); later plans skip them."""
        for b in rows:
            if self.seq_ids[b] is not None:
                self.cache.free([self.seq_ids[b]])
                self.seq_ids[b] = None
        self._plans.clear()

    def close(self) -> None:
        """Frees every row's pages."""
        self.release(range(self.B))

    def subset(self, rows) -> "CachePolicy":
        """A policy for only `rows` (e.g. the rows still generating), keeping their pages and the
        batch's column layout; the other rows' pages are freed. This object must not be used
        afterwards."""
        rows = list(rows)
        keep = set(rows)
        self.release([b for b in range(self.B) if b not in keep])
        new = object.__new__(CachePolicy)
        new.__dict__.update(self.__dict__)
        new.prompt_lens = [self.prompt_lens[b] for b in rows]
        new.pad = [self.pad[b] for b in rows]
        new.seq_ids = [self.seq_ids[b] for b in rows]
        new.total = [self.total[b] for b in rows]
        new.B = len(rows)
        new._plans = {}
        self.seq_ids = [None] * self.B  # ownership moved
        return new

    def _need(self, *modes, what: str) -> None:
        if self.mode not in modes:
            raise RuntimeError(
                f"dllm_kernels.CachePolicy.{what}: not a step of mode {self.mode!r} (only "
                f"{list(modes)})"
            )


__all__ = ["CachePlan", "CachePolicy", "PageAllocator", "PagedKVCache", "ReferencePageAllocator"]
