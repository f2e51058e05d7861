"""Reference models for the runtime: small LLaDA-architecture transformers, with random weights
(TinyLLaDA(config, seed)) or trained and shipped in the package (load_pretrained("tiny-tasks"))."""

from .pretrained import available, load_pretrained
from .tiny_llada import TinyLLaDA, TinyLLaDAConfig

__all__ = ["TinyLLaDA", "TinyLLaDAConfig", "available", "load_pretrained"]
