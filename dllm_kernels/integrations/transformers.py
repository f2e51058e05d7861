"""transformers models on the runtime: an attention implementation named "dllm_kernels".

A transformers model whose attention layers dispatch through `AttentionInterface` (Llama, Qwen2,
Mistral, Gemma families, and remote-code models that call `ALL_ATTENTION_FUNCTIONS`, such as
LLaDA2-MoE) runs every cache mode of `dllm_kernels.generate`:

    model.set_attn_implementation("dllm_kernels")   # generate() does this by itself, and undoes it

Inside generate, each attention layer hands its q / k / v (after RoPE at the `position_ids` the
runtime passes) to the runtime's `attn`, which writes the fresh K/V into the paged cache and runs
`block_attention` over cache + fresh keys, bidirectionally (the model's causal mask is not used:
a dLLM attends both ways). Called outside generate, the implementation is plain bidirectional
attention (SDPA) with no padding mask unless a 4D mask is passed, so `model(x).logits` is the
uncached bidirectional forward of the same weights.

transformers is optional (`pip install dllm-kernels[hf]`, transformers >= 5): this module imports
it on first use only.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import sys
import warnings
from types import SimpleNamespace

import torch
import torch.nn.functional as F

ATTN_NAME = "dllm_kernels"
TESTED_VERSIONS = ">=5.0,<6"

# The runtime's attention of the forward in flight: (attn, per-forward layer counter), or None.
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("dllm_kernels_attn", default=None)
_warned: set[str] = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def available() -> bool:
    """True when transformers (>= 5) can be imported."""
    try:
        import transformers
    except ImportError:
        return False
    return int(transformers.__version__.split(".")[0]) >= 5


def attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                      scaling: float | None = None, is_causal=None, **kwargs):
    """The "dllm_kernels" attention implementation (transformers' AttentionInterface signature).

    query [B, Hq, n, D], key / value [B, Hkv, n, D] (after RoPE) -> ([B, n, Hq, D], None).
    Inside generate: the runtime's paged-cache attention of layer `module.layer_idx`; outside:
    bidirectional SDPA (attention_mask used only when it is a 4D mask)."""
    if kwargs.get("softcap") is not None:
        raise ValueError("dllm_kernels attention: attention logit soft-capping (softcap) is not "
                         "supported; load the model with attn_implementation='eager' instead")
    if kwargs.get("sliding_window") is not None:
        _warn_once("window", "dllm_kernels attention: the model's sliding window is not applied "
                             "(dLLM attention is full and bidirectional)")
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)   # [B, n, H, D]
    cur = _CURRENT.get()
    if cur is not None:
        attn, counter = cur
        layer = getattr(module, "layer_idx", None)
        if layer is None:                 # layers without an index: the order of the calls
            layer = counter[0]
        counter[0] += 1
        return attn(layer, q, k, v, softmax_scale=scaling), None
    mask = attention_mask if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4 else None
    group = query.shape[1] // key.shape[1]
    out = F.scaled_dot_product_attention(query, key.repeat_interleave(group, 1),
                                         value.repeat_interleave(group, 1), attn_mask=mask,
                                         scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Registers "dllm_kernels" in transformers' AttentionInterface (idempotent)."""
    from transformers import AttentionInterface
    AttentionInterface.register(ATTN_NAME, attention_forward)


def is_attention_interface_model(model) -> bool:
    """A transformers PreTrainedModel whose attention dispatches through AttentionInterface: the
    class says so (_supports_attention_backend), or its module's source looks its attention up in
    ALL_ATTENTION_FUNCTIONS (remote-code models such as LLaDA2-MoE)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return False
    if not isinstance(model, PreTrainedModel):
        return False
    if getattr(model, "_supports_attention_backend", False):
        return True
    module = sys.modules.get(type(model).__module__)
    try:
        return module is not None and "ALL_ATTENTION_FUNCTIONS" in inspect.getsource(module)
    except (OSError, TypeError):
        return False


def _use(model, name: str) -> None:
    """Switches the model's attention implementation (directly on the config when transformers'
    own check refuses a remote-code class it cannot inspect)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.set_attn_implementation(name)
        except (ValueError, ImportError):
            pass
    if model.config._attn_implementation != name:
        model.config._attn_implementation = name


def _config_int(cfg, *names):
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return int(v)
    return None


class TransformersModel:
    """A transformers model seen through the runtime's model interface
    (forward(input_ids, positions, attn, logits_range) -> logits), with num_layers and a config
    holding num_kv_heads, head_dim and mask_id (from mask_id / mask_token_id, None if absent).

    Use as a context manager: on entry the model's attention implementation is switched to
    "dllm_kernels", on exit restored."""

    def __init__(self, model):
        self.model = model
        cfg = model.config
        text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        heads = _config_int(text, "num_attention_heads", "n_heads")
        self.num_layers = _config_int(text, "num_hidden_layers", "n_layers", "num_layers")
        kv = _config_int(text, "num_key_value_heads", "n_kv_heads") or heads
        hd = _config_int(text, "head_dim")
        if hd is None and heads:
            hd = _config_int(text, "hidden_size", "d_model") // heads
        if None in (self.num_layers, kv, hd):
            raise ValueError("dllm_kernels.generate: cannot read num_hidden_layers, "
                             "num_key_value_heads / num_attention_heads and head_dim from the "
                             f"config of {type(model).__name__}")
        self.config = SimpleNamespace(num_kv_heads=kv, head_dim=hd,
                                      mask_id=_config_int(text, "mask_id", "mask_token_id"))
        params = inspect.signature(model.forward).parameters
        self._keep = "logits_to_keep" in params
        self._saved = None

    def parameters(self):
        return self.model.parameters()

    def __enter__(self):
        register()
        self._saved = self.model.config._attn_implementation
        if self._saved != ATTN_NAME:
            _use(self.model, ATTN_NAME)
        return self

    def __exit__(self, *exc):
        if self._saved is not None and self._saved != ATTN_NAME:
            _use(self.model, self._saved)
        self._saved = None

    def forward(self, input_ids, positions, attn, logits_range=None):
        counter = [0]
        token = _CURRENT.set((attn, counter))
        try:
            kw = {}
            if logits_range is not None and self._keep:
                lo, hi = logits_range
                kw["logits_to_keep"] = torch.arange(lo, hi, device=input_ids.device)
            out = self.model(input_ids=input_ids, position_ids=positions, use_cache=False, **kw)
        finally:
            _CURRENT.reset(token)
        if counter[0] == 0:
            raise RuntimeError(
                f"dllm_kernels.generate: {type(self.model).__name__} did not call its attention "
                "through transformers' AttentionInterface, so the runtime cannot serve its cache; "
                "pass it as a plain callable (cache='none') or implement the runtime interface")
        logits = out.logits
        if logits_range is not None and not self._keep:
            logits = logits[:, logits_range[0]:logits_range[1]]
        return logits


@contextlib.contextmanager
def bidirectional(model):
    """Within the block, `model` attends with "dllm_kernels" outside the runtime: full
    bidirectional SDPA (the uncached dLLM forward of a transformers model)."""
    register()
    saved = model.config._attn_implementation
    _use(model, ATTN_NAME)
    try:
        yield model
    finally:
        _use(model, saved)


__all__ = ["ATTN_NAME", "TransformersModel", "attention_forward", "available", "bidirectional",
           "is_attention_interface_model", "register"]
