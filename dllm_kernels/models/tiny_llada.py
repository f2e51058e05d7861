"""TinyLLaDA: a LLaDA-architecture masked-diffusion transformer (RMSNorm, RoPE, SwiGLU,
bidirectional MHA / GQA, no causal mask) of any size, with random weights from a seed.

It implements the runtime's model interface (see dllm_kernels.runtime):

    logits = model.forward(input_ids, positions, attn)     # [B, n] ids -> [B, n, V] logits

where `attn(layer, q, k, v) -> out` replaces the model's own attention in every layer: q
[B, n, Hq, D] and k / v [B, n, Hkv, D] after RoPE, out [B, n, Hq, D]. The runtime's attention
writes the fresh K/V into the paged cache and attends to cache + fresh keys as the cache policy
says; a user's own LLaDA / Dream / Qwen-style model plugs in the same way. Called as
`model(input_ids)` (no attn) it runs plain full bidirectional attention and returns an object
with `.logits`, like a Hugging Face model.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F


@dataclass
class TinyLLaDAConfig:
    """vocab_size, hidden_size, num_layers, num_heads, num_kv_heads (None = num_heads), mask_id
    (None = vocab_size - 1), intermediate_size (None = ~8/3 hidden, a multiple of 64), RoPE base
    and RMSNorm epsilon (LLaDA-8B: 126464, 4096, 32, 32, 32, 126336, 12288, 500000, 1e-5)."""

    vocab_size: int = 512
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int | None = None
    mask_id: int | None = None
    intermediate_size: int | None = None
    rope_theta: float = 500_000.0
    rms_eps: float = 1e-5

    def __post_init__(self):
        if self.num_kv_heads is None:
            self.num_kv_heads = self.num_heads
        if self.mask_id is None:
            self.mask_id = self.vocab_size - 1
        if self.intermediate_size is None:
            self.intermediate_size = max(64, (self.hidden_size * 8 // 3 + 63) // 64 * 64)
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                "TinyLLaDAConfig: hidden_size must be a multiple of num_heads, and "
                "num_heads a multiple of num_kv_heads"
            )
        if not 0 <= self.mask_id < self.vocab_size:
            raise ValueError(f"TinyLLaDAConfig: mask_id {self.mask_id} outside the vocabulary")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary embedding (LLaDA / Llama "rotate half"), x [B, n, H, D], positions int [B, n]."""
    D = x.shape[-1]
    inv = theta ** (-torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D)  # [D/2]
    ang = positions.to(torch.float32).unsqueeze(-1) * inv  # [B, n, D/2]
    cos, sin = ang.cos().unsqueeze(2), ang.sin().unsqueeze(2)
    x1, x2 = x.float()[..., : D // 2], x.float()[..., D // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def full_attention(attention_mask: torch.Tensor | None = None):
    """The uncached attention: every query sees every (non-padding) key of the sequence."""

    def attend(layer, q, k, v):
        group = q.shape[2] // k.shape[2]
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # keys
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.repeat_interleave(group, 2).transpose(1, 2),
            v.repeat_interleave(group, 2).transpose(1, 2),
            attn_mask=mask,
        )
        return out.transpose(1, 2)

    return attend


class TinyLLaDA(torch.nn.Module):
    """model = TinyLLaDA(TinyLLaDAConfig(...), seed=0, dtype=torch.float32, device="cpu")."""

    def __init__(
        self,
        config: TinyLLaDAConfig,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        self.config = c = config
        g = torch.Generator().manual_seed(seed)
        H, Hkv, D, E, F_ = (
            c.num_heads,
            c.num_kv_heads,
            c.head_dim,
            c.hidden_size,
            c.intermediate_size,
        )

        def w(*shape, std):  # random weights, generated on the CPU for reproducibility
            return torch.nn.Parameter(
                (torch.randn(shape, generator=g) * std).to(dtype).to(device), requires_grad=False
            )

        self.embed = w(c.vocab_size, E, std=1.0)
        self.layers = torch.nn.ModuleList()
        for _ in range(c.num_layers):
            layer = torch.nn.Module()
            layer.attn_norm = torch.nn.Parameter(
                torch.ones(E, dtype=dtype, device=device), requires_grad=False
            )
            # q / k 4x a unit init: attention sharp enough that masked positions (same token,
            # different RoPE position) attend differently, so the outputs are varied
            layer.wq = w(H * D, E, std=4.0 * E**-0.5)
            layer.wk = w(Hkv * D, E, std=4.0 * E**-0.5)
            layer.wv = w(Hkv * D, E, std=E**-0.5)
            layer.wo = w(E, H * D, std=(H * D) ** -0.5)
            layer.mlp_norm = torch.nn.Parameter(
                torch.ones(E, dtype=dtype, device=device), requires_grad=False
            )
            layer.w_gate = w(F_, E, std=E**-0.5)
            layer.w_up = w(F_, E, std=E**-0.5)
            layer.w_down = w(E, F_, std=F_**-0.5)
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(
            torch.ones(E, dtype=dtype, device=device), requires_grad=False
        )
        # Logits spread over several units, so that confidences spread over (0, 1) and threshold
        # decoding commits several tokens per step, even with a 126,464-token vocabulary
        self.lm_head = w(c.vocab_size, E, std=7.5 * E**-0.5)
        # A trained dLLM never predicts the mask token; random weights would, so its logit gets -30
        bias = torch.zeros(c.vocab_size)
        bias[c.mask_id] = -30.0
        self.lm_bias = torch.nn.Parameter(bias.to(dtype).to(device), requires_grad=False)

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    def shard(self, group=None):
        """This rank's tensor-parallel shard over torch.distributed process group `group` (None:
        the default group): dllm_kernels.models.tensor_parallel(self, group)."""
        from .tensor_parallel import tensor_parallel

        return tensor_parallel(self, group)

    def _rms(self, x, weight):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.config.rms_eps)).to(
            x.dtype
        ) * weight

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of a row-parallel layer's partial outputs over the tensor-parallel ranks: on
        one rank, t itself (models.tensor_parallel all-reduces)."""
        return t

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        attn=None,
        attention_mask: torch.Tensor | None = None,
        logits_range: tuple[int, int] | None = None,
    ):
        """input_ids [B, n] -> logits [B, n, V] (with attn, the runtime interface) or an object
        with .logits (model(input_ids[, attention_mask=...]) style, full bidirectional attention;
        positions default to 0..n-1, or to the running count of unmasked keys with a mask).
        logits_range=(lo, hi): only the logits of tokens lo..hi-1 ([B, hi - lo, V]); the runtime
        asks for the block's columns, or for none (lo == hi) in prefill / commit forwards."""
        c = self.config
        B, n = input_ids.shape
        hf_style = attn is None
        if positions is None:
            if attention_mask is not None:
                positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            else:
                positions = torch.arange(n, device=input_ids.device).unsqueeze(0).expand(B, -1)
        if attn is None:
            attn = full_attention(attention_mask)
        H, Hkv, D = c.num_heads, c.num_kv_heads, c.head_dim
        x = self.embed[input_ids]
        for i, layer in enumerate(self.layers):
            h = self._rms(x, layer.attn_norm)
            q = rope((h @ layer.wq.T).view(B, n, H, D), positions, c.rope_theta)
            k = rope((h @ layer.wk.T).view(B, n, Hkv, D), positions, c.rope_theta)
            v = (h @ layer.wv.T).view(B, n, Hkv, D)
            x = x + self._reduce(attn(i, q, k, v).reshape(B, n, H * D) @ layer.wo.T)
            h = self._rms(x, layer.mlp_norm)
            x = x + self._reduce((F.silu(h @ layer.w_gate.T) * (h @ layer.w_up.T)) @ layer.w_down.T)
        if logits_range is not None:
            x = x[:, logits_range[0] : logits_range[1]]
        logits = self._rms(x, self.norm) @ self.lm_head.T + self.lm_bias
        return SimpleNamespace(logits=logits) if hf_style else logits
