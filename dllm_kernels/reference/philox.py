"""Philox4x32-10 in plain PyTorch (int64 tensors holding uint32 values): the counter-based RNG that
every sampling op shares, bit for bit, with the CPU and CUDA kernels (csrc/include/dllm/philox.h).

Streams. A draw is keyed by (seed, offset, b, l, slot):
    key     = (seed mod 2^32, (seed >> 32) mod 2^32)
    counter = (slot >> 2, l, b, offset mod 2^32), output word slot & 3
Slots 0 .. V-1 are the vocabulary (Gumbel noise of token v), SLOT_CONFIDENCE is the "random"
confidence of position (b, l), SLOT_TRANSFER the coin of select_transfer(probability=...) and
SLOT_RENOISE the token denoise_and_select(renoise=True) writes at a position it renoises.

Uniforms from a 32-bit word w:
    open01(w)  = (2 * (w >> 9) + 1) * 2^-24  in (0, 1), exact in float32 (Gumbel noise)
    closed0(w) = (w >> 8) * 2^-24            in [0, 1), exact in float32
    below(w, n) = (w * n) >> 32              an integer in [0, n) (each value has floor or ceil of
                                             2^32 / n words: exactly uniform for n a power of 2)
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
SLOT_CONFIDENCE = MASK32 << 2  # counter word c0 = 0xFFFFFFFF, output word 0
SLOT_TRANSFER = (MASK32 - 1) << 2  # counter word c0 = 0xFFFFFFFE, output word 0
SLOT_RENOISE = (MASK32 - 2) << 2  # counter word c0 = 0xFFFFFFFD, output word 0


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit halves of a * m for a in [0, 2^32), without int64 overflow."""
    p_lo = a * (m & 0xFFFF)  # < 2^48
    p_hi = a * (m >> 16)  # < 2^48
    mid = p_lo + ((p_hi & 0xFFFF) << 16)  # < 2^49
    return (p_hi >> 16) + (mid >> 32), mid & MASK32


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = 10):
    """Philox4x32 with `rounds` rounds on broadcastable int64 tensors of uint32 values."""
    for _ in range(rounds):
        hi0, lo0 = _mulhilo(c0, _M0)
        hi1, lo1 = _mulhilo(c2, _M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _W0) & MASK32, (k1 + _W1) & MASK32
    return c0, c1, c2, c3


def random_words(
    seed: int, offset: int, b: torch.Tensor, l: torch.Tensor, slot: torch.Tensor
) -> torch.Tensor:
    """The 32-bit word of stream (seed, offset, b, l, slot); b, l, slot broadcast (int64)."""
    seed &= (1 << 64) - 1
    k0, k1 = seed & MASK32, (seed >> 32) & MASK32
    c0 = slot >> 2
    c3 = torch.full_like(c0, offset & MASK32)
    words = philox4x32(c0, l & MASK32, b & MASK32, c3, k0, k1)
    w = slot & 3
    return torch.where(
        w == 0, words[0], torch.where(w == 1, words[1], torch.where(w == 2, words[2], words[3]))
    )


def log_det(x: torch.Tensor) -> torch.Tensor:
    """Natural log of positive normal float32 values, computed with the exact sequence of float32
    operations of dllm::log_det (philox.h), so that every backend gets the same bits: x = 2^e * m,
    m in [sqrt(1/2), sqrt(2)), log x = e*ln2 + log1p(m - 1) by a degree-9 polynomial."""
    bits = x.view(torch.int32).to(torch.int64) & MASK32
    e = ((bits >> 23) & 0xFF) - 127
    m = ((bits & 0x007FFFFF) | 0x3F800000).to(torch.int32).view(torch.float32)
    big = m > torch.tensor(1.41421356, dtype=torch.float32)
    m = torch.where(big, m * 0.5, m)
    e = torch.where(big, e + 1, e)
    f = m - 1.0
    z = f * f
    y = torch.full_like(f, 7.0376836292e-2)
    for c in (
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    ):
        y = y * f + _f32(c)
    y = (y * f) * z
    fe = e.to(torch.float32)
    y = y + fe * _f32(-2.12194440e-4)
    y = y + z * _f32(-0.5)
    return (f + y) + fe * _f32(0.693359375)


def _f32(c: float) -> torch.Tensor:
    return torch.tensor(c, dtype=torch.float32)


def gumbel(words: torch.Tensor) -> torch.Tensor:
    """-log(-log U), U = open01(words), bit-identical to dllm::gumbel_of_word."""
    return -log_det(-log_det(open01(words)))


def open01(words: torch.Tensor) -> torch.Tensor:
    return ((words >> 9) * 2 + 1).to(torch.float32) * 2.0**-24


def closed0(words: torch.Tensor) -> torch.Tensor:
    return (words >> 8).to(torch.float32) * 2.0**-24


def below(words: torch.Tensor, n: int) -> torch.Tensor:
    """(w * n) >> 32: an int64 in [0, n) from a 32-bit word (n < 2^31), bit-identical to
    dllm::below_of_word."""
    return (words * n) >> 32
