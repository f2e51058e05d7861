"""What every registry entry is made of: the Case and OpSpec types and the input helpers the
per-op modules share (random tokens, masks, values, paged-cache pools)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

Inputs = dict[str, Any]

LLADA_VOCAB = 126_464
LLADA_MASK_ID = 126_336
DTYPES = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}  # case "dtype" names

# Paged KV cache geometry of every cache / attention case: pages of 16 tokens, head_dim 128.
PAGE_SIZE = 16
HEAD_DIM = 128


@dataclass(frozen=True)
class Case:
    """One input configuration: a label for tables and the parameters make_inputs reads."""

    label: str
    params: dict[str, int | float]


@dataclass(frozen=True)
class OpSpec:
    name: str
    op: Callable[..., Any]  # the public op (dllm_kernels.ops.*)
    reference: Callable[..., Any]  # its specification (dllm_kernels.reference.*)
    make_inputs: Callable[[dict, torch.device, torch.Generator], Inputs]  # kwargs for op/reference
    cases: tuple[Case, ...]  # default, realistic shapes
    outputs: Callable[[Any, Inputs], tuple[torch.Tensor, ...]]  # what to compare after a call
    bytes_moved: Callable[[Inputs], int]  # fewest bytes a call must read + write
    flops: Callable[[Inputs], int] | None = None  # None: a memory-bound op with no FLOP model
    mutates: tuple[str, ...] = ()  # inputs written in place (cloned before each verify call)
    cuda_cases: tuple[Case, ...] = ()  # extra, larger cases timed/verified only on CUDA
    atol: float = 0.0  # float outputs: |a - b| <= atol + rtol * |b|; ints exact
    rtol: float = 0.0
    doc: str = ""
    # Per output dtype (dtype, atol, rtol), overriding atol / rtol for outputs of that dtype: an op
    # whose output is in the input's dtype needs a looser bound for bf16 than for fp32.
    dtype_tol: tuple[tuple[torch.dtype, float, float], ...] = ()
    # Indices into `cases` that the default main job (`python -m dllm_kernels` without --full)
    # runs: one realistic shape per op keeps verify + bench within ~3 minutes on 2 CPU cores.
    main_cases: tuple[int, ...] = (0,)

    def tolerance(self, dtype: torch.dtype) -> tuple[float, float]:
        """(atol, rtol) for an output of this dtype."""
        for d, atol, rtol in self.dtype_tol:
            if d == dtype:
                return atol, rtol
        return self.atol, self.rtol

    def cases_for(self, device: torch.device, full: bool = True) -> tuple[Case, ...]:
        """The cases to run on `device`: every case (plus cuda_cases on CUDA) when full, else
        the main job's (main_cases)."""
        if not full:
            return tuple(self.cases[i] for i in self.main_cases)
        return self.cases + (self.cuda_cases if device.type == "cuda" else ())

    def call(self, fn: Callable[..., Any], inputs: Inputs) -> Any:
        return fn(**inputs)


def randint(gen: torch.Generator, high: int, shape, device) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=gen, dtype=torch.int64).to(device)


def rand_mask(gen: torch.Generator, p: float, shape, device) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) < p).to(device)


def rand_values(gen: torch.Generator, shape, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.randn(shape, generator=gen).to(dtype).to(device)


def cache_pair(
    P: int, H: int, dtype: torch.dtype, device, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        rand_values(gen, (P, PAGE_SIZE, H, HEAD_DIM), dtype, device),
        rand_values(gen, (P, PAGE_SIZE, H, HEAD_DIM), dtype, device),
    )


def token_bytes(cache: torch.Tensor) -> int:
    """Bytes of one token of one cache: H_kv * D * element size."""
    return cache.shape[2] * cache.shape[3] * cache.element_size()
