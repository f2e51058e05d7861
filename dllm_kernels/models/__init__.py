"""Reference models for the runtime: small LLaDA-architecture transformers with random weights."""

from .tiny_llada import TinyLLaDA, TinyLLaDAConfig

__all__ = ["TinyLLaDA", "TinyLLaDAConfig"]
