"""Test helpers: small random transformers models whose outputs are not degenerate, and the
checks that they are not. The literal peer loops themselves live in dllm_kernels.peers (re-exported
here, so tests write peers.llada(...))."""

from __future__ import annotations

import torch

from dllm_kernels.peers import block_diffusion, dream, fast_dllm, fast_dllm_cached, llada, schedule  # noqa: F401

# ---- models
# ----------------------------------------------------------------------------------------


def hf_model(family: str, head_dim: int, vocab: int = 320, seed: int = 0):
    """A random-init transformers model (Qwen2 or Llama), GQA 4/2 heads, 2 layers, mask id
    vocab - 1, weights scaled so that its greedy outputs are varied and its confidences spread
    (a standard 0.02 init predicts one token everywhere)."""
    import transformers

    cls = {
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    }[family]
    torch.manual_seed(seed)
    cfg = cls[0](
        vocab_size=vocab,
        hidden_size=4 * head_dim,
        intermediate_size=8 * head_dim,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        initializer_range=0.3,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    cfg.mask_token_id = vocab - 1
    model = cls[1](cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(1.25)
        model.lm_head.weight[vocab - 1] = 0.0  # logit 0: below the best of 300+ others
    return model


def assert_not_degenerate(
    tokens: torch.Tensor,
    conf: torch.Tensor | None = None,
    *,
    min_distinct: int = 8,
    min_spread: float = 0.2,
):
    """The generated tokens are varied and (given) the committed confidences spread, so that
    'same tokens' comparisons mean something."""
    distinct = tokens.unique().numel()
    assert distinct >= min_distinct, f"degenerate output: {distinct} distinct tokens"
    if conf is not None:
        c = conf[torch.isfinite(conf)]
        spread = float(c.max() - c.min())
        assert spread >= min_spread, f"confidences barely spread ({spread:.3f})"


def committed_conf(trace) -> torch.Tensor:
    return torch.cat([t["conf"][t["committed"]] for t in trace])
