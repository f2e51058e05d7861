"""block_attention cases.

A denoising step: the current block's Lq = 32 queries attend to the paged prefix (the committed
tokens, in a fragmented pool laid out as for cache_gather: [P, 16, H_kv, 128], a quarter more
pages than the rows use, in random order) and to the block's own k / v (the contiguous part),
with the full mask. A prefill: no cache, L queries over their own L keys with the staircase
(block-causal) mask. Values are random normal (never zeros): q . k / sqrt(D) ~ N(0, 1).
"""

from __future__ import annotations

import torch

from .. import ops, reference
from .core import DTYPES, HEAD_DIM, PAGE_SIZE, Case, Inputs, OpSpec, cache_pair, rand_values

LLADA_HEADS = (32, 32)  # LLaDA-8B: H_q = H_kv = 32, D = 128
DREAM_HEADS = (28, 4)  # Dream-7B (Qwen2.5-7B): H_q = 28, H_kv = 4 (GQA 7), D = 128


def _block_attention_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """B rows of Lq queries (Lq = 32 for a step); k / v [B, Lq, H_kv, D] are the block itself.
    prefix > 0: each row also sees `prefix` cached tokens on its own random pages. The lengths are
    fixed per case, so every input set the benchmark rotates over has the same work."""
    B, Lq, Hq, Hkv = (int(params[k]) for k in ("B", "Lq", "Hq", "Hkv"))
    prefix = int(params.get("prefix", 0))
    dtype = DTYPES[params.get("dtype", "bf16")]
    out: Inputs = {
        "q": rand_values(gen, (B, Lq, Hq, HEAD_DIM), dtype, device),
        "k": rand_values(gen, (B, Lq, Hkv, HEAD_DIM), dtype, device),
        "v": rand_values(gen, (B, Lq, Hkv, HEAD_DIM), dtype, device),
    }
    if prefix:
        need = -(-prefix // PAGE_SIZE)
        P = B * need * 5 // 4 + 1
        k_cache, v_cache = cache_pair(P, Hkv, dtype, device, gen)
        table = torch.randperm(P, generator=gen)[: B * need].view(B, need).to(torch.int32)
        out.update(
            k_cache=k_cache,
            v_cache=v_cache,
            block_table=table.to(device),
            cache_lens=torch.full((B,), prefix, dtype=torch.int32, device=device),
        )
    mask = params.get("mask", "full")
    if mask != "full":
        out.update(mask=mask, block_size=int(params["block_size"]))
    out["check"] = (
        False  # the per-step path: check=True reads the lengths and page ids back (a CUDA sync)
    )
    return out


def _reference_block_attention(*, check: bool = True, **kwargs):
    """The reference has no check flag: it always validates (and is never the per-step path)."""
    return reference.block_attention(**kwargs)


def block_attention_visible_keys(inputs: Inputs) -> torch.Tensor:
    """int64 [B, Lq] (on the CPU): how many keys query i of row b sees, exactly as the op's mask
    rule says (cache tokens at positions 0 .., then the valid k / v tokens; block_causal:
    reference.block_causal_mask)."""
    q, k = inputs["q"], inputs.get("k")
    B, Lq = q.shape[:2]
    zeros = torch.zeros(B, dtype=torch.int64)
    cache = inputs["cache_lens"].long().cpu() if inputs.get("cache_lens") is not None else zeros
    if inputs.get("kv_lens") is not None:
        kv = inputs["kv_lens"].long().cpu()
    else:
        kv = torch.full((B,), k.shape[1] if k is not None else 0, dtype=torch.int64)
    total = (cache + kv).unsqueeze(1).expand(B, Lq)
    if inputs.get("mask", "full") == "full":
        return total.clone()
    start = inputs["q_start"].long().cpu() if inputs.get("q_start") is not None else cache
    qpos = start.unsqueeze(1) + torch.arange(Lq)  # [B, Lq]
    kpos = torch.arange(int(total.max()) if total.numel() else 0)  # [Nk]
    see = reference.block_causal_mask(qpos.unsqueeze(2), kpos, int(inputs["block_size"]))
    return (see & (kpos < total.unsqueeze(2))).sum(dim=2)


def block_attention_kv_bytes(inputs: Inputs) -> int:
    """K and V read once per KV head: per row, the keys its last-seeing query needs."""
    elem = inputs["q"].element_size()
    keys = (
        int(block_attention_visible_keys(inputs).amax(dim=1).sum()) if inputs["q"].shape[1] else 0
    )
    Hkv = (inputs["k"] if inputs.get("k") is not None else inputs["k_cache"]).shape[2]
    return 2 * keys * Hkv * inputs["q"].shape[3] * elem


def _block_attention_bytes(inputs: Inputs) -> int:
    # K / V once per KV head (the GQA group shares the read), q read and out written once, plus
    # the block-table entries in use and the int32 length vectors.
    q = inputs["q"]
    nbytes = block_attention_kv_bytes(inputs) + 2 * q.numel() * q.element_size()
    if inputs.get("cache_lens") is not None:
        nbytes += 4 * int(((inputs["cache_lens"].long() + PAGE_SIZE - 1) // PAGE_SIZE).sum())
    nbytes += sum(
        4 * q.shape[0]
        for name in ("cache_lens", "kv_lens", "q_start")
        if inputs.get(name) is not None
    )
    return nbytes


def _block_attention_flops(inputs: Inputs) -> int:
    # Q K^T and P V: 2 * 2 * D per (query, visible key, query head); masked-out keys are not work.
    q = inputs["q"]
    return 4 * int(block_attention_visible_keys(inputs).sum()) * q.shape[2] * q.shape[3]


def _step_case(B: int, prefix: int, heads: tuple[int, int], dtype: str = "bf16") -> Case:
    name = (
        "LLaDA"
        if heads == LLADA_HEADS
        else "Dream"
        if heads == DREAM_HEADS
        else f"H{heads[0]}/{heads[1]}"
    )
    return Case(
        f"{name} step B={B} pre={prefix} {dtype}",
        {"B": B, "Lq": 32, "Hq": heads[0], "Hkv": heads[1], "prefix": prefix, "dtype": dtype},
    )


def _prefill_case(
    L: int, heads: tuple[int, int], dtype: str = "bf16", block_size: int = 32
) -> Case:
    name = (
        "LLaDA"
        if heads == LLADA_HEADS
        else "Dream"
        if heads == DREAM_HEADS
        else f"H{heads[0]}/{heads[1]}"
    )
    return Case(
        f"{name} prefill L={L} b={block_size} {dtype}",
        {
            "B": 1,
            "Lq": L,
            "Hq": heads[0],
            "Hkv": heads[1],
            "dtype": dtype,
            "mask": "block_causal",
            "block_size": block_size,
        },
    )


BLOCK_ATTENTION = OpSpec(
    name="block_attention",
    op=ops.block_attention,
    reference=_reference_block_attention,
    make_inputs=_block_attention_inputs,
    cases=(
        _step_case(1, 2048, LLADA_HEADS, "fp32"),
        _step_case(1, 2048, LLADA_HEADS, "bf16"),
        _step_case(1, 2048, DREAM_HEADS, "fp32"),
        _step_case(8, 512, DREAM_HEADS, "bf16"),
        # 8 heads, not LLaDA's 32: heads are independent work, and 32 take ~80 ms a call on the
        # 2-core CPU (the reference ~0.4 s).
        _prefill_case(1024, (8, 8), "fp32"),
    ),
    cuda_cases=tuple(
        _step_case(B, prefix, heads)
        for heads in (LLADA_HEADS, DREAM_HEADS)
        for B in (1, 8, 32)
        for prefix in (512, 2048, 8192)
    )
    + tuple(_prefill_case(L, heads) for heads in (LLADA_HEADS, DREAM_HEADS) for L in (1024, 4096)),
    outputs=lambda result, inputs: (result,),
    bytes_moved=_block_attention_bytes,
    flops=_block_attention_flops,
    # fp32: the kernel and the reference both accumulate in fp32, in different orders (measured
    # max error ~5e-7). bf16: both accumulate in fp32 and round the output once; where the two
    # fp32 values straddle a rounding boundary they differ by one bf16 ulp = 2^-7 = 0.8 % of |out|
    # (measured: exactly that, in ~0.1 % of the outputs). rtol 2e-2 allows 2.5 ulps (room for a
    # GPU kernel that rounds P to bf16 before P V); atol 1e-3 covers near-zero outputs, where the
    # summation-order error is not small relative to |out| (|out| ~ 0.02 typically).
    atol=1e-4,
    dtype_tol=((torch.bfloat16, 1e-3, 2e-2),),
    doc="softmax(q k^T / sqrt(D)) v of a block over a fragmented paged prefix + its own k / v "
    "(full mask), or a staircase (block-causal) prefill; GQA; timed with check=False (the "
    "per-step path: no read-back of lengths or page ids, which on CUDA is a device sync)",
)
