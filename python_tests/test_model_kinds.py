"""generate() on the three model kinds: transformers models through the "dllm_kernels" attention
(random-init Qwen2 / Llama, head_dim 32 / 48 / 64, every cache mode), a bare model(x).logits
callable (cache="none"), and the runtime interface; CFG and the Dream schedule against literal
loops; mask_id from the config; the errors. Every model here has non-degenerate outputs."""

import warnings

import peer_loops as peers
import pytest
import torch

import dllm_kernels as dk
from dllm_kernels.models import TinyLLaDA, TinyLLaDAConfig
from dllm_kernels.runtime import model_kind

transformers = pytest.importorskip(
    "transformers", minversion="5.0", reason="needs transformers >= 5 (pip install .[hf])"
)
from dllm_kernels.integrations import transformers as hf  # noqa: E402

MODELS = [("qwen2", 32), ("llama", 48), ("qwen2", 64)]


@pytest.fixture(scope="module", params=MODELS, ids=[f"{f}-hd{d}" for f, d in MODELS])
def hfm(request):
    return peers.hf_model(*request.param)


def prompt(B, P, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab - 1, (B, P), generator=g)


def hf_logits(model, attention_mask=None):
    """The uncached bidirectional forward of the transformers model, over left-padded rows."""

    def fn(x):
        pos = None
        mask4 = None
        if attention_mask is not None:
            am = torch.cat(
                [
                    attention_mask,
                    torch.ones(
                        x.shape[0], x.shape[1] - attention_mask.shape[1], dtype=attention_mask.dtype
                    ),
                ],
                1,
            ).bool()
            pos = (am.long().cumsum(-1) - 1).clamp(min=0)
            mask4 = am[:, None, None, :].expand(-1, 1, x.shape[1], -1)
        with hf.bidirectional(model):
            return model(x, attention_mask=mask4, position_ids=pos).logits

    return fn


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the head_dim fallback's warning
        return fn(*a, **kw)


def test_kinds_are_told_apart(hfm):
    assert model_kind(hfm) == "transformers"
    assert model_kind(lambda x: hfm(x)) == "callable"
    assert model_kind(TinyLLaDA(TinyLLaDAConfig(vocab_size=64), seed=0)) == "runtime"
    with pytest.raises(
        TypeError, match=r"\(a\) the runtime interface.*\(b\) any callable.*\(c\) a transformers"
    ):
        dk.generate(object(), [[1, 2]], gen_length=4, steps=4)


def test_none_equals_literal_llada_loop(hfm):
    V = hfm.config.vocab_size
    p = prompt(1, 9, V)
    want = peers.llada(hf_logits(hfm), p, V - 1, gen_length=32, block_length=16, steps=32)
    out = quiet(dk.generate, hfm, p, gen_length=32, block_length=16, steps=32, trace=True)
    peers.assert_not_degenerate(out.tokens[:, 9:], peers.committed_conf(out.trace))
    assert torch.equal(out.tokens, want)
    assert out.nfe == 32
    assert hfm.config._attn_implementation != hf.ATTN_NAME  # restored after the call


def test_ragged_batch_equals_literal_loop(hfm):
    V = hfm.config.vocab_size
    ids = prompt(3, 11, V, seed=1)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[2, :7] = 0
    want = peers.llada(hf_logits(hfm, mask), torch.where(mask.bool(), ids, 0), V - 1, 16, 8, 16)
    out = quiet(dk.generate, hfm, ids, attention_mask=mask, gen_length=16, block_length=8, steps=16)
    assert torch.equal(out.tokens[:, 11:], want[:, 11:])
    peers.assert_not_degenerate(out.tokens[:, 11:])


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_prefix_and_dual_equal_literal_fast_dllm(hfm, cache):
    V = hfm.config.vocab_size
    p = prompt(1, 7, V, seed=2)
    with hf.TransformersModel(hfm) as rt:
        want = peers.fast_dllm_cached(rt.forward, p, V - 1, 32, 8, 32, dual=cache == "dual")
    out = quiet(dk.generate, hfm, p, gen_length=32, block_length=8, steps=32, cache=cache)
    peers.assert_not_degenerate(out.tokens[:, 7:])
    assert torch.equal(out.tokens, want)


def test_block_mode_equals_literal_block_diffusion(hfm):
    V = hfm.config.vocab_size
    p = prompt(1, 11, V, seed=8)
    with hf.TransformersModel(hfm) as rt:
        want = peers.block_diffusion(rt.forward, p, V - 1, 32, 8, 32)
    out = quiet(dk.generate, hfm, p, gen_length=32, block_length=8, steps=32, cache="block")
    peers.assert_not_degenerate(out.tokens[:, 11:])
    assert torch.equal(out.tokens, want)
    assert out.nfe == 32 + 1 + 4  # steps + prefill + a commit per block


def test_dual_refreshed_every_step_equals_none(hfm):
    V = hfm.config.vocab_size
    ps = [prompt(1, n, V, seed=n)[0].tolist() for n in (5, 10)]
    kw = dict(gen_length=16, block_length=8, steps=16)
    none = quiet(dk.generate, hfm, ps, **kw)
    dual = quiet(dk.generate, hfm, ps, **kw, cache="dual", refresh_interval=1)
    assert torch.equal(none.tokens, dual.tokens)


@pytest.mark.parametrize("cache", ["none", "prefix", "dual", "block"])
def test_every_cache_mode_kernels_equal_reference(hfm, cache):
    V = hfm.config.vocab_size
    ps = [prompt(1, n, V, seed=n)[0].tolist() for n in (6, 13)]
    kw = dict(gen_length=16, block_length=8, steps=16, cache=cache)
    a = quiet(dk.generate, hfm, ps, **kw)
    b = quiet(dk.generate, hfm, ps, **kw, backend="reference")
    assert torch.equal(a.tokens, b.tokens) and a.nfe == b.nfe
    assert not (a.tokens[:, 13:] == V - 1).any()
    peers.assert_not_degenerate(a.tokens[:, 13:])


def test_threshold_commits_several_tokens_per_step(hfm):
    V = hfm.config.vocab_size
    out = quiet(
        dk.generate,
        hfm,
        prompt(2, 8, V, seed=3),
        gen_length=32,
        block_length=16,
        threshold=0.6,
        cache="dual",
        trace=True,
    )
    assert max(int(t["committed"].sum(1).max()) for t in out.trace) > 1
    assert out.nfe < 32
    assert not (out.tokens[:, 8:] == V - 1).any()


def test_callable_runs_cache_none(hfm):
    V = hfm.config.vocab_size
    p = prompt(1, 9, V, seed=4)
    fn = hf_logits(hfm)
    bare = lambda x: type("Out", (), {"logits": fn(x)})()  # noqa: E731  a bare callable
    assert model_kind(bare) == "callable"
    out = dk.generate(bare, p, gen_length=16, block_length=8, steps=16, mask_id=V - 1)
    assert torch.equal(out.tokens, peers.llada(fn, p, V - 1, 16, 8, 16))
    with pytest.raises(
        ValueError, match=r"cache='dual' needs a model whose attention the runtime serves"
    ):
        dk.generate(bare, p, gen_length=16, block_length=8, steps=16, mask_id=V - 1, cache="dual")


def test_cfg_equals_literal_cfg_loop(hfm):
    V = hfm.config.vocab_size
    p = prompt(1, 8, V, seed=5)
    want = peers.llada(hf_logits(hfm), p, V - 1, 16, 8, 16, cfg_scale=1.5)
    out = quiet(dk.generate, hfm, p, gen_length=16, block_length=8, steps=16, cfg_scale=1.5)
    assert torch.equal(out.tokens, want)
    plain = quiet(dk.generate, hfm, p, gen_length=16, block_length=8, steps=16)
    assert not torch.equal(out.tokens, plain.tokens)  # guidance changed something
    for cache in ("dual", "block"):  # CFG in the cached modes too
        c = quiet(
            dk.generate, hfm, p, gen_length=16, block_length=8, steps=16, cfg_scale=1.5, cache=cache
        )
        r = quiet(
            dk.generate,
            hfm,
            p,
            gen_length=16,
            block_length=8,
            steps=16,
            cfg_scale=1.5,
            cache=cache,
            backend="reference",
        )
        assert torch.equal(c.tokens, r.tokens)


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
def test_dream_schedule_equals_literal_dream_loop(hfm, alg):
    V = hfm.config.vocab_size
    p = prompt(2, 6, V, seed=6)
    want = peers.dream(hf_logits(hfm), p, V - 1, gen_length=16, steps=8, alg=alg)
    out = quiet(
        dk.generate,
        hfm,
        p,
        gen_length=16,
        steps=8,
        schedule="dream",
        remasking=alg,
        shift_logits=True,
    )
    assert torch.equal(out.tokens, want)
    peers.assert_not_degenerate(out.tokens[:, 6:])


def test_mask_id_comes_from_the_config(hfm):
    V = hfm.config.vocab_size
    p = prompt(1, 5, V, seed=7)
    a = quiet(dk.generate, hfm, p, gen_length=8, steps=8)
    b = quiet(dk.generate, hfm, p, gen_length=8, steps=8, mask_id=V - 1)
    assert torch.equal(a.tokens, b.tokens)
    del hfm.config.mask_token_id
    try:
        with pytest.raises(ValueError, match=r"no mask_id: pass mask_id="):
            dk.generate(hfm, p, gen_length=8, steps=8)
    finally:
        hfm.config.mask_token_id = V - 1


def test_head_dim_fallback_warns_once():
    m = peers.hf_model("qwen2", 32, seed=1)
    dk.runtime._warned.clear()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dk.generate(m, prompt(1, 5, 320), gen_length=8, steps=8, cache="dual")
    msgs = [str(x.message) for x in w if "falls back to gather + SDPA" in str(x.message)]
    assert len(msgs) == 1 and "head_dim 32" in msgs[0]


def test_steps_optional_only_with_threshold_or_factor():
    m = TinyLLaDA(TinyLLaDAConfig(vocab_size=64), seed=0)
    with pytest.raises(TypeError, match=r"steps is required"):
        dk.generate(m, [[1, 2, 3]], gen_length=8)
    out = dk.generate(m, [[1, 2, 3]], gen_length=8, factor=1.0)
    assert out.nfe <= 8 and not (out.tokens == m.config.mask_id).any()


class RemoteCodeStyle(transformers.Qwen2ForCausalLM):
    """A remote-code model whose class does not declare _supports_attention_backend; its module
    looks its attention up in ALL_ATTENTION_FUNCTIONS (as LLaDA2-MoE's modeling file does)."""

    _supports_attention_backend = False


def test_remote_code_style_model_is_served():
    base = peers.hf_model("qwen2", 64, seed=2)
    remote = RemoteCodeStyle(base.config).eval()
    remote.load_state_dict(base.state_dict())
    assert model_kind(remote) == "transformers"
    p = prompt(1, 6, 320, seed=9)
    kw = dict(gen_length=16, block_length=8, steps=16, cache="dual")
    assert torch.equal(dk.generate(remote, p, **kw).tokens, dk.generate(base, p, **kw).tokens)
    assert remote.config._attn_implementation != hf.ATTN_NAME
