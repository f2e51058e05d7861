"""Trained models shipped inside the package.

    model, tok = dllm_kernels.models.load_pretrained("tiny-tasks")
    ids = tok.encode("123+456=")
    out = dllm_kernels.generate(model, [ids], gen_length=8, steps=8)
    tok.decode(out.tokens[0, len(ids):])          # '579'

`tiny-tasks`: a TinyLLaDA (LLaDA architecture, hidden 128, 4 layers) trained by
tools/train_tiny.py with the masked-diffusion loss on the tasks of dllm_kernels.tasks (addition,
sort, 4x4 Sudoku), character tokenizer (dllm_kernels.tasks.CharTokenizer). Files:
dllm_kernels/models/weights/<name>.safetensors (the state dict) and <name>.json (config,
tokenizer, training summary). Read and written with dllm_kernels.models.safetensors_io (the
`safetensors` package is not needed).
"""

from __future__ import annotations

import dataclasses
import json
import os

import torch

from ..tasks import CharTokenizer
from .safetensors_io import load_file, save_file
from .tiny_llada import TinyLLaDA, TinyLLaDAConfig

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def available() -> list[str]:
    """Names load_pretrained accepts (the shipped weights found in the package)."""
    if not os.path.isdir(WEIGHTS_DIR):
        return []
    return sorted(
        f[: -len(".safetensors")]
        for f in os.listdir(WEIGHTS_DIR)
        if f.endswith(".safetensors")
        and os.path.isfile(os.path.join(WEIGHTS_DIR, f[:-12] + ".json"))
    )


def info(name: str) -> dict:
    """The JSON that goes with the weights: config, tokenizer, training summary."""
    path = os.path.join(WEIGHTS_DIR, f"{name}.json")
    if name not in available():
        raise ValueError(
            f"dllm_kernels.models.load_pretrained: unknown model {name!r}; available: {available()}"
        )
    with open(path) as f:
        return json.load(f)


def load_pretrained(
    name: str = "tiny-tasks",
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[TinyLLaDA, CharTokenizer]:
    """(model, tokenizer) of a shipped model, in eval mode, no gradients."""
    meta = info(name)
    cfg = TinyLLaDAConfig(**meta["config"])
    tensors, _ = load_file(os.path.join(WEIGHTS_DIR, f"{name}.safetensors"))
    model = TinyLLaDA(cfg, seed=0)  # shapes; every weight is replaced below
    state = {k: v.to(torch.float32) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    model = model.to(device=device, dtype=dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, CharTokenizer.from_dict(meta["tokenizer"])


def save_pretrained(
    model: TinyLLaDA,
    tok: CharTokenizer,
    folder: str,
    name: str,
    training: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Writes <folder>/<name>.safetensors (state dict) and <name>.json (config, tokenizer,
    training summary)."""
    state = {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}
    save_file(
        state,
        os.path.join(folder, f"{name}.safetensors"),
        metadata={"format": "pt", "model": "TinyLLaDA"},
    )
    meta = {
        "model": "TinyLLaDA",
        "config": dataclasses.asdict(model.config),
        "tokenizer": tok.to_dict(),
        "training": training or {},
    }
    with open(os.path.join(folder, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
