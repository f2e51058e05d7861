"""Loads the compiled extension dllm_kernels._C, or explains why not and falls back.

`import dllm_kernels` always works. When _C is missing, was built for another torch or CUDA, or
fails to load, one RuntimeWarning says so and the public ops run the reference implementations.
Set DLLM_KERNELS_NATIVE=0 to force the reference ops (useful to compare or to debug).
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from typing import Any

import torch

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_OPS = (
    "commit_",
    "num_transfer_tokens",
    "denoise_step",
    "select_transfer",
    "denoise_and_select",
    "cache_write_",
    "cache_gather",
    "cache_copy_pages_",
    "block_attention",
)  # every op the library defines (schemas in registration.cpp)


def _read_build_info() -> dict[str, Any] | None:
    try:
        with open(os.path.join(_PKG_DIR, "_build_info.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _mismatch(info: dict[str, Any]) -> str | None:
    built_torch, built_cuda = info.get("torch"), info.get("cuda")
    if built_torch != torch.__version__:
        return (
            f"dllm_kernels._C was built for torch {built_torch} (CUDA {built_cuda}), "
            f"you have torch {torch.__version__} (CUDA {torch.version.cuda})"
        )
    if built_cuda is not None and built_cuda != torch.version.cuda:
        return (
            f"dllm_kernels._C was built for CUDA {built_cuda}, "
            f"you have torch {torch.__version__} with CUDA {torch.version.cuda}"
        )
    return None


def _has_kernel(op: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"dllm_kernels::{op}", key)


def _load() -> tuple[bool, bool, str | None, dict[str, Any] | None]:
    """Returns (native loaded, CUDA kernels loaded, why not native, build info); sets C."""
    global C
    info = _read_build_info()
    if os.environ.get("DLLM_KERNELS_NATIVE", "1") == "0":
        return False, False, "DLLM_KERNELS_NATIVE=0", info
    if info is None:
        reason = (
            "the native extension dllm_kernels._C is not built "
            "(run: pip install --no-build-isolation -e .)"
        )
    else:
        reason = _mismatch(info)
    module = None
    if reason is None:
        try:
            module = importlib.import_module("dllm_kernels._C")
        except (ImportError, OSError) as e:
            reason = f"dllm_kernels._C failed to load: {e}"
    if reason is None:
        missing = [op for op in _OPS if not _has_kernel(op, "CPU")]
        if missing:
            reason = f"dllm_kernels._C is stale: no CPU kernel for {missing}; rebuild it"
    if reason is not None:
        warnings.warn(f"{reason}; using the reference ops (slow).", RuntimeWarning, stacklevel=3)
        return False, False, reason, info
    cuda = all(_has_kernel(op, "CUDA") for op in _OPS)
    C = module
    return True, cuda, None, info


C = None  # the loaded dllm_kernels._C module (host objects such as PageAllocator), if native
NATIVE, NATIVE_CUDA, FALLBACK_REASON, BUILD_INFO = _load()


def backend_info() -> dict[str, Any]:
    """What dllm_kernels runs on: compiled ops or the reference, and what they were built for.

    Returns:
        dict with `native` (compiled ops loaded), `cuda` (compiled CUDA kernels loaded), `torch`,
        `cuda_version` (torch's), `archs` (CUDA archs compiled), `gpu` (a CUDA device is visible),
        `fallback_reason` (None when native), `build` (the build metadata, or None) and
        `cpu_features` (instruction sets the CPU kernels pick at run time: avx2, avx512f and
        amx_bf16, the last meaning bf16 block_attention runs on AMX; DLLM_KERNELS_AMX=0 turns that
        off; `denoise_step`: "avx512", "avx2" or "generic", the vector kernel denoise_step runs,
        capped by DLLM_KERNELS_SIMD=avx2|generic; empty when not native).
    """
    build = BUILD_INFO or {}
    return {
        "native": NATIVE,
        "cuda": NATIVE_CUDA,
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,
        "archs": list(build.get("archs", [])) if NATIVE else [],
        "gpu": torch.cuda.is_available(),
        "fallback_reason": FALLBACK_REASON,
        "build": BUILD_INFO,
        "cpu_features": dict(C.cpu_features()) if NATIVE and hasattr(C, "cpu_features") else {},
    }
