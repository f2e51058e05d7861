"""dllm_kernels.compat: the published entry points (LLaDA generate, Fast-dLLM generate / prefix /
dual cache, Dream diffusion_generate) against literal loops written in python_tests/peer_loops.py,
on models that call the way each original expects, with non-degenerate outputs."""

import inspect
from types import SimpleNamespace

import peer_loops as peers
import pytest
import torch
import torch.nn.functional as F

from dllm_kernels.compat import dream, fast_dllm, llada
from dllm_kernels.models import TinyLLaDA, TinyLLaDAConfig

CFG = TinyLLaDAConfig(vocab_size=512, hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2)
MASK = CFG.mask_id


@pytest.fixture(scope="module")
def tiny():
    return TinyLLaDA(CFG, seed=0)


class LLaDALike(torch.nn.Module):
    """LLaDA's remote-code calling convention: model(x, attention_mask=m).logits, no runtime
    interface (a kind (b) model)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, attention_mask=None):
        return self.inner(x, attention_mask=attention_mask)


class FastDLLMLike(LLaDALike):
    """Fast-dLLM's LLaDA calling convention: model(x, use_cache=True) returns past_key_values (a
    (k, v) [B, Hkv, T, D] tuple per layer); model(x_suffix, past_key_values=...) continues after the
    cached prefix; with replace_position the fed block's fresh K/V replace its cached ones."""

    def forward(
        self, x, attention_mask=None, past_key_values=None, use_cache=False, replace_position=None
    ):
        m = self.inner
        B, n = x.shape
        new = []
        if past_key_values is None:
            pos = torch.arange(n).expand(B, -1)
        elif replace_position is not None:
            pos = replace_position[0].nonzero().flatten().expand(B, -1)
        else:
            pos = (past_key_values[0][0].shape[2] + torch.arange(n)).expand(B, -1)

        def attn(layer, q, k, v):
            kk, vv = k.transpose(1, 2), v.transpose(1, 2)  # [B, Hkv, n, D]
            if past_key_values is not None:
                K, V = past_key_values[layer]
                if replace_position is not None:
                    K, V = K.clone(), V.clone()
                    K[:, :, pos[0]], V[:, :, pos[0]] = kk, vv
                else:
                    K, V = torch.cat([K, kk], 2), torch.cat([V, vv], 2)
                kk, vv = K, V
            new.append((kk, vv))
            g = q.shape[2] // kk.shape[1]
            return F.scaled_dot_product_attention(
                q.transpose(1, 2), kk.repeat_interleave(g, 1), vv.repeat_interleave(g, 1)
            ).transpose(1, 2)

        logits = m.forward(x, pos, attn)
        return SimpleNamespace(logits=logits, past_key_values=tuple(new) if use_cache else None)


class DreamLike(LLaDALike):
    """Dream's calling convention: model(x, attention_mask, tok_idx).logits with attention_mask
    "full" or a [B, 1, N, N] bool mask and tok_idx the positions (None: 0..N-1)."""

    def forward(self, x, attention_mask=None, tok_idx=None):
        B, n = x.shape
        pos = torch.arange(n).expand(B, -1) if tok_idx is None else tok_idx
        mask = None if isinstance(attention_mask, str) or attention_mask is None else attention_mask

        def attn(layer, q, k, v):
            g = q.shape[2] // k.shape[2]
            return F.scaled_dot_product_attention(
                q.transpose(1, 2),
                k.repeat_interleave(g, 2).transpose(1, 2),
                v.repeat_interleave(g, 2).transpose(1, 2),
                attn_mask=mask,
            ).transpose(1, 2)

        return SimpleNamespace(logits=self.inner.forward(x, pos, attn))


def prompt(B, P, seed=0, vocab=MASK):
    return torch.randint(0, vocab, (B, P), generator=torch.Generator().manual_seed(seed))


def test_signatures_match_the_originals():
    """Names, parameters and defaults as published (read from the peers' code)."""
    sig = inspect.signature(llada.generate)
    assert list(sig.parameters) == [
        "model",
        "prompt",
        "attention_mask",
        "steps",
        "gen_length",
        "block_length",
        "temperature",
        "cfg_scale",
        "remasking",
        "mask_id",
        "logits_eos_inf",
        "confidence_eos_eot_inf",
    ]
    assert [p.default for p in list(sig.parameters.values())[2:]] == [
        None,
        128,
        128,
        128,
        0.0,
        0.0,
        "low_confidence",
        126336,
        False,
        False,
    ]
    for fn in (
        fast_dllm.generate,
        fast_dllm.generate_with_prefix_cache,
        fast_dllm.generate_with_dual_cache,
    ):
        sig = inspect.signature(fn)
        assert list(sig.parameters) == [
            "model",
            "prompt",
            "steps",
            "gen_length",
            "block_length",
            "temperature",
            "remasking",
            "mask_id",
            "threshold",
            "factor",
        ]
        assert [p.default for p in list(sig.parameters.values())[2:]] == [
            128,
            128,
            128,
            0.0,
            "low_confidence",
            126336,
            None,
            None,
        ]
    assert list(inspect.signature(dream.diffusion_generate).parameters) == [
        "model",
        "inputs",
        "generation_config",
        "kwargs",
    ]


@pytest.mark.parametrize("cfg_scale", [0.0, 0.5])
def test_llada_generate_equals_literal_loop(tiny, cfg_scale):
    model = LLaDALike(tiny)
    ids = prompt(2, 10, seed=1)
    am = torch.ones_like(ids)
    am[1, :3] = 0
    x = llada.generate(
        model,
        ids,
        attention_mask=am,
        steps=16,
        gen_length=16,
        block_length=8,
        cfg_scale=cfg_scale,
        mask_id=MASK,
    )
    full = torch.cat([am, torch.ones(2, 16, dtype=am.dtype)], 1)
    want = peers.llada(
        lambda z: model(z, attention_mask=torch.cat([full] * (z.shape[0] // 2))).logits,
        ids,
        MASK,
        16,
        8,
        16,
        cfg_scale=cfg_scale,
    )
    assert torch.equal(x, want)
    peers.assert_not_degenerate(x[:, 10:])


def test_llada_eos_options_equal_literal_loop():
    """logits_eos_inf / confidence_eos_eot_inf on LLaDA's vocabulary (EOS 126081, EoT 126348)."""
    big = TinyLLaDA(
        TinyLLaDAConfig(
            vocab_size=126_464, hidden_size=128, num_layers=2, num_heads=2, mask_id=126_336
        ),
        seed=5,
    )
    model = LLaDALike(big)
    with torch.no_grad():  # make EOS / EoT likely, so the options matter
        big.lm_bias[126081] = 26.0
        big.lm_bias[126348] = 26.0
    ids = prompt(1, 6, seed=2, vocab=126_000)

    def literal(eos_inf, eos_eot_inf):
        x = torch.full((1, 22), 126_336, dtype=torch.long)
        x[:, :6] = ids
        for k in range(2):
            s1 = 6 + (k + 1) * 8
            num = peers.schedule(x[:, s1 - 8 : s1] == 126_336, 4)
            for i in range(4):
                mask_index = x == 126_336
                logits = model(x).logits.clone()
                if eos_inf:
                    logits[:, :, 126081] = -torch.inf
                x0 = logits.argmax(-1)
                if eos_eot_inf:  # T = 0: the noisy logits are the logits
                    logits[:, :, 126081] = logits[:, :, 126348] = -torch.inf
                p = F.softmax(logits, -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
                p[:, s1:] = -torch.inf
                conf = torch.where(mask_index, p, torch.tensor(-torch.inf))
                x0 = torch.where(mask_index, x0, x)
                idx = torch.topk(conf[0], k=int(num[0, i])).indices
                x[0, idx] = x0[0, idx]
        return x

    for eos_inf, eos_eot_inf in [(True, False), (False, True)]:
        x = llada.generate(
            model,
            ids,
            steps=8,
            gen_length=16,
            block_length=8,
            logits_eos_inf=eos_inf,
            confidence_eos_eot_inf=eos_eot_inf,
        )
        assert torch.equal(x, literal(eos_inf, eos_eot_inf))
        peers.assert_not_degenerate(x[:, 6:], min_distinct=5)
    assert not (
        llada.generate(model, ids, steps=8, gen_length=16, block_length=8, logits_eos_inf=True)[
            :, 6:
        ]
        == 126081
    ).any()


@pytest.mark.parametrize(
    "rule", [{}, {"threshold": 0.5}, {"factor": 1.0}], ids=["fixed", "threshold", "factor"]
)
def test_fast_dllm_generate_equals_literal_loop(tiny, rule):
    model = LLaDALike(tiny)
    ids = prompt(1, 9, seed=3)
    x, nfe = fast_dllm.generate(
        model, ids, steps=32, gen_length=32, block_length=8, mask_id=MASK, **rule
    )
    want, want_nfe = peers.fast_dllm(lambda z: model(z).logits, ids, MASK, 32, 8, 32, **rule)
    assert torch.equal(x, want) and nfe == want_nfe
    peers.assert_not_degenerate(x[:, 9:], min_distinct=6)  # parallel steps repeat tokens more
    if rule:
        assert nfe < 32  # parallel decoding committed > 1 token a step


@pytest.mark.parametrize(
    "fn,dual",
    [(fast_dllm.generate_with_prefix_cache, False), (fast_dllm.generate_with_dual_cache, True)],
    ids=["prefix", "dual"],
)
@pytest.mark.parametrize("kind", ["past_key_values", "runtime"])
def test_fast_dllm_cache_equals_literal_loop(tiny, fn, dual, kind):
    """Fast-dLLM's own model protocol (past_key_values, replace_position) and a model the runtime
    serves (its paged cache) give the literal dense-K/V loop's tokens and Fast-dLLM's NFE."""
    model = FastDLLMLike(tiny) if kind == "past_key_values" else tiny
    ids = prompt(1, 7, seed=4)
    x, nfe = fn(model, ids, steps=32, gen_length=32, block_length=8, mask_id=MASK)
    want = peers.fast_dllm_cached(tiny.forward, ids, MASK, 32, 8, 32, dual=dual)
    assert torch.equal(x, want)
    assert nfe == 32  # per block: the full forward + 3 cached steps
    peers.assert_not_degenerate(x[:, 7:])


@pytest.mark.parametrize("kind", ["past_key_values", "runtime"])
def test_fast_dllm_dual_threshold_kinds_agree(tiny, kind):
    model = FastDLLMLike(tiny) if kind == "past_key_values" else tiny
    ids = prompt(1, 7, seed=5)
    x, nfe = fast_dllm.generate_with_dual_cache(
        model, ids, steps=32, gen_length=32, block_length=8, mask_id=MASK, threshold=0.5
    )
    y, nfe_y = fast_dllm.generate_with_dual_cache(
        FastDLLMLike(tiny) if kind == "runtime" else tiny,
        ids,
        steps=32,
        gen_length=32,
        block_length=8,
        mask_id=MASK,
        threshold=0.5,
    )
    assert torch.equal(x, y) and nfe == nfe_y and nfe < 32
    assert not (x[:, 7:] == MASK).any()


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
def test_dream_equals_literal_loop(tiny, alg):
    model = DreamLike(tiny)
    ids = prompt(2, 6, seed=6)
    x = dream.diffusion_generate(
        model, ids, max_new_tokens=16, steps=8, alg=alg, mask_token_id=MASK
    )
    want = peers.dream(lambda z: model(z, "full", None).logits, ids, MASK, 16, 8, alg=alg)
    assert torch.equal(x, want)
    peers.assert_not_degenerate(x[:, 6:])


def test_dream_padding_hooks_and_history(tiny):
    model = DreamLike(tiny)
    ids = prompt(2, 6, seed=7)
    am = torch.ones_like(ids)
    am[0, :2] = 0
    seen = []
    out = dream.diffusion_generate(
        model,
        ids,
        attention_mask=am,
        max_new_tokens=8,
        steps=4,
        alg="entropy",
        mask_token_id=MASK,
        return_dict_in_generate=True,
        output_history=True,
        generation_logits_hook_func=lambda i, x, lg: seen.append(i) or lg,
    )
    assert seen == [0, 1, 2, 3] and len(out.history) == 4
    assert torch.equal(out.history[-1], out.sequences) and not (out.sequences == MASK).any()
    # the same call without hooks (op-side shift) gives the same tokens
    y = dream.diffusion_generate(
        model, ids, attention_mask=am, max_new_tokens=8, steps=4, alg="entropy", mask_token_id=MASK
    )
    assert torch.equal(y, out.sequences)


def test_dream_origin_commits_everything_by_the_last_step(tiny):
    torch.manual_seed(0)
    x = dream.diffusion_generate(
        DreamLike(tiny),
        prompt(1, 5, seed=8),
        max_new_tokens=12,
        steps=6,
        mask_token_id=MASK,
        temperature=0.5,
    )
    assert x.shape == (1, 17) and not (x == MASK).any()
