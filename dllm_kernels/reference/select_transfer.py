"""Reference select_transfer: which masked positions commit their candidate this step."""

from __future__ import annotations

import torch

from .. import _checks
from . import philox


def select_transfer(
    conf: torch.Tensor,
    *,
    num_transfer=None,
    threshold=None,
    factor=None,
    probability=None,
    entropy_bound=None,
    strict: bool = False,
    seed: int | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """transfer[b, l] per exactly one rule over the eligible positions (conf > -inf; NaN is not
    eligible).

    Rules (ties always to the lower position index):
        num_transfer=k (int or int64 [B]): the k most confident eligible positions of each row, k
            clipped to the number eligible (LLaDA, Dream maskgit_plus / topk_margin / entropy).
        threshold=tau: every eligible conf >= tau (> tau with strict=True), plus always the row's
            most confident eligible position (Fast-dLLM, sglang, dInfer).
        factor=f: sort the row's eligible confidences c_0 >= c_1 >= ... >= c_{M-1}; i* = the first
            i >= 1 with c_i < fl32(1 - f / (i + 2)); select the top i*, or all M if there is no
            such i or i* = M - 1 (Fast-dLLM's factor rule, as in its published code).
        probability=p (float or float [B]): each eligible position with probability p, from the
            Philox stream slot SLOT_TRANSFER of (seed, offset, b, l) (Dream "origin").
        entropy_bound=gamma > 0 (conf from confidence="neg_entropy", so H = -conf is the
            entropy): sort the row's eligible H ascending, H_0 <= H_1 <= ... (ties to the lower
            position); S_k = fl32(H_0 + ... + H_k summed in float64, in that order); accept rank
            k iff fl32(S_k - H_k) <= fl32(gamma), i.e. sum_{j<=k} H_j - max_{j<=k} H_j <= gamma:
            exactly transformers' DiffusionGemma EntropyBoundSampler.accept_canvas (arXiv
            2505.24857) on CPU given the same entropies (torch.cumsum of float32 on CPU sums in
            float64; on CUDA it sums in float32, so a value within an ulp of gamma may differ).

    Args:
        conf: [B, L] float32 confidences, -inf where not eligible (as denoise_step returns).

    Returns:
        [B, L] bool.
    """
    rule = _checks.select_transfer(
        conf,
        num_transfer,
        threshold,
        factor,
        probability,
        strict,
        seed,
        offset,
        entropy_bound=entropy_bound,
    )
    B, L = conf.shape
    eligible = conf > float("-inf")
    count = eligible.sum(-1)  # [B] M_b
    # Positions by confidence, descending, ties to the lower index (stable sort).
    ranked = conf.masked_fill(~eligible, float("-inf"))  # NaN ranks with -inf
    order = torch.sort(ranked, dim=-1, descending=True, stable=True).indices  # [B, L]
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(L, device=conf.device).expand(B, L)
    )
    if rule["kind"] == "num_transfer":
        k = torch.minimum(rule["value"].to(conf.device), count)
        return eligible & (rank < k[:, None])
    if rule["kind"] == "threshold":
        tau = rule["value"]
        above = conf > tau if strict else conf >= tau
        return eligible & (above | (rank == 0))
    if rule["kind"] == "factor":
        f = rule["value"]
        c_sorted = ranked.gather(1, order)  # [B, L] float32
        i = torch.arange(L, device=conf.device)
        # 1 - f / (i + 2) by true float64 division (a Python float over a tensor would multiply by
        # the reciprocal), then rounded to float32: Fast-dLLM compares a float32 confidence with
        # a Python float, which torch does in float32.
        f_i = torch.full((L,), f, dtype=torch.float64, device=conf.device) / (i + 2).double()
        hit = (i >= 1) & (i < count[:, None]) & (c_sorted < (1 - f_i).float())
        first = torch.where(hit, i, L).min(-1).values  # L: no such i
        take = torch.where((first == L) | (first == count - 1), count, first)
        return eligible & (rank < take[:, None])
    if rule["kind"] == "entropy_bound":
        h = (-ranked).gather(1, order)  # ascending H, +inf last
        s = torch.cumsum(h.double(), dim=-1).float()  # S_k, float64 sum
        gamma = torch.tensor(rule["value"], dtype=torch.float32)
        take_sorted = (s - h) <= gamma.to(conf.device)  # float32 compare
        take = torch.zeros_like(eligible).scatter_(1, order, take_sorted)
        return eligible & take
    # probability
    p = rule["value"].to(conf.device)
    b = torch.arange(B, device=conf.device)[:, None].expand(B, L)
    l = torch.arange(L, device=conf.device)[None, :].expand(B, L)
    u = philox.closed0(
        philox.random_words(
            rule["seed"], rule["offset"], b, l, torch.full_like(b, philox.SLOT_TRANSFER)
        )
    )
    return eligible & (u < p[:, None])
