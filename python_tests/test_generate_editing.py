"""generate(edit_threshold=...) (token editing) and generate(entropy_bound=...) against literal
eager loops written here: sglang's JointThreshold step (python/sglang/srt/dllm/algorithm/
joint_threshold.py) driven over the blocks with the forward of each cache mode written out with
dense K/V and torch.cat (as Fast-dLLM / block diffusion do), and an LLaDA-style loop whose
selection is transformers' DiffusionGemma EntropyBoundSampler.accept_canvas restricted to the
block's masked positions. Models: the shipped trained tiny-tasks model and random-init
transformers Qwen2 / Llama (non-degenerate outputs, asserted)."""

import math
import warnings

import peer_loops as peers
import pytest
import torch
import torch.nn.functional as F

import dllm_kernels as dk

CACHES = ["none", "prefix", "dual", "block"]


# ---- literal peer semantics ----------------------------------------------------------------------


def joint_threshold_step(
    block,
    logits,
    prompt_mask,
    state,
    mask_id,
    threshold,
    edit_threshold,
    max_post_edit_steps,
    penalty_lambda,
):
    """sglang JointThreshold.step for one request, literally: block [L] int64 (written in
    place), logits [L, V] (penalised in place), prompt_mask [L] bool, state dict."""
    if state["finished"]:
        return
    if penalty_lambda > 0:
        prev_ids = block[:-1]
        logits[1:, :].scatter_(1, prev_ids.unsqueeze(-1), -penalty_lambda, reduce="add")
    x = torch.argmax(logits, dim=-1)
    p = torch.squeeze(
        torch.gather(F.softmax(logits, dim=-1), dim=-1, index=torch.unsqueeze(x, -1)), -1
    )
    mask_index = block == mask_id
    has_mask = mask_index.any()
    mask_transfer_index = torch.zeros_like(mask_index)
    if has_mask:
        confidence = torch.where(mask_index, p, -math.inf)
        mask_transfer_index = confidence > threshold
        if not mask_transfer_index.any():
            _, select_index = torch.topk(confidence, k=1)
            mask_transfer_index[select_index] = True
    else:
        state["post_edit_steps"] += 1
        if state["post_edit_steps"] > max_post_edit_steps:
            state["finished"] = True
            return
    edit_mask = ~mask_index & ~prompt_mask
    edit_transfer_index = (p > edit_threshold) & (block != x) & edit_mask
    transfer_index = mask_transfer_index | edit_transfer_index
    if not transfer_index.any():
        state["finished"] = True
        return
    state["edits"] += int(edit_transfer_index.sum())
    block[transfer_index] = x[transfer_index]


def _sdpa(q, K, V, mask=None, scale=None):
    g = q.shape[2] // K.shape[2]
    return F.scaled_dot_product_attention(
        q.transpose(1, 2),
        K.repeat_interleave(g, 2).transpose(1, 2),
        V.repeat_interleave(g, 2).transpose(1, 2),
        attn_mask=mask,
        scale=scale,
    ).transpose(1, 2)


class LiteralCache:
    """The forwards of one cache mode with dense K/V (rows of equal prompt length):
    begin_block(x, k) before block k's first step, step_logits(x, k, i) -> [B, L, V] of the
    block, end_block(x, k) after it. forward(ids, positions, attn) is the model with its
    attention replaced (the runtime interface / TransformersModel.forward)."""

    def __init__(self, forward, mode, P, block_length, gen_length):
        self.forward, self.mode, self.P, self.bl = forward, mode, P, block_length
        self.n = P + gen_length
        self.kv = {}
        self.nfe = 0

    def pos(self, B, lo, hi):
        return torch.arange(lo, hi).unsqueeze(0).expand(B, -1)

    def run(self, ids, lo, attn):
        self.nfe += 1
        return self.forward(ids, self.pos(ids.shape[0], lo, lo + ids.shape[1]), attn)

    def prefill(self, x):
        if self.mode != "block":
            return
        P, bl = self.P, self.bl
        t = torch.arange(P)
        stair = (t[None, :] // bl) <= (t[:, None] // bl)  # (blocks from position 0)

        def attn(layer, q, k, v, softmax_scale=None):
            self.kv[layer] = (k, v)
            return _sdpa(q, k, v, stair, softmax_scale)

        self.run(x[:, :P], 0, attn)

    def step_logits(self, x, k, i):
        s0, s1 = self.P + k * self.bl, self.P + (k + 1) * self.bl
        if self.mode == "none" or (self.mode in ("prefix", "dual") and i == 0):

            def full(layer, q, kk, vv, softmax_scale=None):
                self.kv[layer] = (kk, vv)
                return _sdpa(q, kk, vv, scale=softmax_scale)

            return self.run(x, 0, full)[:, s0:s1]
        if self.mode == "dual":

            def dual(layer, q, kk, vv, softmax_scale=None):
                K, V = self.kv[layer]
                K = torch.cat([K[:, :s0], kk, K[:, s1:]], 1)
                V = torch.cat([V[:, :s0], vv, V[:, s1:]], 1)
                return _sdpa(q, K, V, scale=softmax_scale)

            return self.run(x[:, s0:s1], s0, dual)
        if self.mode == "prefix":

            def prefix(layer, q, kk, vv, softmax_scale=None):
                K, V = self.kv[layer]
                return _sdpa(
                    q,
                    torch.cat([K[:, :s0], kk], 1),
                    torch.cat([V[:, :s0], vv], 1),
                    scale=softmax_scale,
                )

            return self.run(x[:, s0:], s0, prefix)[:, : self.bl]

        def block(layer, q, kk, vv, softmax_scale=None):
            K, V = self.kv[layer]
            return _sdpa(q, torch.cat([K, kk], 1), torch.cat([V, vv], 1), scale=softmax_scale)

        return self.run(x[:, s0:s1], s0, block)

    def end_block(self, x, k):
        if self.mode != "block":
            return
        s0, s1 = self.P + k * self.bl, self.P + (k + 1) * self.bl

        def commit(layer, q, kk, vv, softmax_scale=None):
            K, V = self.kv[layer]
            self.kv[layer] = (torch.cat([K, kk], 1), torch.cat([V, vv], 1))
            return _sdpa(q, *self.kv[layer], scale=softmax_scale)

        self.run(x[:, s0:s1], s0, commit)


@torch.no_grad()
def literal_joint_threshold(
    forward,
    x_prompt,
    mask_id,
    gen_length,
    block_length,
    mode,
    threshold,
    edit_threshold,
    max_post_edit_steps=16,
    penalty_lambda=0.0,
):
    """sglang's JointThreshold over LLaDA's block layout: per block, states initialised from the
    block (prompt_mask = not masked), then at most block_length + max_post_edit_steps + 1 steps
    (its max_steps), each one batched forward and a step per request, until every request is
    finished. Returns (x, nfe, edits)."""
    B, P = x_prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long)
    x[:, :P] = x_prompt
    lc = LiteralCache(forward, mode, P, block_length, gen_length)
    lc.prefill(x)
    edits = 0
    for k in range(gen_length // block_length):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        states = [
            {
                "post_edit_steps": 0,
                "finished": False,
                "edits": 0,
                "prompt_mask": x[b, s0:s1] != mask_id,
            }
            for b in range(B)
        ]
        for i in range(block_length + max_post_edit_steps + 1):
            logits = lc.step_logits(x, k, i).clone()
            for b in range(B):
                blk = x[b, s0:s1]
                joint_threshold_step(
                    blk,
                    logits[b],
                    states[b]["prompt_mask"],
                    states[b],
                    mask_id,
                    threshold,
                    edit_threshold,
                    max_post_edit_steps,
                    penalty_lambda,
                )
            if all(st["finished"] for st in states):
                break
        edits += sum(st["edits"] for st in states)
        lc.end_block(x, k)
    return x, lc.nfe, edits


def accept_canvas_on_masked(logits, entropy_bound):
    """transformers' EntropyBoundSampler.accept_canvas, literally, over the masked positions of
    one row: logits [n, V] of those positions (in position order) -> accepted bool [n]."""
    dist = torch.distributions.Categorical(logits=logits.unsqueeze(0))
    token_entropy = dist.entropy()
    sorted_token_entropy, sorted_indices = torch.sort(token_entropy, dim=-1, descending=False)
    cumulative_entropy = torch.cumsum(sorted_token_entropy, dim=-1)
    sorted_selection_mask = cumulative_entropy - sorted_token_entropy <= entropy_bound
    return torch.scatter(
        input=torch.zeros_like(sorted_selection_mask),
        dim=-1,
        index=sorted_indices,
        src=sorted_selection_mask,
    )[0]


@torch.no_grad()
def literal_entropy_bound(logits_fn, x_prompt, mask_id, gen_length, block_length, entropy_bound):
    """LLaDA's block loop at T = 0 whose step commits, until the block has no mask, the argmax of
    the masked positions accept_canvas accepts. Returns (x, nfe)."""
    B, P = x_prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long)
    x[:, :P] = x_prompt
    nfe = 0
    for k in range(gen_length // block_length):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        while (x[:, s0:s1] == mask_id).any():
            logits = logits_fn(x)[:, s0:s1]
            nfe += 1
            for b in range(B):
                m = (x[b, s0:s1] == mask_id).nonzero().flatten()
                if len(m) == 0:
                    continue
                acc = accept_canvas_on_masked(logits[b, m], entropy_bound)
                pos = m[acc]
                x[b, s0 + pos] = logits[b, pos].argmax(-1)
    return x, nfe


# ---- models --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return dk.models.load_pretrained("tiny-tasks")


def task_prompts(tok, task, n, seed=0):
    from dllm_kernels import tasks as T

    t = T.get(task)
    probs = t.heldout(n, seed=seed)
    return t, [tok.encode(p.prompt) for p in probs]


def same_length(prompts):
    """The prompts cut to the shortest (the literal loops take rows of equal length)."""
    n = min(len(p) for p in prompts)
    return torch.tensor([p[-n:] for p in prompts])


def hf_model(family="qwen2", head_dim=64):
    pytest.importorskip("transformers", minversion="5.0", reason="needs transformers >= 5")
    return peers.hf_model(family, head_dim)


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*a, **kw)


# ---- token editing -------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", CACHES)
def test_editing_equals_literal_joint_threshold_hf(cache):
    model = hf_model()
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(3)
    p = torch.randint(0, V - 1, (2, 9), generator=g)
    kw = dict(threshold=0.5, edit_threshold=0.3, max_post_edit_steps=4)
    from dllm_kernels.integrations import transformers as hf

    with hf.TransformersModel(model) as rt:
        want, nfe, edits = literal_joint_threshold(rt.forward, p, V - 1, 32, 16, cache, **kw)
    out = quiet(
        dk.generate, model, p, gen_length=32, block_length=16, cache=cache, trace=True, **kw
    )
    peers.assert_not_degenerate(out.tokens[:, 9:], torch.cat([t["conf"] for t in out.trace]))
    assert edits > 0, "the literal loop made no token -> token edit: the test would be vacuous"
    assert torch.equal(out.tokens, want)
    assert out.nfe == nfe


@pytest.mark.parametrize("cache", CACHES)
def test_editing_equals_literal_joint_threshold_tiny(tiny, cache):
    model, tok = tiny
    task, prompts = task_prompts(tok, "sort", 6, seed=1)
    p = same_length(prompts)
    kw = dict(threshold=0.7, edit_threshold=0.5, max_post_edit_steps=3)
    want, nfe, edits = literal_joint_threshold(
        model.forward, p, tok.mask_id, task.gen_length, task.gen_length // 2, cache, **kw
    )
    out = dk.generate(
        model,
        p,
        gen_length=task.gen_length,
        block_length=task.gen_length // 2,
        cache=cache,
        mask_id=tok.mask_id,
        trace=True,
        **kw,
    )
    peers.assert_not_degenerate(
        out.tokens[:, p.shape[1] :], torch.cat([t["conf"] for t in out.trace]), min_distinct=5
    )
    assert edits > 0, "the literal loop made no token -> token edit: the test would be vacuous"
    assert torch.equal(out.tokens, want)
    assert out.nfe == nfe


def test_editing_penalty_equals_literal(tiny):
    model, tok = tiny
    task, prompts = task_prompts(tok, "addition", 4, seed=2)
    p = same_length(prompts)
    kw = dict(threshold=0.6, edit_threshold=0.4, max_post_edit_steps=2, penalty_lambda=2.0)
    want, nfe, edits = literal_joint_threshold(
        model.forward, p, tok.mask_id, task.gen_length, task.gen_length, "none", **kw
    )
    assert edits > 0
    out = dk.generate(model, p, gen_length=task.gen_length, cache="none", mask_id=tok.mask_id, **kw)
    plain = dk.generate(
        model,
        p,
        gen_length=task.gen_length,
        cache="none",
        mask_id=tok.mask_id,
        **{**kw, "penalty_lambda": 0.0},
    )
    assert torch.equal(out.tokens, want) and out.nfe == nfe
    assert not torch.equal(out.tokens, plain.tokens), "the penalty changed nothing"


@pytest.mark.parametrize("cache", CACHES)
def test_editing_kernels_equal_reference_with_cfg(tiny, cache):
    model, tok = tiny
    _, prompts = task_prompts(tok, "addition", 5, seed=4)
    kw = dict(
        gen_length=8,
        block_length=4,
        cache=cache,
        mask_id=tok.mask_id,
        pad_id=tok.pad_id,
        threshold=0.8,
        edit_threshold=0.6,
        cfg_scale=0.5,
        max_post_edit_steps=2,
    )
    a = dk.generate(model, prompts, **kw)
    b = dk.generate(model, prompts, **kw, backend="reference")
    assert torch.equal(a.tokens, b.tokens) and a.nfe == b.nfe


def test_editing_max_post_edit_steps_bounds_the_block(tiny):
    """With edit_threshold 0 every decoded position whose argmax differs is rewritten; the block
    ends at the latest block_length + max_post_edit_steps + 1 steps."""
    model, tok = tiny
    _, prompts = task_prompts(tok, "sudoku", 3, seed=5)
    for m in (0, 2):
        out = dk.generate(
            model,
            prompts,
            gen_length=16,
            block_length=16,
            mask_id=tok.mask_id,
            threshold=0.99,
            edit_threshold=0.0,
            max_post_edit_steps=m,
            trace=True,
        )
        assert len(out.trace) == out.nfe <= 16 + m + 1
        assert not (out.tokens[:, -16:] == tok.mask_id).any()


def test_editing_bad_arguments(tiny):
    model, tok = tiny
    kw = dict(gen_length=8, mask_id=tok.mask_id)
    cases = [
        ({"edit_threshold": 0.5}, "threshold"),
        ({"edit_threshold": 1.5, "threshold": 0.9}, "edit_threshold"),
        (
            {"edit_threshold": 0.5, "threshold": 0.9, "max_post_edit_steps": -1},
            "max_post_edit_steps",
        ),
        (
            {"edit_threshold": 0.5, "threshold": 0.9, "max_post_edit_steps": 1.5},
            "max_post_edit_steps",
        ),
        ({"edit_threshold": 0.5, "threshold": 0.9, "penalty_lambda": -1.0}, "penalty_lambda"),
        ({"edit_threshold": 0.5, "threshold": 0.9, "penalty_lambda": math.nan}, "penalty_lambda"),
        ({"penalty_lambda": 1.0, "threshold": 0.9}, "penalty_lambda"),
        ({"edit_threshold": 0.5, "threshold": 0.9, "temperature": 1.0}, "temperature"),
        ({"edit_threshold": 0.5, "factor": 1.0}, "edit_threshold"),
        ({"edit_threshold": "high", "threshold": 0.9}, "edit_threshold"),
    ]
    for opts, name in cases:
        with pytest.raises(ValueError, match=name):
            dk.generate(model, [[1, 2, 3]], **kw, **opts)


# ---- entropy-bounded decoding --------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.05, 0.5, 2.0])
def test_entropy_bound_equals_literal_eb_loop_hf(gamma):
    model = hf_model("llama", 48)
    V = model.config.vocab_size
    p = torch.randint(0, V - 1, (2, 7), generator=torch.Generator().manual_seed(6))
    from dllm_kernels.integrations import transformers as hf

    def logits_fn(x):
        with hf.bidirectional(model):
            return model(x).logits

    want, nfe = literal_entropy_bound(logits_fn, p, V - 1, 32, 16, gamma)
    out = quiet(
        dk.generate, model, p, gen_length=32, block_length=16, entropy_bound=gamma, trace=True
    )
    conf = torch.cat([t["conf"][t["committed"]] for t in out.trace])
    peers.assert_not_degenerate(out.tokens[:, 7:], conf)
    assert torch.equal(out.tokens, want)
    assert out.nfe == nfe
    assert 2 <= nfe < 32 or gamma == 0.05  # parallel: fewer forwards than tokens


@pytest.mark.parametrize("cache", CACHES)
def test_entropy_bound_tiny_every_cache_mode(tiny, cache):
    model, tok = tiny
    task, prompts = task_prompts(tok, "addition", 6, seed=7)
    p = same_length(prompts)
    kw = dict(gen_length=task.gen_length, mask_id=tok.mask_id, entropy_bound=0.3)
    if cache == "none":
        want, nfe = literal_entropy_bound(
            lambda x: model(x).logits, p, tok.mask_id, task.gen_length, task.gen_length, 0.3
        )
        out = dk.generate(model, p, **kw)
        assert torch.equal(out.tokens, want) and out.nfe == nfe
    a = dk.generate(model, p, cache=cache, **kw, trace=True)
    b = dk.generate(model, p, cache=cache, **kw, backend="reference")
    assert torch.equal(a.tokens, b.tokens) and a.nfe == b.nfe
    for t in a.trace:  # every step: the accepted prefix obeys the bound
        for conf, com in zip(t["conf"], t["committed"]):
            h = (-conf[com]).double().sort().values
            assert len(h) >= 1 and float(h.sum() - h.max()) <= 0.3 + 1e-6


def test_entropy_bound_bad_arguments(tiny):
    model, tok = tiny
    kw = dict(gen_length=8, mask_id=tok.mask_id)
    for opts, name in [
        ({"entropy_bound": 0.0}, "entropy_bound"),
        ({"entropy_bound": -1.0}, "entropy_bound"),
        ({"entropy_bound": math.inf}, "entropy_bound"),
        ({"entropy_bound": 0.5, "threshold": 0.9}, "entropy_bound"),
        ({"entropy_bound": 0.5, "remasking": "margin"}, "remasking"),
        ({"entropy_bound": 0.5, "schedule": "dream"}, "entropy_bound"),
    ]:
        with pytest.raises(ValueError, match=name):
            dk.generate(model, [[1, 2, 3]], **kw, **opts)
