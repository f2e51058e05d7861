"""The op registry: one entry per op, used by `python -m dllm_kernels verify|bench`, the
benchmarks/ scripts and the tests.

Each OpSpec says how to build realistic random inputs for a named case, how to call the op and its
reference, which outputs to compare (and how strictly), and how many bytes / FLOPs a call must
move at least (the napkin model the benchmark turns into GB/s and % of peak).

Adding an op: write its reference, kernels and ops.py wrapper, then append an OpSpec to SPECS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import ops, reference

Inputs = dict[str, Any]

LLADA_VOCAB = 126_464
LLADA_MASK_ID = 126_336


@dataclass(frozen=True)
class Case:
    """One input configuration: a label for tables and the parameters make_inputs reads."""

    label: str
    params: dict[str, int | float]


@dataclass(frozen=True)
class OpSpec:
    name: str
    op: Callable[..., Any]          # the public op (dllm_kernels.ops.*)
    reference: Callable[..., Any]   # its specification (dllm_kernels.reference.*)
    make_inputs: Callable[[dict, torch.device, torch.Generator], Inputs]  # kwargs for op/reference
    cases: tuple[Case, ...]         # default, realistic shapes
    outputs: Callable[[Any, Inputs], tuple[torch.Tensor, ...]]  # what to compare after a call
    bytes_moved: Callable[[Inputs], int]  # fewest bytes a call must read + write
    flops: Callable[[Inputs], int] | None = None  # None: a memory-bound op with no FLOP model
    mutates: tuple[str, ...] = ()   # inputs written in place (cloned before each verify call)
    cuda_cases: tuple[Case, ...] = ()  # extra, larger cases timed/verified only on CUDA
    atol: float = 0.0               # float outputs: |a - b| <= atol + rtol * |b|; ints exact
    rtol: float = 0.0
    doc: str = ""
    # Per output dtype (dtype, atol, rtol), overriding atol / rtol for outputs of that dtype: an op
    # whose output is in the input's dtype needs a looser bound for bf16 than for fp32.
    dtype_tol: tuple[tuple[torch.dtype, float, float], ...] = ()

    def tolerance(self, dtype: torch.dtype) -> tuple[float, float]:
        """(atol, rtol) for an output of this dtype."""
        for d, atol, rtol in self.dtype_tol:
            if d == dtype:
                return atol, rtol
        return self.atol, self.rtol

    def call(self, fn: Callable[..., Any], inputs: Inputs) -> Any:
        return fn(**inputs)


def _randint(gen: torch.Generator, high: int, shape, device) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=gen, dtype=torch.int64).to(device)


def _rand_mask(gen: torch.Generator, p: float, shape, device) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) < p).to(device)


# ---- commit_ ---------------------------------------------------------------------------------------

def _commit_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    x = _randint(gen, LLADA_VOCAB, (B, L), device)
    x[_rand_mask(gen, 0.5, (B, L), device)] = LLADA_MASK_ID  # half the positions still masked
    return {
        "x": x,
        "x0": _randint(gen, LLADA_VOCAB, (B, L), device),
        "transfer": _rand_mask(gen, float(params.get("p", 0.25)), (B, L), device),
    }


def _commit_bytes(inputs: Inputs) -> int:
    # Read transfer, read x0 and write x: at the default f = 0.25 nearly every 32-byte sector of
    # x / x0 holds a transferred position, so whole rows move (see csrc/include/dllm/commit.h).
    x = inputs["x"]
    return x.numel() * (1 + 2 * x.element_size())


COMMIT = OpSpec(
    name="commit_",
    op=ops.commit_,
    reference=reference.commit_,
    make_inputs=_commit_inputs,
    cases=(
        Case("B=1 L=320 (LLaDA 64+256)", {"B": 1, "L": 320}),
        Case("B=8 L=2048", {"B": 8, "L": 2048}),
        Case("B=64 L=4096", {"B": 64, "L": 4096}),
    ),
    outputs=lambda result, inputs: (inputs["x"],),
    bytes_moved=_commit_bytes,
    mutates=("x",),
    doc="x[transfer] = x0[transfer], in place",
)


# ---- num_transfer_tokens ----------------------------------------------------------------------------

def _ntt_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    return {"mask_index": _rand_mask(gen, 0.7, (B, L), device), "steps": int(params["steps"])}


def _ntt_bytes(inputs: Inputs) -> int:
    m = inputs["mask_index"]
    return m.numel() * m.element_size() + m.shape[0] * inputs["steps"] * 8


NUM_TRANSFER_TOKENS = OpSpec(
    name="num_transfer_tokens",
    op=ops.num_transfer_tokens,
    reference=reference.num_transfer_tokens,
    make_inputs=_ntt_inputs,
    cases=(
        Case("B=1 L=32 steps=8 (one block)", {"B": 1, "L": 32, "steps": 8}),
        Case("B=8 L=256 steps=128", {"B": 8, "L": 256, "steps": 128}),
        Case("B=64 L=4096 steps=256", {"B": 64, "L": 4096, "steps": 256}),
    ),
    outputs=lambda result, inputs: (result,),
    bytes_moved=_ntt_bytes,
    doc="LLaDA linear schedule: tokens to commit per step",
)


# ---- denoise_step / select_transfer / denoise_and_select ----------------------------------------------

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DENOISE_KEYS = ("temperature", "top_k", "top_p", "confidence", "confidence_source", "seed")


def _denoise_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """A fresh block: every position masked (the first step of a block is the largest).
    params "cfg": s adds CFG's unconditional logits (cfg_scale s); "eligible": 1 makes a
    uniform-noise canvas (DiffusionGemma: random tokens, no mask, all positions eligible)."""
    B, L, V = int(params["B"]), int(params["L"]), int(params["V"])
    dtype = _DTYPES[params.get("dtype", "bf16")]
    logits = (torch.randn(B, L, V, generator=gen) * 3).to(dtype)
    x = torch.full((B, L), LLADA_MASK_ID, dtype=torch.int64)
    x[:, ::4] = torch.randint(0, V, (B, (L + 3) // 4), generator=gen)  # a quarter already decoded
    out = {"logits": logits.to(device), "x": x.to(device), "mask_id": LLADA_MASK_ID}
    if params.get("eligible"):
        out["x"] = torch.randint(0, V, (B, L), generator=gen).to(device)
        out["eligible"] = torch.ones(B, L, dtype=torch.bool, device=device)
        out["mask_id"] = None
    if params.get("cfg"):
        out["uncond_logits"] = (torch.randn(B, L, V, generator=gen) * 3).to(dtype).to(device)
        out["cfg_scale"] = float(params["cfg"])
    out.update({k: params[k] for k in _DENOISE_KEYS if k in params})
    if float(params.get("temperature", 0)) > 0 or params.get("confidence") == "random":
        out.setdefault("seed", 1234)
    return out


def _denoise_bytes(inputs: Inputs) -> int:
    logits, x = inputs["logits"], inputs["x"]
    eligible = inputs.get("eligible")
    masked = int(eligible.sum()) if eligible is not None else int((x == inputs["mask_id"]).sum())
    reads = 2 if inputs.get("uncond_logits") is not None else 1
    extra = 1 if eligible is not None else 0
    return masked * logits.shape[-1] * logits.element_size() * reads + x.numel() * (20 + extra)


def _denoise_case(B, L, V, dtype="bf16", **opts) -> Case:
    tag = " ".join(f"{k}={v}" for k, v in opts.items() if k != "seed")
    return Case(f"{B}x{L}x{V} {dtype}" + (f" {tag}" if tag else ""),
                {"B": B, "L": L, "V": V, "dtype": dtype, **opts})


DENOISE_STEP = OpSpec(
    name="denoise_step",
    op=ops.denoise_step,
    reference=reference.denoise_step,
    make_inputs=_denoise_inputs,
    cases=(
        _denoise_case(1, 32, LLADA_VOCAB, "fp32"),
        _denoise_case(1, 32, LLADA_VOCAB, "bf16"),
        _denoise_case(1, 32, LLADA_VOCAB, "bf16", confidence="neg_entropy"),
        _denoise_case(1, 32, LLADA_VOCAB, "bf16", temperature=1.0),
        _denoise_case(1, 32, LLADA_VOCAB, "bf16", temperature=1.0, top_p=0.9, confidence="margin"),
        _denoise_case(1, 32, LLADA_VOCAB, "bf16", cfg=1.5),                    # LLaDA CFG
        _denoise_case(1, 32, 262_144, "bf16", eligible=1, temperature=0.8,     # DiffusionGemma
                      confidence="neg_entropy", confidence_source="sampling"),
    ),
    cuda_cases=(
        _denoise_case(8, 256, 262_144, "bf16", eligible=1, temperature=0.8,
                      confidence="neg_entropy", confidence_source="sampling"),
        _denoise_case(8, 32, LLADA_VOCAB, "bf16"),
        _denoise_case(64, 32, LLADA_VOCAB, "bf16"),
        _denoise_case(64, 32, LLADA_VOCAB, "fp32"),
        _denoise_case(1, 256, LLADA_VOCAB, "bf16"),
        _denoise_case(32, 32, 151_936, "bf16", confidence="margin"),
        _denoise_case(64, 32, LLADA_VOCAB, "bf16", temperature=1.0),
        _denoise_case(64, 32, LLADA_VOCAB, "bf16", temperature=1.0, top_p=0.9),
    ),
    outputs=lambda result, inputs: result,
    bytes_moved=_denoise_bytes,
    atol=1e-6,
    rtol=1e-5,
    doc="logits -> candidate token and confidence per masked position (one pass)",
)


def _select_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    B, L = int(params["B"]), int(params["L"])
    conf = torch.rand(B, L, generator=gen)
    if params["rule"] == "entropy_bound":
        conf = -conf * 5  # neg_entropy confidences: -H, H in [0, 5)
    conf[torch.rand(B, L, generator=gen) < 0.25] = float("-inf")
    out = {"conf": conf.to(device)}
    rule = params["rule"]
    out[rule] = params["value"]
    if rule == "probability":
        out["seed"] = 7
    return out


SELECT_TRANSFER = OpSpec(
    name="select_transfer",
    op=ops.select_transfer,
    reference=reference.select_transfer,
    make_inputs=_select_inputs,
    cases=(
        Case("B=1 L=32 num_transfer=4", {"B": 1, "L": 32, "rule": "num_transfer", "value": 4}),
        Case("B=64 L=256 threshold=0.9", {"B": 64, "L": 256, "rule": "threshold", "value": 0.9}),
        Case("B=64 L=4096 num_transfer=64", {"B": 64, "L": 4096, "rule": "num_transfer", "value": 64}),
        Case("B=64 L=256 factor=1", {"B": 64, "L": 256, "rule": "factor", "value": 1.0}),
        Case("B=8 L=256 entropy_bound=2", {"B": 8, "L": 256, "rule": "entropy_bound",
                                           "value": 2.0}),
    ),
    outputs=lambda result, inputs: (result,),
    bytes_moved=lambda inputs: inputs["conf"].numel() * 5,
    doc="which positions commit: top-k / threshold / factor / probability / entropy_bound",
)


def _das_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    out = _denoise_inputs(params, device, gen)
    if "entropy_bound" in params:  # DiffusionGemma's step: EB, commit, renoise (x is rewritten,
        out["entropy_bound"] = float(params["entropy_bound"])  # the eligible set stays)
        out["commit"] = out["renoise"] = True
        return out
    out["num_transfer"] = int(params["k"])
    out["commit"] = False  # timing reruns the same inputs: a commit would shrink the masked set
    return out


# DiffusionGemma's sampling step: all positions eligible, temperature, neg-entropy confidences of
# the tempered distribution, EB acceptance, renoise of the rest.
_DG_STEP = {"eligible": 1, "temperature": 0.8, "confidence": "neg_entropy",
            "confidence_source": "sampling", "entropy_bound": 2.0, "seed": 1234}


DENOISE_AND_SELECT = OpSpec(
    name="denoise_and_select",
    op=ops.denoise_and_select,
    reference=lambda **kw: _reference_denoise_and_select(**kw),
    make_inputs=_das_inputs,
    cases=(Case("1x32x126464 bf16 k=4", {"B": 1, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16", "k": 4}),
           Case("1x32x126464 bf16 k=4 cfg=1.5", {"B": 1, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16",
                                                 "k": 4, "cfg": 1.5}),
           Case("1x32x262144 bf16 DiffusionGemma EB=2 renoise",
                {"B": 1, "L": 32, "V": 262_144, "dtype": "bf16", **_DG_STEP})),
    cuda_cases=(Case("64x32x126464 bf16 k=4", {"B": 64, "L": 32, "V": LLADA_VOCAB, "dtype": "bf16", "k": 4}),
                Case("8x256x262144 bf16 DiffusionGemma EB=2 renoise",
                     {"B": 8, "L": 256, "V": 262_144, "dtype": "bf16", **_DG_STEP})),
    mutates=("x",),
    outputs=lambda result, inputs: (*result, inputs["x"]),
    bytes_moved=lambda inputs: _denoise_bytes(inputs) + inputs["x"].numel() * 5,
    atol=1e-6,
    rtol=1e-5,
    doc="denoise_step + select_transfer (+ commit) in one call",
)


def _reference_denoise_and_select(logits, x, mask_id, commit, num_transfer=None, **kw):
    """The reference composition that denoise_and_select must equal (reference.denoise_and_select
    for the issue-16 options: eligible, CFG, entropy_bound, renoise)."""
    if num_transfer is None or "eligible" in kw or "uncond_logits" in kw:
        return reference.denoise_and_select(logits, x, mask_id, commit=commit,
                                            num_transfer=num_transfer, **kw)
    seed = kw.pop("seed", 0)
    x0, conf = reference.denoise_step(logits, x, mask_id, seed=seed, **kw)
    transfer = reference.select_transfer(conf, num_transfer=num_transfer, seed=seed)
    if commit:
        reference.commit_(x, x0, transfer)
    return x0, conf, transfer


# ---- paged KV cache: cache_write_ / cache_gather / cache_copy_pages_ ---------------------------------
# One layer's cache is a pair [num_pages, page_size = 16, H_kv, D = 128] in bf16 (the NHD layout).
# Pools are fragmented: a sequence fills its pages in order, but the pages are a random permutation
# of the pool, the way a paged pool looks after churn. Values are random (never zeros), so a copy
# that skips a token or writes the wrong slot cannot match by accident.

PAGE_SIZE = 16
HEAD_DIM = 128


def _rand_values(gen: torch.Generator, shape, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.randn(shape, generator=gen).to(dtype).to(device)


def _cache_pair(P: int, H: int, dtype: torch.dtype, device, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return (_rand_values(gen, (P, PAGE_SIZE, H, HEAD_DIM), dtype, device),
            _rand_values(gen, (P, PAGE_SIZE, H, HEAD_DIM), dtype, device))


def _token_bytes(cache: torch.Tensor) -> int:
    """Bytes of one token of one cache: H_kv * D * element size."""
    return cache.shape[2] * cache.shape[3] * cache.element_size()


def _cache_write_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """N new tokens: they fill ceil(N / 16) pages in order, drawn at random from a pool twice that
    size (so the pool holds at least N tokens and half of it is someone else's)."""
    N, H = int(params["N"]), int(params["H"])
    dtype = _DTYPES[params.get("dtype", "bf16")]
    pages = -(-N // PAGE_SIZE)
    P = max(2 * pages, 64)
    k_cache, v_cache = _cache_pair(P, H, dtype, device, gen)
    page = torch.randperm(P, generator=gen)[:pages]
    t = torch.arange(N)
    slots = page[t // PAGE_SIZE] * PAGE_SIZE + t % PAGE_SIZE  # distinct, every slot >= 0
    return {
        "k_cache": k_cache,
        "v_cache": v_cache,
        "k": _rand_values(gen, (N, H, HEAD_DIM), dtype, device),
        "v": _rand_values(gen, (N, H, HEAD_DIM), dtype, device),
        "slot_mapping": slots.to(device),
        "check": False,  # the per-step path: check=True reads slot_mapping back (a CUDA sync)
    }


def _cache_write_bytes(inputs: Inputs) -> int:
    # Read k and v of every kept token, write them into the caches, read 8 bytes per slot.
    slots = inputs["slot_mapping"]
    kept = int((slots >= 0).sum())
    return 2 * 2 * kept * _token_bytes(inputs["k_cache"]) + 8 * slots.numel()


def _cache_write_case(N: int, H: int) -> Case:
    return Case(f"N={N} H_kv={H} D={HEAD_DIM} bf16", {"N": N, "H": H})


CACHE_WRITE = OpSpec(
    name="cache_write_",
    op=ops.cache_write_,
    reference=reference.cache_write_,
    make_inputs=_cache_write_inputs,
    cases=(
        _cache_write_case(32, 4),
        _cache_write_case(32, 32),
        _cache_write_case(1024, 4),
        _cache_write_case(1024, 32),
        _cache_write_case(32768, 4),
    ),
    cuda_cases=(_cache_write_case(32768, 32),),  # k + v alone are 0.5 GB: too slow for the CPU run
    outputs=lambda result, inputs: (inputs["k_cache"], inputs["v_cache"]),
    bytes_moved=_cache_write_bytes,
    mutates=("k_cache", "v_cache"),
    doc="k / v [N, H_kv, D] into their paged-cache slots, in place; timed with check=False "
        "(the per-step path: no slot validation, which on CUDA is a device sync)",
)


def _cache_gather_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """B rows of ragged length, evenly spread over [min_len, max_len] in random order, each on its
    own random pages of a pool with a quarter more pages than the rows use; unused block-table
    entries are 0. The lengths are fixed per case (only their order, the pages and the values are
    random), so every input set the benchmark rotates over has the same shapes and work: one
    compile of the reference, and bytes_moved holds for all of them."""
    B, H = int(params["B"]), int(params["H"])
    dtype = _DTYPES[params.get("dtype", "bf16")]
    spread = torch.linspace(int(params["min_len"]), int(params["max_len"]), B, dtype=torch.float64)
    lens = spread.round().long()[torch.randperm(B, generator=gen)]
    need = (lens + PAGE_SIZE - 1) // PAGE_SIZE
    P = int(need.sum()) * 5 // 4 + 1
    k_cache, v_cache = _cache_pair(P, H, dtype, device, gen)
    perm = torch.randperm(P, generator=gen)
    table = torch.zeros(B, int(need.max()), dtype=torch.int32)
    start = 0
    for b, n in enumerate(need.tolist()):
        table[b, :n] = perm[start:start + n].to(torch.int32)
        start += n
    return {
        "k_cache": k_cache,
        "v_cache": v_cache,
        "block_table": table.to(device),
        "kv_lens": lens.to(torch.int32).to(device),
        "max_len": int(lens.max()),  # known on the host, as a scheduler knows it: no max() sync
    }


def _cache_gather_bytes(inputs: Inputs) -> int:
    # Read the valid tokens of k and v, write the zero-padded [B, max_len] outputs, read the
    # block-table entries in use and kv_lens.
    lens, max_len = inputs["kv_lens"].long().clamp(max=inputs["max_len"]), inputs["max_len"]
    token = _token_bytes(inputs["k_cache"])
    used_pages = int(((lens + PAGE_SIZE - 1) // PAGE_SIZE).sum())
    return 2 * (int(lens.sum()) + lens.numel() * max_len) * token + 4 * (used_pages + lens.numel())


def _cache_gather_case(B: int, lo: int, hi: int, H: int = 8) -> Case:
    lens = f"len={lo}" if lo == hi else f"len {lo}..{hi}"
    return Case(f"B={B} {lens} H_kv={H} bf16", {"B": B, "min_len": lo, "max_len": hi, "H": H})


CACHE_GATHER = OpSpec(
    name="cache_gather",
    op=ops.cache_gather,
    reference=reference.cache_gather,
    make_inputs=_cache_gather_inputs,
    cases=(
        _cache_gather_case(1, 2048, 2048),
        _cache_gather_case(8, 512, 2048),
        _cache_gather_case(32, 512, 1024),
    ),
    cuda_cases=(
        _cache_gather_case(1, 8192, 8192),
        _cache_gather_case(8, 512, 8192),
        _cache_gather_case(32, 512, 8192),
    ),
    outputs=lambda result, inputs: result,
    bytes_moved=_cache_gather_bytes,
    doc="paged cache + block table -> contiguous zero-padded [B, max_len, H_kv, D] k and v "
        "(max_len passed in, as the scheduler knows it)",
)


def _cache_copy_pages_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """n (src, dst) pairs, copy-on-write of shared pages: 2n distinct random pages of a pool of 4n."""
    n, H = int(params["n"]), int(params["H"])
    dtype = _DTYPES[params.get("dtype", "bf16")]
    P = 4 * n
    k_cache, v_cache = _cache_pair(P, H, dtype, device, gen)
    perm = torch.randperm(P, generator=gen)
    return {
        "k_cache": k_cache,
        "v_cache": v_cache,
        "pairs": torch.stack([perm[:n], perm[n:2 * n]], dim=1).to(device),  # int64 [n, 2]
    }


def _cache_copy_pages_bytes(inputs: Inputs) -> int:
    # Read and write n pages of k and of v (2 * n * page_size * H * D * elem each way), plus the pairs.
    k_cache, pairs = inputs["k_cache"], inputs["pairs"]
    n = pairs.shape[0]
    return 2 * 2 * n * k_cache.shape[1] * _token_bytes(k_cache) + 16 * n


CACHE_COPY_PAGES = OpSpec(
    name="cache_copy_pages_",
    op=ops.cache_copy_pages_,
    reference=reference.cache_copy_pages_,
    make_inputs=_cache_copy_pages_inputs,
    cases=(
        Case("64 pairs H_kv=8 bf16", {"n": 64, "H": 8}),
        Case("1024 pairs H_kv=8 bf16", {"n": 1024, "H": 8}),
    ),
    outputs=lambda result, inputs: (inputs["k_cache"], inputs["v_cache"]),
    bytes_moved=_cache_copy_pages_bytes,
    mutates=("k_cache", "v_cache"),
    doc="k_cache[dst] = k_cache[src] (and v) for (src, dst) page pairs, in place (copy-on-write)",
)


# ---- block_attention ------------------------------------------------------------------------------
# A denoising step: the current block's Lq = 32 queries attend to the paged prefix (the committed
# tokens, in a fragmented pool laid out as for cache_gather: [P, 16, H_kv, 128], a quarter more
# pages than the rows use, in random order) and to the block's own k / v (the contiguous part),
# with the full mask. A prefill: no cache, L queries over their own L keys with the staircase
# (block-causal) mask. Values are random normal (never zeros): q . k / sqrt(D) ~ N(0, 1).

LLADA_HEADS = (32, 32)  # LLaDA-8B: H_q = H_kv = 32, D = 128
DREAM_HEADS = (28, 4)   # Dream-7B (Qwen2.5-7B): H_q = 28, H_kv = 4 (GQA 7), D = 128


def _block_attention_inputs(params: dict, device: torch.device, gen: torch.Generator) -> Inputs:
    """B rows of Lq queries (Lq = 32 for a step); k / v [B, Lq, H_kv, D] are the block itself.
    prefix > 0: each row also sees `prefix` cached tokens on its own random pages. The lengths are
    fixed per case, so every input set the benchmark rotates over has the same work."""
    B, Lq, Hq, Hkv = (int(params[k]) for k in ("B", "Lq", "Hq", "Hkv"))
    prefix = int(params.get("prefix", 0))
    dtype = _DTYPES[params.get("dtype", "bf16")]
    out: Inputs = {
        "q": _rand_values(gen, (B, Lq, Hq, HEAD_DIM), dtype, device),
        "k": _rand_values(gen, (B, Lq, Hkv, HEAD_DIM), dtype, device),
        "v": _rand_values(gen, (B, Lq, Hkv, HEAD_DIM), dtype, device),
    }
    if prefix:
        need = -(-prefix // PAGE_SIZE)
        P = B * need * 5 // 4 + 1
        k_cache, v_cache = _cache_pair(P, Hkv, dtype, device, gen)
        table = torch.randperm(P, generator=gen)[:B * need].view(B, need).to(torch.int32)
        out.update(k_cache=k_cache, v_cache=v_cache, block_table=table.to(device),
                   cache_lens=torch.full((B,), prefix, dtype=torch.int32, device=device))
    mask = params.get("mask", "full")
    if mask != "full":
        out.update(mask=mask, block_size=int(params["block_size"]))
    out["check"] = False  # the per-step path: check=True reads the lengths and page ids back (a CUDA sync)
    return out


def _reference_block_attention(*, check: bool = True, **kwargs):
    """The reference has no check flag: it always validates (and is never the per-step path)."""
    return reference.block_attention(**kwargs)


def block_attention_visible_keys(inputs: Inputs) -> torch.Tensor:
    """int64 [B, Lq] (on the CPU): how many keys query i of row b sees, exactly as the op's mask
    rule says (cache tokens at positions 0 .., then the valid k / v tokens; block_causal: a query
    at position p sees key positions t < (p // block_size + 1) * block_size)."""
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
    bs = int(inputs["block_size"])
    start = inputs["q_start"].long().cpu() if inputs.get("q_start") is not None else cache
    qpos = start.unsqueeze(1) + torch.arange(Lq)
    limit = (torch.div(qpos, bs, rounding_mode="floor") + 1) * bs
    return torch.minimum(total, limit).clamp(min=0)


def block_attention_kv_bytes(inputs: Inputs) -> int:
    """K and V read once per KV head: per row, the keys its last-seeing query needs."""
    elem = inputs["q"].element_size()
    keys = int(block_attention_visible_keys(inputs).amax(dim=1).sum()) if inputs["q"].shape[1] else 0
    Hkv = (inputs["k"] if inputs.get("k") is not None else inputs["k_cache"]).shape[2]
    return 2 * keys * Hkv * inputs["q"].shape[3] * elem


def _block_attention_bytes(inputs: Inputs) -> int:
    # K / V once per KV head (the GQA group shares the read), q read and out written once, plus
    # the block-table entries in use and the int32 length vectors.
    q = inputs["q"]
    nbytes = block_attention_kv_bytes(inputs) + 2 * q.numel() * q.element_size()
    if inputs.get("cache_lens") is not None:
        nbytes += 4 * int(((inputs["cache_lens"].long() + PAGE_SIZE - 1) // PAGE_SIZE).sum())
    nbytes += sum(4 * q.shape[0] for name in ("cache_lens", "kv_lens", "q_start") if inputs.get(name) is not None)
    return nbytes


def _block_attention_flops(inputs: Inputs) -> int:
    # Q K^T and P V: 2 * 2 * D per (query, visible key, query head); masked-out keys are not work.
    q = inputs["q"]
    return 4 * int(block_attention_visible_keys(inputs).sum()) * q.shape[2] * q.shape[3]


def _step_case(B: int, prefix: int, heads: tuple[int, int], dtype: str = "bf16") -> Case:
    name = "LLaDA" if heads == LLADA_HEADS else "Dream" if heads == DREAM_HEADS else f"H{heads[0]}/{heads[1]}"
    return Case(f"{name} step B={B} pre={prefix} {dtype}",
                {"B": B, "Lq": 32, "Hq": heads[0], "Hkv": heads[1], "prefix": prefix, "dtype": dtype})


def _prefill_case(L: int, heads: tuple[int, int], dtype: str = "bf16", block_size: int = 32) -> Case:
    name = "LLaDA" if heads == LLADA_HEADS else "Dream" if heads == DREAM_HEADS else f"H{heads[0]}/{heads[1]}"
    return Case(f"{name} prefill L={L} b={block_size} {dtype}",
                {"B": 1, "Lq": L, "Hq": heads[0], "Hkv": heads[1], "dtype": dtype,
                 "mask": "block_causal", "block_size": block_size})


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
    cuda_cases=tuple(_step_case(B, prefix, heads) for heads in (LLADA_HEADS, DREAM_HEADS)
                     for B in (1, 8, 32) for prefix in (512, 2048, 8192))
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


SPECS: tuple[OpSpec, ...] = (COMMIT, NUM_TRANSFER_TOKENS, DENOISE_STEP, SELECT_TRANSFER, DENOISE_AND_SELECT,
                             CACHE_WRITE, CACHE_GATHER, CACHE_COPY_PAGES,
                             BLOCK_ATTENTION)


def get(name: str) -> OpSpec:
    for spec in SPECS:
        if spec.name == name or spec.name.rstrip("_") == name:
            return spec
    raise KeyError(f"unknown op {name!r}; registered: {[s.name for s in SPECS]}")


def clone_inputs(inputs: Inputs) -> Inputs:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def compare(spec: OpSpec, got: tuple[torch.Tensor, ...], want: tuple[torch.Tensor, ...]) -> tuple[bool, float]:
    """(match, max abs error). Integer and bool outputs must match exactly."""
    ok, worst = True, 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape or g.dtype != w.dtype:
            return False, float("inf")
        g, w = g.cpu(), w.cpu()
        if g.dtype.is_floating_point:
            same_inf = torch.isinf(g) & (g == w)                # -inf conf at unmasked positions
            err = (g.double() - w.double()).abs().masked_fill(same_inf, 0)
            worst = max(worst, float(err.max()) if err.numel() else 0.0)
            atol, rtol = spec.tolerance(g.dtype)
            ok &= bool(torch.allclose(g, w, atol=atol, rtol=rtol, equal_nan=False))
        else:
            diff = (g != w)
            worst = max(worst, float(diff.sum()))  # number of mismatching elements
            ok &= not bool(diff.any())
    return ok, worst
