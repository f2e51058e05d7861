"""Runtime parity: generate() against the literal LLaDA / Fast-dLLM loops (dllm_kernels.peers),
kernels against the reference backend for every cache mode, seeded sampling, parallel decoding
rules, EOS handling, traces and errors. The model is a tiny fp32 TinyLLaDA on the CPU."""

import pytest
import torch

import dllm_kernels as dk
from dllm_kernels import peers
from dllm_kernels.models import TinyLLaDA, TinyLLaDAConfig

CFG = TinyLLaDAConfig(vocab_size=96, hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1)
MASK = CFG.mask_id


@pytest.fixture(scope="module")
def model():
    return TinyLLaDA(CFG, seed=7)


def prompts(lens, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, MASK, (n,), generator=g).tolist() for n in lens]


@pytest.mark.parametrize("plen", [5, 13])
def test_none_equals_literal_llada_loop(model, plen):
    p = prompts([plen])[0]
    want = peers.llada(lambda x: model(x).logits, torch.tensor([p]), MASK, 16, 8, 16)
    out = dk.generate(model, [p], gen_length=16, block_length=8, steps=16, cache="none")
    assert torch.equal(out.tokens, want)
    assert out.nfe == 16


@pytest.mark.parametrize("cache", ["none", "prefix", "dual", "block"])
@pytest.mark.parametrize("lens", [[9], [3, 11, 6, 8]], ids=["B1", "B4-ragged"])
def test_kernels_equal_reference(model, cache, lens):
    ps = prompts(lens, seed=len(lens))
    kw = dict(gen_length=16, block_length=8, steps=8, cache=cache)
    a = dk.generate(model, ps, **kw)
    b = dk.generate(model, ps, **kw, backend="reference")
    assert torch.equal(a.tokens, b.tokens)
    assert a.nfe == b.nfe
    assert not (a.tokens[:, max(lens) :] == MASK).any()  # everything decoded


@pytest.mark.parametrize("cache", ["none", "dual", "block"])
def test_batch_rows_are_independent(model, cache):
    """A row decodes the same alone as inside a ragged batch (left padding is invisible)."""
    ps = prompts([4, 12, 7], seed=3)
    kw = dict(gen_length=16, block_length=8, steps=16, cache=cache)
    batch = dk.generate(model, ps, **kw).tokens
    P = 12
    for b, p in enumerate(ps):
        alone = dk.generate(model, [p], **kw).tokens
        assert torch.equal(batch[b, P - len(p) :], alone[0]), b


def test_seeded_sampling_is_reproducible(model):
    ps = prompts([6, 9], seed=4)
    kw = dict(gen_length=16, block_length=8, steps=16, temperature=1.0, cache="dual", seed=1234)
    a, b = dk.generate(model, ps, **kw), dk.generate(model, ps, **kw)
    assert torch.equal(a.tokens, b.tokens)
    c = dk.generate(model, ps, **{**kw, "seed": 99})
    assert not torch.equal(a.tokens, c.tokens)


def test_dual_refreshed_every_step_equals_none(model):
    ps = prompts([5, 10], seed=5)
    kw = dict(gen_length=16, block_length=8, steps=16)
    none = dk.generate(model, ps, **kw, cache="none")
    dual = dk.generate(model, ps, **kw, cache="dual", refresh_interval=1)
    assert torch.equal(none.tokens, dual.tokens)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_prefix_and_dual_follow_fast_dllm(model, cache):
    p = prompts([7], seed=6)[0]
    want = peers.fast_dllm_cached(
        model.forward, torch.tensor([p]), MASK, 16, 8, 16, dual=cache == "dual"
    )
    out = dk.generate(model, [p], gen_length=16, block_length=8, steps=16, cache=cache)
    assert torch.equal(out.tokens, want)


@pytest.mark.parametrize("rule", [{"threshold": 0.3}, {"factor": 1.0}], ids=["threshold", "factor"])
@pytest.mark.parametrize("cache", ["none", "dual"])
def test_parallel_decoding_rules(model, rule, cache):
    ps = prompts([6, 10], seed=8)
    kw = dict(gen_length=32, block_length=8, steps=32, cache=cache)
    fixed = dk.generate(model, ps, **kw)
    par = dk.generate(model, ps, **kw, **rule, trace=True)
    assert not (par.tokens[:, 10:] == MASK).any()
    assert par.nfe < fixed.nfe
    for t in par.trace:
        conf, com = t["conf"], t["committed"]
        for b in range(conf.shape[0]):
            eligible = torch.isfinite(conf[b])
            if not eligible.any():
                continue
            best = conf[b][eligible].max()
            if "threshold" in rule:
                ok = (conf[b] >= rule["threshold"]) | (conf[b] == best)
                assert bool(ok[com[b]].all())
            assert bool(com[b].any())  # progress every step
            assert bool(com[b][conf[b] == best].any())  # the best always commits


def test_trace_records_every_commit(model):
    ps = prompts([5, 9], seed=9)
    out = dk.generate(model, ps, gen_length=16, block_length=8, steps=8, trace=True)
    assert len(out.trace) == 8
    committed = sum(int(t["committed"].sum()) for t in out.trace)
    assert committed == 2 * 16


def test_eos_rows_stop(model):
    """A row that commits EOS in a block is filled with EOS and leaves the batch; the other rows
    decode exactly as without eos_id (rows are independent)."""
    ps = prompts([5, 9, 7], seed=15)
    kw = dict(gen_length=24, block_length=8, steps=24, cache="dual")
    gen = dk.generate(model, ps, **kw).tokens[:, 9:]
    # EOS: a token row 0 produces in its first block and rows 1, 2 never produce (seed chosen so)
    eos = next(t for t in gen[0, :8].tolist() if t not in gen[1:].flatten().tolist())
    out = dk.generate(model, ps, **kw, eos_id=eos, trace=True)
    assert out.trace[0]["rows"].tolist() == [0, 1, 2]
    assert out.trace[-1]["rows"].tolist() == [1, 2]  # row 0 left after block 0
    first = int((gen[0] == eos).nonzero()[0])
    assert torch.equal(out.tokens[0, 9 : 9 + first + 1], gen[0, : first + 1])
    assert bool((out.tokens[0, 9 + first :] == eos).all())
    assert torch.equal(out.tokens[1:, 9:], gen[1:])


def test_profile_and_progress(model):
    out = dk.generate(
        model,
        prompts([5])[:1],
        gen_length=16,
        block_length=8,
        steps=8,
        cache="block",
        profile=True,
        progress=True,
    )
    t = out.timing
    assert t["total_s"] > 0 and t["tokens_per_s"] > 0
    assert t["model_s"] > 0 and t["sampling_s"] > 0 and t["cache_s"] > 0
    assert out.nfe == 8 + 1 + 2  # steps + prefill + a commit per block


def test_bad_arguments(model):
    p = prompts([5])
    with pytest.raises(ValueError, match=r"cache must be one of"):
        dk.generate(model, p, gen_length=16, block_length=8, steps=8, cache="paged")
    with pytest.raises(ValueError, match=r"steps \(7\) must be a multiple"):
        dk.generate(model, p, gen_length=16, block_length=8, steps=7)
    with pytest.raises(ValueError, match=r"gen_length \(15\) must be a multiple"):
        dk.generate(model, p, gen_length=15, block_length=8, steps=8)
    with pytest.raises(ValueError, match=r"shift_logits needs cache='none'"):
        dk.generate(
            model, p, gen_length=16, block_length=8, steps=8, cache="dual", shift_logits=True
        )
    with pytest.raises(TypeError, match=r"unknown options"):
        dk.generate(model, p, gen_length=16, block_length=8, steps=8, top_q=3)


# ---- regressions found in review
# ------------------------------------------------------------------


def test_tensor_prompt_with_all_padding_column_equals_lists(model):
    ids = torch.tensor([[0, 5, 6, 7, 8, 9], [0, 0, 3, 4, 5, 6]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    kw = dict(gen_length=8, block_length=4, steps=8, cache="dual")
    a = dk.generate(model, ids, attention_mask=mask, **kw)
    b = dk.generate(model, [[5, 6, 7, 8, 9], [3, 4, 5, 6]], **kw)
    assert torch.equal(a.tokens, b.tokens)
    assert a.tokens.shape == (2, 5 + 8) and not (a.tokens[:, 5:] == MASK).any()
    assert a.tokens[1, 0].item() == 0  # pad_id in the padding


def test_shift_logits_reads_the_previous_column(model):
    """Dream / Fast-dLLM v2: the block's first column takes the logits of the column before it."""
    p = prompts([6], seed=11)[0]
    out = dk.generate(
        model, [p], gen_length=8, block_length=8, steps=8, shift_logits=True, trace=True
    )
    x = torch.full((1, 14), MASK, dtype=torch.long)
    x[0, :6] = torch.tensor(p)
    probs = torch.softmax(model(x).logits.double(), -1)
    want = probs[0, 5:13].max(-1).values  # column c uses c - 1
    assert torch.allclose(out.trace[0]["conf"][0].double(), want, atol=1e-5)


def test_eos_in_the_last_block_is_filled(model):
    ps = prompts([6, 9], seed=12)
    kw = dict(gen_length=8, block_length=8, steps=8)
    gen = dk.generate(model, ps, **kw).tokens[:, 9:]
    eos = int(gen[0, 3])
    out = dk.generate(model, ps, **kw, eos_id=eos).tokens[:, 9:]
    for b in range(2):
        hits = (gen[b] == eos).nonzero()
        if hits.numel():
            first = int(hits[0])
            assert torch.equal(out[b, :first], gen[b, :first]) and bool(
                (out[b, first:] == eos).all()
            )


def test_profile_parts_add_up(model):
    t = dk.generate(
        model, prompts([5]), gen_length=16, block_length=8, steps=16, cache="dual", profile=True
    ).timing
    assert t["model_s"] + t["sampling_s"] + t["cache_s"] <= t["total_s"] * 1.001


def test_masks_left_warn(model):
    with pytest.warns(RuntimeWarning, match=r"still masked"):
        out = dk.generate(
            model,
            prompts([5]),
            gen_length=8,
            block_length=8,
            steps=8,
            threshold=0.5,
            suppress_tokens=list(range(CFG.vocab_size)),
        )
    assert (out.tokens[:, 5:] == MASK).all()


def test_more_bad_arguments(model):
    with pytest.raises(ValueError, match=r"refresh_interval applies to cache='prefix' or 'dual'"):
        dk.generate(
            model,
            prompts([5]),
            gen_length=8,
            block_length=8,
            steps=8,
            cache="block",
            refresh_interval=2,
        )
    with pytest.raises(ValueError, match=r"attention_mask goes with a prompt tensor"):
        dk.generate(
            model,
            prompts([5]),
            gen_length=8,
            block_length=8,
            steps=8,
            attention_mask=torch.ones(1, 5),
        )


# ---- CUDA (skipped without a GPU) ----------------------------------------------------------------

CUDA_CFG = TinyLLaDAConfig(
    vocab_size=512, hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2
)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cache", ["none", "prefix", "dual", "block"])
def test_cuda_bf16_generation(cache):
    model = TinyLLaDA(CUDA_CFG, seed=3, dtype=torch.bfloat16, device="cuda")
    ps = prompts([5, 17, 9], seed=13)
    ps = [[t % CUDA_CFG.mask_id for t in p] for p in ps]
    kw = dict(gen_length=32, block_length=16, steps=32, cache=cache, seed=5)
    a = dk.generate(model, ps, **kw)
    b = dk.generate(model, ps, **kw)
    assert torch.equal(a.tokens, b.tokens)  # deterministic on the GPU too
    assert not (a.tokens[:, 17:] == CUDA_CFG.mask_id).any()
    ref = dk.generate(model, ps, **kw, backend="reference")
    agree = (ref.tokens[:, 17:] == a.tokens[:, 17:]).float().mean().item()
    assert agree > 0.8, agree  # bf16 attention rounding may flip a few


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cache", ["dual", "block"])
def test_cuda_step_path_has_no_device_sync(cache):
    """One step of a fixed-schedule generation (model forward with the plan's attention, then
    denoise_and_select with a device num_transfer) under torch's sync debug mode."""
    from dllm_kernels.cache import CachePolicy, PagedKVCache
    from dllm_kernels.runtime import _Backend, _PlanAttention, _Profiler

    model = TinyLLaDA(CUDA_CFG, seed=3, dtype=torch.bfloat16, device="cuda")
    kv = PagedKVCache(
        2,
        CUDA_CFG.num_kv_heads,
        CUDA_CFG.head_dim,
        num_pages=64,
        page_size=16,
        dtype=torch.bfloat16,
        device="cuda",
    )
    pol = CachePolicy(kv, [5, 9], 32, 16, cache)
    if cache == "block":
        pol.prefill()
    plan = pol.step(0)
    x = torch.randint(0, CUDA_CFG.mask_id, (2, 9 + 32), device="cuda")
    x[:, 9:] = CUDA_CFG.mask_id
    c0, c1 = pol.block_columns(0)
    k = torch.full((2,), 2, dtype=torch.int64, device="cuda")
    backend, prof = _Backend("kernels"), _Profiler(False, torch.device("cuda"))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        logits = model.forward(
            x[:, plan.columns[0] : plan.columns[1]],
            plan.positions,
            _PlanAttention(kv, plan, backend, prof),
        )
        lo = c0 - plan.columns[0]
        backend.denoise_and_select(
            logits[:, lo : lo + 16],
            x[:, c0:c1],
            CUDA_CFG.mask_id,
            {"num_transfer": k},
            1,
            0,
            {"temperature": 0.0, "confidence": "prob"},
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert int((x[:, c0:c1] != CUDA_CFG.mask_id).sum()) == 4


class _NoLogitsRange:
    """A model implementing only the required interface: forward(ids, positions, attn)."""

    def __init__(self, model):
        self.model, self.config, self.num_layers = model, model.config, model.num_layers

    def parameters(self):
        return self.model.parameters()

    def forward(self, input_ids, positions, attn):
        return self.model.forward(input_ids, positions, attn)


@pytest.mark.parametrize("cache", ["none", "dual", "block"])
def test_logits_range_is_optional(model, cache):
    ps = prompts([5, 9], seed=14)
    kw = dict(gen_length=16, block_length=8, steps=16, cache=cache, shift_logits=cache == "none")
    a = dk.generate(model, ps, **kw)
    b = dk.generate(_NoLogitsRange(model), ps, **kw)
    assert torch.equal(a.tokens, b.tokens) and a.nfe == b.nfe


# ---- MDLM ancestral sampling
# --------------------------------------------------------------------------


def philox_coin(seed):
    """The Bernoulli draws of select_transfer(probability=p) at step `offset` (reference Philox)."""
    from dllm_kernels.reference import philox

    def coin(offset, B, L):
        b = torch.arange(B).unsqueeze(1).expand(B, L)
        l = torch.arange(L).unsqueeze(0).expand(B, L)
        words = philox.random_words(seed, offset, b, l, torch.full((B, L), philox.SLOT_TRANSFER))
        return philox.closed0(words).double()

    return coin


def test_mdlm_equals_literal_mdlm_loop(model):
    """schedule='mdlm' = MDLM's caching sampler: same unmask decisions (same coins), greedy tokens,
    and the model runs only after a step that changed x."""
    ps = prompts([6, 6], seed=21)
    kw = dict(gen_length=16, block_length=8, steps=64)
    out = dk.generate(model, ps, **kw, schedule="mdlm", seed=5)
    want, nfe = peers.mdlm(
        lambda x: model(x).logits, torch.tensor(ps), MASK, 16, 8, 64, philox_coin(5)
    )
    assert torch.equal(out.tokens, want)
    assert out.nfe == nfe < 64  # most of the 64 steps reuse the last logits
    assert not (out.tokens[:, 6:] == MASK).any()
    assert out.tokens[:, 6:].unique().numel() >= 8
    for cache in ("dual", "block"):  # the cached modes: kernels == reference
        a = dk.generate(model, ps, **kw, schedule="mdlm", seed=5, cache=cache)
        b = dk.generate(model, ps, **kw, schedule="mdlm", seed=5, cache=cache, backend="reference")
        assert torch.equal(a.tokens, b.tokens) and a.nfe == b.nfe < 64 + 4


def test_mdlm_counts_real_forwards(model):
    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x, attention_mask=None):
            calls.append(1)
            return model(x, attention_mask=attention_mask)

    out = dk.generate(
        Counting(), [prompts([5])[0]], gen_length=8, steps=40, schedule="mdlm", seed=3, mask_id=MASK
    )
    assert out.nfe == len(calls) < 40
    ref = dk.generate(
        model,
        [prompts([5])[0]],
        gen_length=8,
        steps=40,
        schedule="mdlm",
        seed=3,
        backend="reference",
    )
    assert torch.equal(out.tokens, ref.tokens)
