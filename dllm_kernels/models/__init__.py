"""Reference models for the runtime: small LLaDA-architecture transformers, with random weights
(TinyLLaDA(config, seed)) or trained and shipped in the package (load_pretrained("tiny-tasks")),
and their tensor-parallel shards (tensor_parallel(model, group))."""

from .pretrained import available, load_pretrained
from .tensor_parallel import (
    TensorParallelConfig,
    TensorParallelLLaDA,
    is_tensor_parallel,
    tensor_parallel,
)
from .tiny_llada import TinyLLaDA, TinyLLaDAConfig

__all__ = [
    "TensorParallelConfig",
    "TensorParallelLLaDA",
    "TinyLLaDA",
    "TinyLLaDAConfig",
    "available",
    "is_tensor_parallel",
    "load_pretrained",
    "tensor_parallel",
]
