"""The published dLLM decoding loops written out literally: eager PyTorch at T = 0, the way the
peers' code writes them (ML-GSAI/LLaDA generate, NVlabs/Fast-dLLM generate and its dense-K/V
prefix / dual cache, Dream's _sample, a block-diffusion loop), in our own words. They are the
yardstick: the parity tests compare the runtime and dllm_kernels.compat with them token for
token, and the benchmarks time them against the runtime.

logits_fn(x) -> [B, T, V] is the model's uncached forward over the whole sequence;
forward(ids, positions, attn) is the model with its attention replaced by attn(layer, q, k, v)
(the runtime interface, or TransformersModel.forward for a transformers model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .reference.block_attention import block_causal_mask

NEG_INF = -float("inf")


def schedule(block_mask: torch.Tensor, steps: int) -> torch.Tensor:
    total = block_mask.sum(1, keepdim=True)
    num = (total // steps).repeat(1, steps)
    for b in range(num.shape[0]):
        num[b, : int(total[b] % steps)] += 1
    return num


@torch.no_grad()
def llada(logits_fn, x_prompt, mask_id, gen_length, block_length, steps, cfg_scale=0.0):
    """LLaDA's generate at T = 0, low_confidence: logits_fn(x) -> [B, T, V] over the whole
    sequence each step (CFG: one batch of x and x with the prompt masked), float64 softmax
    confidence, -inf past the block, a per-row top-k loop."""
    B, P = x_prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long, device=x_prompt.device)
    x[:, :P] = x_prompt
    prompt_index = x != mask_id
    nb = gen_length // block_length
    spb = steps // nb
    for k in range(nb):
        s1 = P + (k + 1) * block_length
        num = schedule(x[:, s1 - block_length:s1] == mask_id, spb)
        for i in range(spb):
            mask_index = x == mask_id
            if cfg_scale > 0:
                un = x.clone()
                un[prompt_index] = mask_id
                c, u = logits_fn(torch.cat([x, un])).chunk(2)
                logits = u + (cfg_scale + 1) * (c - u)
            else:
                logits = logits_fn(x)
            x0 = logits.argmax(-1)
            p = F.softmax(logits.double(), -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            p[:, s1:] = NEG_INF
            x0 = torch.where(mask_index, x0, x)
            conf = torch.where(mask_index, p, torch.tensor(NEG_INF, dtype=torch.double, device=x.device))
            transfer = torch.zeros_like(x, dtype=torch.bool)
            for j in range(B):
                transfer[j, torch.topk(conf[j], k=int(num[j, i])).indices] = True
            x[transfer] = x0[transfer]
    return x


@torch.no_grad()
def fast_dllm(logits_fn, x_prompt, mask_id, gen_length, block_length, steps, threshold=None,
              factor=None):
    """Fast-dLLM's generate (no cache) at T = 0: until the block has no mask, model(x) and the
    schedule's count (threshold: every masked position >= threshold plus the best; factor:
    Fast-dLLM's get_transfer_index_dynamic). Returns (x, nfe)."""
    B, P = x_prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long, device=x_prompt.device)
    x[:, :P] = x_prompt
    nb = gen_length // block_length
    spb = steps // nb
    nfe = 0
    for k in range(nb):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        num = schedule(x[:, s0:s1] == mask_id, spb)
        i = 0
        while True:
            nfe += 1
            mask_index = x == mask_id
            mask_index[:, s1:] = False
            logits = logits_fn(x)
            x0 = logits.argmax(-1)
            p = F.softmax(logits.double(), -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            x0 = torch.where(mask_index, x0, x)
            conf = torch.where(mask_index, p, torch.tensor(NEG_INF, dtype=torch.double, device=x.device))
            transfer = torch.zeros_like(x, dtype=torch.bool)
            for j in range(B):
                n = int(mask_index[j].sum()) if (threshold is not None or factor is not None) else int(num[j, i])
                vals, idx = torch.topk(conf[j], k=n)
                if factor is not None:             # get_transfer_index_dynamic, quirks included
                    threshs = [-1.0] + [1 - factor / (m + 1) for m in range(2, n + 1)]
                    top_i = 0
                    for top_i in range(n):
                        if vals[top_i] < threshs[top_i]:
                            break
                    if top_i == 0 or top_i == n - 1:
                        top_i += 1
                    idx = idx[:top_i]
                elif threshold is not None:
                    idx = torch.cat([idx[:1], idx[1:][vals[1:] >= threshold]])
                transfer[j, idx] = True
            x[transfer] = x0[transfer]
            i += 1
            if not bool((x[:, s0:s1] == mask_id).any()):
                break
    return x, nfe


@torch.no_grad()
def fast_dllm_cached(forward, x_prompt, mask_id, gen_length, block_length, steps, dual: bool):
    """Fast-dLLM v1's prefix / dual cache at T = 0 with dense K/V (rows of equal prompt length):
    a full forward at each block start records every layer's K/V and makes the block's first
    step; the block's other steps feed the block (dual) or block + suffix (prefix) and attend to
    the recorded prefix (and suffix, in dual) spliced with the fresh K/V by torch.cat. Runs the
    schedule's steps_per_block steps per block."""
    B, P = x_prompt.shape
    n = P + gen_length
    x = torch.full((B, n), mask_id, dtype=torch.long, device=x_prompt.device)
    x[:, :P] = x_prompt
    nb = gen_length // block_length
    spb = steps // nb
    pos = torch.arange(n, device=x.device).unsqueeze(0).expand(B, -1)

    def sdpa(q, K, V, scale=None):
        g = q.shape[2] // K.shape[2]
        return F.scaled_dot_product_attention(q.transpose(1, 2), K.repeat_interleave(g, 2).transpose(1, 2),
                                              V.repeat_interleave(g, 2).transpose(1, 2), scale=scale).transpose(1, 2)

    for k in range(nb):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        num = schedule(x[:, s0:s1] == mask_id, spb)
        kv = {}

        def record(layer, q, kk, vv, softmax_scale=None):
            kv[layer] = (kk, vv)
            return sdpa(q, kk, vv, softmax_scale)

        logits = forward(x, pos, record)[:, s0:s1]
        for i in range(spb):
            if i > 0:
                lo, hi = (s0, s1) if dual else (s0, n)

                def cached(layer, q, kk, vv, softmax_scale=None):
                    K, V = kv[layer]
                    if dual:
                        K, V = torch.cat([K[:, :lo], kk, K[:, hi:]], 1), torch.cat([V[:, :lo], vv, V[:, hi:]], 1)
                    else:
                        K, V = torch.cat([K[:, :lo], kk], 1), torch.cat([V[:, :lo], vv], 1)
                    return sdpa(q, K, V, softmax_scale)

                logits = forward(x[:, lo:hi], pos[:, lo:hi], cached)[:, :block_length]
            x0 = logits.argmax(-1)
            p = F.softmax(logits.double(), -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            m = x[:, s0:s1] == mask_id
            conf = torch.where(m, p, torch.tensor(NEG_INF, dtype=torch.double, device=x.device))
            blk = x[:, s0:s1]
            for j in range(B):
                idx = torch.topk(conf[j], k=int(num[j, i])).indices
                blk[j, idx] = x0[j, idx]
    return x


@torch.no_grad()
def dream(logits_fn, x_prompt, mask_id, gen_length, steps, alg="maskgit_plus", eps=1e-3):
    """Dream's _sample at T = 0 (no top-p / top-k): logits shifted one column right,
    probs = softmax, confidence max prob / top1 - top2 / sum p log(p + 1e-10), one batch-wide
    count int(mean_masked * (1 - s/t)) (all at the last step) of the most confident per row."""
    B, P = x_prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long, device=x_prompt.device)
    x[:, :P] = x_prompt
    t = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == mask_id
        logits = logits_fn(x)
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        probs = torch.softmax(logits[mask_index].float(), -1)
        conf, x0 = probs.max(-1)
        if alg == "topk_margin":
            top2 = probs.topk(2, -1).values
            conf = top2[:, 0] - top2[:, 1]
        elif alg == "entropy":
            conf = (probs * torch.log(probs + 1e-10)).sum(-1)
        mean_masked = mask_index.sum() / B
        n = int(mean_masked * (1 - t[i + 1] / t[i])) if i < steps - 1 else int(mean_masked)
        full = torch.full(x.shape, NEG_INF, device=x.device)
        full[mask_index] = conf
        if n > 0:
            idx = torch.topk(full, n).indices
            x_ = torch.full_like(x, mask_id)
            x_[mask_index] = x0
            rows = torch.arange(B, device=x.device).unsqueeze(1).expand_as(idx)
            x[rows, idx] = x_[rows, idx]
    return x


@torch.no_grad()
def block_diffusion(forward, x_prompt, mask_id, gen_length, block_length, steps):
    """Block diffusion (BD3-LM / Fast-dLLM v2 / SDAR layout with blocks from the prompt end) at
    T = 0 with dense K/V (B = 1): the prompt is prefilled with the staircase mask (key t visible to
    position p iff t // block_length <= p // block_length); each step feeds only the current block,
    which attends to the cached prefix and itself; a finished block is fed once more and its K/V
    appended. forward(ids, pos, attn) as in fast_dllm_cached."""
    P = x_prompt.shape[1]
    x = torch.full((1, P + gen_length), mask_id, dtype=torch.long)
    x[:, :P] = x_prompt
    nb = gen_length // block_length
    spb = steps // nb
    cache = {}

    def sdpa(q, K, V, mask=None):
        g = q.shape[2] // K.shape[2]
        return F.scaled_dot_product_attention(q.transpose(1, 2), K.repeat_interleave(g, 2).transpose(1, 2),
                                              V.repeat_interleave(g, 2).transpose(1, 2), attn_mask=mask).transpose(1, 2)

    pos = torch.arange(P)
    stair = block_causal_mask(pos[:, None], pos[None, :], block_length)          # [q, k]

    def prefill(layer, q, k, v, softmax_scale=None):
        cache[layer] = (k, v)
        return sdpa(q, k, v, stair)

    forward(x[:, :P], pos.unsqueeze(0), prefill)
    for k in range(nb):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        num = schedule(x[:, s0:s1] == mask_id, spb)[0]
        bpos = torch.arange(s0, s1).unsqueeze(0)

        def step(layer, q, kk, vv, softmax_scale=None):
            K, V = cache[layer]
            return sdpa(q, torch.cat([K, kk], 1), torch.cat([V, vv], 1))

        for i in range(spb):
            logits = forward(x[:, s0:s1], bpos, step)
            x0 = logits.argmax(-1)
            p = F.softmax(logits.double(), -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            m = x[:, s0:s1] == mask_id
            conf = torch.where(m, p, torch.tensor(NEG_INF, dtype=torch.double, device=x.device))
            idx = torch.topk(conf[0], k=int(num[i])).indices
            blk = x[0, s0:s1]
            blk[idx] = x0[0, idx]

        def commit(layer, q, kk, vv, softmax_scale=None):
            K, V = cache[layer]
            cache[layer] = (torch.cat([K, kk], 1), torch.cat([V, vv], 1))
            return sdpa(q, cache[layer][0], cache[layer][1])

        forward(x[:, s0:s1], bpos, commit)
    return x


@torch.no_grad()
def mdlm(logits_fn, x_prompt, mask_id, gen_length, block_length, steps, coin, eps=1e-5):
    """MDLM's ancestral sampler with its cache (kuleshov-group/mdlm _ddpm_caching_update), per
    block, greedy tokens: at step i every masked position of the block unmasks with probability
    (t_i - t_{i+1}) / t_i on linspace(1, eps, steps + 1) (log-linear schedule); the model runs
    only when x changed since its last call (else its output is reused); after the last step one
    argmax pass decodes what is left (noise removal). coin(step, B, L) -> uniforms [B, L] in
    [0, 1) are the Bernoulli draws (a position unmasks when coin < p), step counting every
    step of the generation. Returns (x, nfe)."""
    B, P = x_prompt.shape
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long, device=x_prompt.device)
    x[:, :P] = x_prompt
    nb = gen_length // block_length
    spb = steps // nb
    t = torch.linspace(1, eps, spb + 1, dtype=torch.float64)
    nfe, step, cached = 0, 0, None
    for k in range(nb):
        s0, s1 = P + k * block_length, P + (k + 1) * block_length
        cached = None
        for i in range(spb + 1):
            m = x[:, s0:s1] == mask_id
            if i == spb and not bool(m.any()):
                break
            if cached is None:
                cached = logits_fn(x)[:, s0:s1]
                nfe += 1
            x0 = cached.argmax(-1)
            p = 1.0 if i == spb else float((t[i] - t[i + 1]) / t[i])
            unmask = m & (coin(step, B, block_length) < p)
            blk = x[:, s0:s1]
            blk[unmask] = x0[unmask]
            if bool(unmask.any()):
                cached = None
            step += 1
    return x, nfe
