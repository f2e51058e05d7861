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


def attention_forward(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal=None,
    **kwargs,
):
    """The "dllm_kernels" attention implementation (transformers' AttentionInterface signature).

    query [B, Hq, n, D], key / value [B, Hkv, n, D] (after RoPE) -> ([B, n, Hq, D], None).
    Inside generate: the runtime's paged-cache attention of layer `module.layer_idx`; outside:
    bidirectional SDPA (attention_mask used only when it is a 4D mask)."""
    if kwargs.get("softcap") is not None:
        raise ValueError(
            "dllm_kernels attention: attention logit soft-capping (softcap) is not "
            "supported; load the model with attn_implementation='eager' instead"
        )
    if kwargs.get("sliding_window") is not None:
        _warn_once(
            "window",
            "dllm_kernels attention: the model's sliding window is not applied "
            "(dLLM attention is full and bidirectional)",
        )
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)  # [B, n, H, D]
    cur = _CURRENT.get()
    if cur is not None:
        attn, counter = cur
        layer = getattr(module, "layer_idx", None)
        if layer is None:  # layers without an index: the order of the calls
            layer = counter[0]
        counter[0] += 1
        return attn(layer, q, k, v, softmax_scale=scaling), None
    mask = (
        attention_mask
        if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4
        else None
    )
    group = query.shape[1] // key.shape[1]
    out = F.scaled_dot_product_attention(
        query,
        key.repeat_interleave(group, 1),
        value.repeat_interleave(group, 1),
        attn_mask=mask,
        scale=scaling,
    )
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
            raise ValueError(
                "dllm_kernels.generate: cannot read num_hidden_layers, "
                "num_key_value_heads / num_attention_heads and head_dim from the "
                f"config of {type(model).__name__}"
            )
        self.config = SimpleNamespace(
            num_kv_heads=kv, head_dim=hd, mask_id=_config_int(text, "mask_id", "mask_token_id")
        )
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
                "pass it as a plain callable (cache='none') or implement the runtime interface"
            )
        logits = out.logits
        if logits_range is not None and not self._keep:
            logits = logits[:, logits_range[0] : logits_range[1]]
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


# ---- DiffusionGemma: the per-step sampling on the fused op ---------------------------------------


def fuse_diffusion_gemma(model):
    """Makes a transformers DiffusionGemma model's own `generate` run each denoising step's
    sampling through dllm_kernels.denoise_and_select: the sample from softmax of the processed
    (temperature-scheduled) logits, their entropy, the entropy-bound acceptance and the
    renoising of the other positions in one pass over [B, L, V] (transformers runs softmax,
    multinomial, a Categorical entropy, sort, cumsum, scatter and randint, and the entropy once
    more for its stopping test). Everything else is the model's: its forward and
    self-conditioning, logits processors (the linear temperature schedule), the encoder / canvas
    loop, the stopping criteria (StableAndConfidentStoppingCriteria reads the op's entropies),
    the outputs. Returns `model` (patched in place; `unfuse_diffusion_gemma` undoes it).

    Differences, deliberate: the sample and the renoise tokens come from the Philox stream (seed
    drawn per step from torch's default generator), so they follow the same distributions as
    torch.multinomial / torch.randint but are not the same draws; entropies are computed in
    float64 and ties in entropy go to the lower position. A step whose sampler is not exactly
    EntropyBoundSampler (a user subclass) runs transformers' own step. The argmax canvas comes
    from the same call (`return_argmax=True`: on the CPU in the same pass; on CUDA a second,
    argmax-only read of the logits inside the call).

    Args:
        model: a DiffusionGemmaForBlockDiffusion (transformers >= 5.11).
    """
    if (
        not callable(getattr(type(model), "_denoising_step", None))
        or getattr(getattr(model, "config", None), "canvas_length", None) is None
    ):
        raise TypeError(
            "dllm_kernels.fuse_diffusion_gemma: model must be a transformers "
            "DiffusionGemma model (DiffusionGemmaForBlockDiffusion), got "
            f"{type(model).__name__}"
        )
    model._denoising_step = _FusedDenoisingStep(model)
    return model


def unfuse_diffusion_gemma(model):
    """Undoes fuse_diffusion_gemma (no-op on a model that is not fused). Returns `model`."""
    if isinstance(model.__dict__.get("_denoising_step"), _FusedDenoisingStep):
        del model._denoising_step
    return model


def _step_seed() -> int:
    """A Philox seed from torch's default (CPU) generator: torch.manual_seed reproduces a run."""
    return int(torch.randint(0, 2**62, (1,)).item())


def _stable_and_confident(crit, argmax_canvas, token_entropy):
    """transformers' StableAndConfidentStoppingCriteria on the op's entropies [B, L] instead of
    a second entropy pass over the logits: stable = the argmax canvas equals each of the last
    stability_threshold ones (its history kept on `crit`, so crit.reset() still works),
    confident = mean entropy < confidence_threshold."""
    B = argmax_canvas.shape[0]
    if crit.stability_threshold == 0:
        stable = torch.ones(B, dtype=torch.bool, device=argmax_canvas.device)
    else:
        hist = crit.argmax_canvas_history
        if hist is None:
            hist = torch.full(
                (crit.stability_threshold, *argmax_canvas.shape),
                -1,
                dtype=argmax_canvas.dtype,
                device=argmax_canvas.device,
            )
        stable = (hist == argmax_canvas.unsqueeze(0)).all(-1).all(0)
        hist = torch.roll(hist, shifts=-1, dims=0)
        hist[-1] = argmax_canvas
        crit.argmax_canvas_history = hist
    return stable & (token_entropy.mean(-1) < crit.confidence_threshold)


class _FusedDenoisingStep:
    """DiffusionGemmaGenerationMixin._denoising_step with the sampling on the fused op (same
    arguments and results; see fuse_diffusion_gemma)."""

    def __init__(self, model):
        self.model = model

    def __call__(
        self,
        decoder_forward,
        current_canvas,
        argmax_canvas,
        input_ids,
        decoder_position_ids,
        self_conditioning_logits,
        mask_mapping,
        cache,
        finished_denoising,
        cur_step,
        sampler,
        logits_processor,
        diffusion_stopping_criteria,
        **model_kwargs,
    ):
        from transformers.models.diffusion_gemma import generation_diffusion_gemma as dg

        from .. import ops

        model = self.model
        if type(sampler) is not dg.EntropyBoundSampler:
            return type(model)._denoising_step(
                model,
                decoder_forward=decoder_forward,
                current_canvas=current_canvas,
                argmax_canvas=argmax_canvas,
                input_ids=input_ids,
                decoder_position_ids=decoder_position_ids,
                self_conditioning_logits=self_conditioning_logits,
                mask_mapping=mask_mapping,
                cache=cache,
                finished_denoising=finished_denoising,
                cur_step=cur_step,
                sampler=sampler,
                logits_processor=logits_processor,
                diffusion_stopping_criteria=diffusion_stopping_criteria,
                **model_kwargs,
            )
        step = torch.tensor(cur_step, device=current_canvas.device, dtype=torch.int32)
        torch.compiler.cudagraph_mark_step_begin()
        raw = decoder_forward(
            decoder_input_ids=current_canvas,
            self_conditioning_logits=self_conditioning_logits,
            decoder_attention_mask=mask_mapping,
            cache=cache,
            decoder_position_ids=decoder_position_ids,
            **model_kwargs,
        ).logits
        # the temperature schedule and any user processors: the model's next step reads these
        # logits (self-conditioning), so they exist as a tensor in either implementation
        processed = logits_processor(input_ids, raw, cur_step=step)
        if processed.shape[-1] != sampler.vocab_size:
            raise ValueError(
                f"dllm_kernels.fuse_diffusion_gemma: logits have "
                f"{processed.shape[-1]} columns but the sampler's vocab_size is "
                f"{sampler.vocab_size} (the renoise range)"
            )
        canvas = current_canvas.clone()  # never write the caller's canvas
        live = ~finished_denoising  # finished rows keep their canvas
        # one pass: sample, entropy, EB acceptance, renoise, and the argmax canvas (of live rows;
        # finished rows keep theirs below)
        _, conf, _, new_argmax = ops.denoise_and_select(
            processed,
            canvas,
            None,
            eligible=live[:, None].expand_as(canvas),
            temperature=1.0,
            confidence="neg_entropy",
            entropy_bound=float(sampler.entropy_bound),
            commit=True,
            renoise=True,
            seed=_step_seed(),
            offset=0,
            return_argmax=True,
        )
        crit = diffusion_stopping_criteria
        if crit is not None:
            if finished_denoising.any():
                new_argmax = torch.where(finished_denoising[:, None], argmax_canvas, new_argmax)
                processed = torch.where(
                    finished_denoising[:, None, None], self_conditioning_logits, processed
                )
            if type(crit) is dg.StableAndConfidentStoppingCriteria:
                finished_denoising |= _stable_and_confident(crit, new_argmax, -conf)
            else:
                finished_denoising |= crit(new_argmax, processed)
        emb_dtype = model.model.decoder.embed_tokens.weight.dtype
        return canvas, new_argmax, processed.to(emb_dtype), finished_denoising


__all__ = [
    "ATTN_NAME",
    "TransformersModel",
    "attention_forward",
    "available",
    "bidirectional",
    "fuse_diffusion_gemma",
    "is_attention_interface_model",
    "register",
    "unfuse_diffusion_gemma",
]
