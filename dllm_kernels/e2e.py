"""End-to-end generation benchmark: our runtime against literal eager loops written the way public
dLLM code writes them (LLaDA's generate and Fast-dLLM v1's dual-cache generate), on the same
TinyLLaDA weights, at equal NFE. Used by `python -m dllm_kernels generate`, `bench --e2e` and
benchmarks/bench_generate.py.
"""

from __future__ import annotations

import time

import torch

from . import peers
from .models import TinyLLaDA, TinyLLaDAConfig
from .runtime import generate

PRESETS = {
    # CPU-sized: LLaDA's vocabulary (so sampling costs what it costs) on a small trunk
    "tiny": dict(vocab_size=126_464, hidden_size=128, num_layers=2, num_heads=2, mask_id=126_336),
    # LLaDA-8B-shaped layers (hidden 4096, 32 heads, MHA, ff 12288), a few of them
    "llada8b-shaped": dict(
        vocab_size=126_464,
        hidden_size=4096,
        num_layers=4,
        num_heads=32,
        intermediate_size=12_288,
        mask_id=126_336,
    ),
}


def make_model(
    preset: str, device, dtype=None, layers: int | None = None, seed: int = 0
) -> TinyLLaDA:
    cfg = dict(PRESETS[preset])
    if layers is not None:
        cfg["num_layers"] = layers
    if dtype is None:
        dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return TinyLLaDA(TinyLLaDAConfig(**cfg), seed=seed, dtype=dtype, device=device)


# transformers-shaped models (random init, generated through the "dllm_kernels" attention)
HF_PRESETS = {
    # Qwen2's vocabulary and GQA layout on a small trunk (CPU-sized)
    "qwen2-shaped": dict(
        vocab_size=151_936,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
    ),
}


def make_hf_model(preset: str, device, dtype=None, seed: int = 0):
    """A random-init transformers Qwen2ForCausalLM of the preset's shape (needs transformers);
    the init is wider than transformers' 0.02 so that greedy outputs are varied, and the last
    token id is its mask_token_id (its logits row zeroed: never the best)."""
    import transformers

    if dtype is None:
        dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(
        **HF_PRESETS[preset],
        initializer_range=0.3,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    cfg.mask_token_id = cfg.vocab_size - 1
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(1.25)
        model.lm_head.weight[cfg.vocab_size - 1] = 0.0
    return model.to(device=device, dtype=dtype)


class LiteralView:
    """What the literal loops need of a transformers model while its attention implementation is
    "dllm_kernels" (inside TransformersModel): model(x).logits (uncached bidirectional SDPA),
    forward(ids, positions, attn) with the attention replaced, config.mask_id, parameters()."""

    def __init__(self, adapter):
        self.adapter, self.model = adapter, adapter.model
        self.config = adapter.config

    def __call__(self, x):
        return self.model(x)

    def forward(self, ids, positions, attn):
        return self.adapter.forward(ids, positions, attn)

    def parameters(self):
        return self.model.parameters()


def literal_llada(model, x_prompt: torch.Tensor, gen_length: int, block_length: int, steps: int):
    """LLaDA's generate() at T = 0 with low_confidence remasking (dllm_kernels.peers.llada): a
    full forward every step, float64 softmax over the whole sequence, a per-row top-k loop.
    Returns (tokens, nfe)."""
    x = peers.llada(
        lambda ids: model(ids).logits,
        x_prompt,
        model.config.mask_id,
        gen_length,
        block_length,
        steps,
    )
    return x, steps


def literal_fast_dllm_dual(
    model, x_prompt: torch.Tensor, gen_length: int, block_length: int, steps: int
):
    """Fast-dLLM v1's dual-cache generate() at T = 0 with dense K/V spliced by torch.cat
    (dllm_kernels.peers.fast_dllm_cached). Runs steps / num_blocks steps per block (Fast-dLLM
    stops a block early once no mask is left, which only happens when that is more than
    block_length). Returns (tokens, nfe)."""
    x = peers.fast_dllm_cached(
        model.forward, x_prompt, model.config.mask_id, gen_length, block_length, steps, dual=True
    )
    return x, steps


def _timed(fn, device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


@torch.no_grad()
def run(
    model,
    batch: int,
    prompt_length: int,
    gen_length: int,
    block_length: int,
    steps: int,
    caches=("none", "prefix", "dual", "block"),
    baselines: bool = True,
    reference: bool = False,
    threshold=None,
    seed: int = 0,
    log=print,
    literal=None,
    on_row=None,
) -> list[dict]:
    """Times one generation per configuration (after one warm-up of each); returns rows with
    tokens/s, NFE, seconds and the runtime's model / sampling / cache split. literal: what the
    literal loops drive (default model; a LiteralView for a transformers model). on_row(rows) is
    called after each row (e.g. to save what a run cut short has finished)."""
    literal = model if literal is None else literal
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, literal.config.mask_id, (batch, prompt_length), generator=g).to(
        device
    )
    tokens = batch * gen_length
    rows = []
    kw = dict(gen_length=gen_length, block_length=block_length, steps=steps)

    def add(name, nfe, secs, extra=None, same_as=None):
        row = {
            "name": name,
            "nfe": nfe,
            "seconds": secs,
            "tokens_per_s": tokens / secs,
            **(extra or {}),
        }
        rows.append(row)
        log(
            f"  {name:<34} {tokens / secs:10.1f} tok/s  nfe {nfe:4d}  {secs * 1e3:9.1f} ms"
            + (
                f"  model {extra['model_s'] / secs:5.1%}  sampling "
                f"{extra['sampling_s'] / secs:5.1%}"
                f"  cache {extra['cache_s'] / secs:5.1%}"
                if extra and "model_s" in extra
                else ""
            )
            + (f"  {same_as}" if same_as else "")
        )
        if on_row is not None:
            on_row(rows)

    backends = ["kernels"] + (["reference"] if reference else [])
    results = {}
    for cache in caches:
        for backend in backends:
            opts = dict(cache=cache, backend=backend, threshold=threshold, seed=seed)
            generate(model, prompt, **kw, **opts)  # warm-up
            out, secs = _timed(lambda: generate(model, prompt, **kw, **opts), device)
            prof = generate(model, prompt, **kw, **opts, profile=True).timing
            split = {
                k: prof[k] * secs / prof["total_s"] for k in ("model_s", "sampling_s", "cache_s")
            }
            results[(cache, backend)] = out.tokens
            add(
                f"runtime {backend} cache={cache}" + (f" thr={threshold}" if threshold else ""),
                out.nfe,
                secs,
                split,
            )
    if baselines and threshold is None:
        for name, fn, ref_cache in (
            ("literal LLaDA loop (none)", literal_llada, "none"),
            ("literal Fast-dLLM dual loop", literal_fast_dllm_dual, "dual"),
        ):
            fn(literal, prompt, **kw)  # warm-up
            (x, nfe), secs = _timed(lambda: fn(literal, prompt, **kw), device)
            ours = results.get((ref_cache, "kernels"))
            same = (
                None
                if ours is None
                else (
                    "same tokens as runtime"
                    if torch.equal(ours, x)
                    else f"tokens differ at {int((ours != x).sum())} positions"
                )
            )
            add(name, nfe, secs, same_as=same)
    by = {r["name"]: r for r in rows}
    for ours, base in (
        ("runtime kernels cache=none", "literal LLaDA loop (none)"),
        ("runtime kernels cache=dual", "literal Fast-dLLM dual loop"),
    ):
        if ours in by and base in by:
            by[ours][f"x_vs_{base}"] = by[ours]["tokens_per_s"] / by[base]["tokens_per_s"]
            log(f"  {ours}: {by[ours]['tokens_per_s'] / by[base]['tokens_per_s']:.2f}x the {base}")
    return rows
