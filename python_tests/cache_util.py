"""Shared inputs for the paged-KV-cache tests: random caches, tokens and slot mappings."""

import torch

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def rand(shape, dtype, device, gen):
    """Random values (never zeros) in `dtype`."""
    return (torch.randn(shape, generator=gen) + 3.0).to(dtype).to(device)


def make_cache(P, S, H, D, dtype, device, gen):
    return rand((P, S, H, D), dtype, device, gen), rand((P, S, H, D), dtype, device, gen)


def unique_slots(n, capacity, gen, pad=0.0):
    """n distinct slots in [0, capacity), a fraction `pad` of them replaced by -1."""
    slots = torch.randperm(capacity, generator=gen)[:n]
    if pad:
        slots[torch.rand(n, generator=gen) < pad] = -1
    return slots
