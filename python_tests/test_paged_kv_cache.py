"""PagedKVCache and the dLLM cache policies (CachePolicy): memory accounting, plans, and what the
cache holds after each phase of prefix / dual / block-commit / forked-prompt decoding, checked
against a toy bidirectional "model" whose K/V depend on every token of the sequence."""

import pytest
import torch

import dllm_kernels as dk
from dllm_kernels import CachePolicy, PagedKVCache

L_LAYERS, H, D, MASK, PAD = 2, 2, 8, 99, 98


def toy_kv(tokens, pad, layer):
    """K/V [B, C, H, D] for every column: depends on the column's token, its position and the mean
    of the row's real tokens (bidirectional, so every refresh changes every position)."""
    B, C = tokens.shape
    g = torch.Generator().manual_seed(1234 + layer)
    emb_k, emb_v = torch.randn(100, H, D, generator=g), torch.randn(100, H, D, generator=g)
    pos = torch.arange(C).unsqueeze(0) - torch.tensor(pad).unsqueeze(1)
    real = (pos >= 0).float()[..., None, None]
    out = []
    for emb in (emb_k, emb_v):
        e = emb[tokens] * real
        ctx = e.sum(1, keepdim=True) / real.sum(1, keepdim=True)
        out.append(e + 0.5 * ctx + 0.01 * pos.clamp(min=0)[..., None, None])
    return out


def cached(cache, seq_id, n, layer):
    """The first n cached tokens of one sequence, [n, H, D] (k, v)."""
    table = torch.tensor([cache.pages(seq_id)], dtype=torch.int32, device=cache.device)
    k, v = dk.cache_gather(
        cache.k(layer),
        cache.v(layer),
        table,
        torch.tensor([n], dtype=torch.int32, device=cache.device),
    )
    return k[0].cpu(), v[0].cpu()


def make_batch(prompt_lens, gen_length, gen):
    P = max(prompt_lens)
    tokens = torch.full((len(prompt_lens), P + gen_length), MASK, dtype=torch.long)
    for b, p in enumerate(prompt_lens):
        tokens[b, : P - p] = PAD
        tokens[b, P - p : P] = torch.randint(0, 90, (p,), generator=gen)
    return tokens, [P - p for p in prompt_lens]


def feed(policy_plan, tokens, pad, cache):
    """A 'forward' over the plan's columns that writes the fresh K/V like a model layer would."""
    c0, c1 = policy_plan.columns
    for layer in range(L_LAYERS):
        k, v = toy_kv(tokens, pad, layer)
        policy_plan.write(
            cache,
            layer,
            k[:, c0:c1].to(cache.device).contiguous(),
            v[:, c0:c1].to(cache.device).contiguous(),
        )


def unmask_some(tokens, cols, gen):
    c0, c1 = cols
    block = tokens[:, c0:c1]
    masked = block == MASK
    pick = masked & (torch.rand(block.shape, generator=gen) < 0.5)
    block[pick] = torch.randint(0, 90, (int(pick.sum()),), generator=gen)


def expect_rows(cache, policy, tokens, upto, kv_cols=None):
    """Row b's cached positions [0, upto[b]) equal the toy K/V of the full sequence (or of the
    given [B, C, H, D] snapshot per layer)."""
    for layer in range(L_LAYERS):
        k_all, v_all = kv_cols[layer] if kv_cols else toy_kv(tokens, policy.pad, layer)
        for b, sid in enumerate(policy.seq_ids):
            n = upto[b]
            ck, cv = cached(cache, sid, n, layer)
            pad = policy.pad[b]
            assert torch.equal(ck, k_all[b, pad : pad + n]), f"layer {layer} row {b} k"
            assert torch.equal(cv, v_all[b, pad : pad + n]), f"layer {layer} row {b} v"


PROMPTS = [5, 17, 9]


def new_cache(device, num_pages=64, page_size=4):
    return PagedKVCache(
        L_LAYERS, H, D, num_pages=num_pages, page_size=page_size, dtype=torch.float32, device=device
    )


def test_memory_accounting(device):
    cache = new_cache(device, num_pages=10, page_size=4)
    per_page = L_LAYERS * 2 * 4 * H * D * 4
    assert cache.bytes_per_page == per_page and cache.memory_bytes == 10 * per_page
    assert cache.used_bytes == 0 and cache.free_bytes == 10 * per_page
    a, b = cache.new_seq_ids(2)
    cache.reserve([a, b], [5, 9])  # 2 + 3 pages
    assert cache.used_bytes == 5 * per_page and cache.free_bytes == 5 * per_page
    with pytest.raises(RuntimeError, match=r"out of pages: needs 6, 5 free"):
        cache.reserve([a, b], [13, 25])  # all or nothing: a must not grow
    assert len(cache.pages(a)) == 2 and cache.used_bytes == 5 * per_page
    cache.free([a])
    assert cache.used_bytes == 3 * per_page
    big = PagedKVCache.from_memory(
        L_LAYERS,
        H,
        D,
        memory_bytes=7 * per_page + 5,
        page_size=4,
        dtype=torch.float32,
        device=device,
    )
    assert big.num_pages == 7


@pytest.mark.parametrize("refresh_interval", [None, 2])
def test_dual_cache_matches_full_recompute(device, gen, refresh_interval):
    gen_length, bl, steps = 12, 4, 3
    cache = new_cache(device)
    tokens, _ = make_batch(PROMPTS, gen_length, gen)
    pol = CachePolicy(cache, PROMPTS, gen_length, bl, "dual", refresh_interval=refresh_interval)
    totals = [p + gen_length for p in PROMPTS]
    for k in range(pol.num_blocks):
        feed(pol.refresh(k), tokens, pol.pad, cache)
        expect_rows(cache, pol, tokens, totals)  # after a refresh == full recompute
        for step in range(steps):
            if pol.refresh_due(step):
                feed(pol.refresh(k), tokens, pol.pad, cache)
                expect_rows(cache, pol, tokens, totals)
            snapshot = [
                [t.clone() for t in toy_kv_cached(cache, pol, totals, layer)]
                for layer in range(L_LAYERS)
            ]
            unmask_some(tokens, pol.block_columns(k), gen)
            plan = pol.step(k)
            assert plan.attend_from is None and plan.max_cache_len == max(totals)
            feed(plan, tokens, pol.pad, cache)
            # the block's slots hold the fresh K/V, every other slot what the last refresh wrote
            for layer in range(L_LAYERS):
                fresh = toy_kv(tokens, pol.pad, layer)
                for b, sid in enumerate(pol.seq_ids):
                    s = PROMPTS[b] + k * bl
                    for which in range(2):
                        got = cached(cache, sid, totals[b], layer)[which]
                        want = snapshot[layer][which][b, : totals[b]].clone()
                        want[s : s + bl] = fresh[which][b, pol.pad[b] + s : pol.pad[b] + s + bl]
                        assert torch.equal(got, want)
    pol.close()
    assert cache.used_bytes == 0


def toy_kv_cached(cache, pol, totals, layer):
    """The cache's current content per row, padded into [B, max_total, H, D] (k, v)."""
    out = []
    for which in range(2):
        rows = [cached(cache, sid, totals[b], layer)[which] for b, sid in enumerate(pol.seq_ids)]
        t = torch.zeros(len(rows), max(totals), H, D)
        for b, r in enumerate(rows):
            t[b, : r.shape[0]] = r
        out.append(t)
    return out


def test_prefix_cache(device, gen):
    gen_length, bl = 12, 4
    cache = new_cache(device)
    tokens, _ = make_batch(PROMPTS, gen_length, gen)
    pol = CachePolicy(cache, PROMPTS, gen_length, bl, "prefix")
    for k in range(pol.num_blocks):
        refresh = pol.refresh(k)
        assert refresh.columns == (0, max(PROMPTS) + gen_length)
        assert refresh.attend_from == max(PROMPTS) + k * bl  # fresh block + suffix attended
        assert refresh.q_start.cpu().tolist() == [p - max(PROMPTS) for p in PROMPTS]
        feed(refresh, tokens, pol.pad, cache)
        starts = [p + k * bl for p in PROMPTS]
        expect_rows(cache, pol, tokens, starts)  # prompt + finished blocks cached
        step = pol.step(k)
        assert step.slot_mapping is None and step.columns == (
            max(PROMPTS) + k * bl,
            max(PROMPTS) + gen_length,
        )
        assert step.cache_lens.cpu().tolist() == starts and step.attend_from == 0
        assert step.q_start.cpu().tolist() == starts
        # positions of the fed columns are the rows' real positions
        assert step.positions.cpu()[:, 0].tolist() == starts
        before = [cached(cache, sid, s, 0) for sid, s in zip(pol.seq_ids, starts)]
        unmask_some(tokens, pol.block_columns(k), gen)
        feed(step, tokens, pol.pad, cache)  # writes nothing
        after = [cached(cache, sid, s, 0) for sid, s in zip(pol.seq_ids, starts)]
        assert all(torch.equal(a[0], b[0]) for a, b in zip(after, before))


def test_block_commit_and_release(device, gen):
    gen_length, bl = 12, 4
    cache = new_cache(device)
    tokens, _ = make_batch(PROMPTS, gen_length, gen)
    pol = CachePolicy(cache, PROMPTS, gen_length, bl, "block")
    pre = pol.prefill()
    assert pre.mask == "block_causal" and pre.block_size == bl
    feed(pre, tokens, pol.pad, cache)
    expect_rows(cache, pol, tokens, PROMPTS)
    written = [
        toy_kv(tokens, pol.pad, layer) for layer in range(L_LAYERS)
    ]  # what each commit wrote
    per_page = cache.bytes_per_page
    for k in range(pol.num_blocks):
        step = pol.step(k)
        want_lens = [p + k * bl if sid is not None else 0 for p, sid in zip(PROMPTS, pol.seq_ids)]
        assert step.slot_mapping is None and step.cache_lens.cpu().tolist() == want_lens
        unmask_some(tokens, pol.block_columns(k), gen)
        tokens[:, slice(*pol.block_columns(k))][tokens[:, slice(*pol.block_columns(k))] == MASK] = 7
        if k == 1:
            used = cache.used_bytes
            pol.release([1])  # row 1 finished (EOS): pages freed
            assert cache.used_bytes == used - (-(-(PROMPTS[1] + bl) // 4)) * per_page
        commit = pol.commit(k)
        feed(commit, tokens, pol.pad, cache)
        c0, c1 = pol.block_columns(k)
        for layer in range(L_LAYERS):
            fresh = toy_kv(tokens, pol.pad, layer)
            for which in range(2):
                written[layer][which][:, c0:c1] = fresh[which][:, c0:c1]
        live = [b for b, sid in enumerate(pol.seq_ids) if sid is not None]
        for layer in range(L_LAYERS):
            for b in live:
                n = PROMPTS[b] + (k + 1) * bl
                got = cached(cache, pol.seq_ids[b], n, layer)
                for which in range(2):
                    assert torch.equal(
                        got[which], written[layer][which][b, pol.pad[b] : pol.pad[b] + n]
                    )
        if k >= 1:  # the released row writes nothing
            assert commit.slot_mapping.cpu()[1].tolist() == [-1] * bl
    pol.close()
    assert cache.used_bytes == 0


def test_forked_prompt_shares_pages(device, gen):
    """n samples of one prompt: the prompt's pages are shared (memory counted once); the first
    commit copies only the partly filled last prompt page; the source stays intact."""
    gen_length, bl, n, p = 8, 4, 3, 10  # page_size 4: prompt pages 0..2, last one half full
    cache = new_cache(device)
    tokens, _ = make_batch([p], gen_length, gen)
    src = CachePolicy(cache, [p], gen_length, bl, "block")
    feed(src.prefill(), tokens, src.pad, cache)
    prompt_pages = cache.pages(src.seq_ids[0])
    src_kv = cached(cache, src.seq_ids[0], p, 0)
    forks = cache.new_seq_ids(n)
    cache.fork(src.seq_ids[0], forks)
    assert cache.used_bytes == 3 * cache.bytes_per_page  # shared, not copied
    pol = CachePolicy(cache, [p] * n, gen_length, bl, "block", seq_ids=forks, prompt_cached=True)
    assert pol.prefill().slot_mapping is None
    batch = tokens.repeat(n, 1)
    written = torch.zeros(n, p + gen_length, H, D)  # layer 0 K of each commit
    for k in range(pol.num_blocks):
        cols = slice(*pol.block_columns(k))
        unmask_some(batch, pol.block_columns(k), gen)
        batch[:, cols][batch[:, cols] == MASK] = 3
        feed(pol.commit(k), batch, pol.pad, cache)
        written[:, cols] = toy_kv(batch, pol.pad, 0)[0][:, cols]
    for i, sid in enumerate(forks):
        pages = cache.pages(sid)
        assert pages[:2] == prompt_pages[:2] and pages[2] != prompt_pages[2]  # copy-on-write
        got_k, _ = cached(cache, sid, p + gen_length, 0)
        assert torch.equal(got_k[:p], src_kv[0])  # the prompt K/V, shared or copied
        assert torch.equal(got_k[p:], written[i, p:])  # its own blocks
    assert torch.equal(cached(cache, src.seq_ids[0], p, 0)[0], src_kv[0])  # source intact
    # pages: 3 prompt (shared) + per fork: 1 copied page + 2 new (positions 12..17)
    assert cache.used_bytes == (3 + n * 3) * cache.bytes_per_page


def test_bad_arguments(device):
    cache = new_cache(device, num_pages=4)
    with pytest.raises(ValueError, match=r"mode must be one of"):
        CachePolicy(cache, [3], 8, 4, "suffix")
    with pytest.raises(
        ValueError, match=r"gen_length \(10\) must be a multiple of block_length \(4\)"
    ):
        CachePolicy(cache, [3], 10, 4, "dual")
    with pytest.raises(RuntimeError, match=r"out of pages: needs 6, 4 free"):
        CachePolicy(cache, [3, 3], 8, 4, "dual")
    assert cache.used_bytes == 0
    pol = CachePolicy(cache, [3], 4, 4, "prefix")
    with pytest.raises(RuntimeError, match=r"CachePolicy.commit: not a step of mode 'prefix'"):
        pol.commit(0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_step_path_has_no_device_sync(gen):
    """Building a block's plans syncs at most on the host side; the per-step writes never sync."""
    cache = new_cache("cuda")
    pol = CachePolicy(cache, PROMPTS, 8, 4, "dual")
    plan = pol.step(0)
    k = torch.randn(3, 4, H, D, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        for layer in range(L_LAYERS):
            plan.write(cache, layer, k, k)
        assert pol.step(0) is plan  # memoised per block
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
