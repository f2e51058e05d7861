"""Call-compatible entry points of the published dLLM decoders, running on dllm_kernels' ops.

Switching is one import; name, signature, defaults and return value are the originals':

    from dllm_kernels.compat.llada import generate                       # ML-GSAI/LLaDA generate.py
    from dllm_kernels.compat.fast_dllm import generate, generate_with_prefix_cache, \\
        generate_with_dual_cache                                         # NVlabs/Fast-dLLM
        llada/generate.py
    from dllm_kernels.compat.dream import diffusion_generate             # Dream's
    generation_utils.py

Each calls the user's model the way the original does (model(x, attention_mask=...).logits, the
model's own past_key_values protocol, Dream's model(x, attention_mask, tok_idx)), so any model
that works with the original works here; the per-step sampling (candidate tokens, confidences,
selection, commit) runs in one fused op instead of the eager passes over [B, L, V]. Where the
model can be served by the runtime's paged cache (dllm_kernels.generate's model kinds a and c),
the Fast-dLLM cache functions run on it. Differences from the originals are listed in the README
(random draws come from the Philox stream, confidences are computed in float32).
"""

from . import dream, fast_dllm, llada

__all__ = ["dream", "fast_dllm", "llada"]
