"""End-to-end generation benchmark: our runtime (cache none / prefix / dual / block) against a
literal LLaDA loop and a literal Fast-dLLM-style dual-cache loop, both eager PyTorch written in
dllm_kernels/e2e.py, on the same TinyLLaDA weights, at equal NFE (fixed schedule), in one run.

    python benchmarks/bench_generate.py [--device cpu|cuda] [--model tiny|llada8b-shaped]
        [--layers N] [--batch B] [--prompt-length P] [--gen-length 256] [--block-length 32]
        [--steps 256] [--json PATH]

--model qwen2-shaped runs a random-init transformers Qwen2ForCausalLM (Qwen2's 151,936 vocabulary,
GQA 4/2, head_dim 64, 2 layers) through the "dllm_kernels" attention: our generate (none / dual /
block) against the literal loops driving the same model and attention function.

Defaults: gen 256, block 32, steps 256 (one token per step); on CUDA a LLaDA-8B-shaped TinyLLaDA
(hidden 4096, 32 heads, vocab 126,464, 4 layers) in bf16, on CPU the "tiny" preset (LLaDA's
vocabulary on a 2-layer, hidden-128 trunk). Each row reports tokens/s, NFE, wall time and, for our
runtime, the share of time in the model / sampling / cache (measured in a separate profiled run).
--json is rewritten after each row.
"""

from __future__ import annotations

import argparse
import sys

import torch

from dllm_kernels import benchmark as bm
from dllm_kernels import e2e


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    ap.add_argument(
        "--model",
        choices=list(e2e.PRESETS) + list(e2e.HF_PRESETS),
        help="a TinyLLaDA preset, or a transformers-shaped one (qwen2-shaped: a random "
        "Qwen2ForCausalLM through the 'dllm_kernels' attention; needs transformers)",
    )
    ap.add_argument("--layers", type=int)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt-length", type=int, default=64)
    ap.add_argument("--gen-length", type=int, default=256)
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--threshold", type=float, help="also run threshold decoding (runtime only)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    preset = a.model or ("llada8b-shaped" if device.type == "cuda" else "tiny")
    head = bm.header([device])
    print(bm.format_header(head))
    shape = (
        f"batch {a.batch}, prompt {a.prompt_length}, gen {a.gen_length}, "
        f"block {a.block_length}, steps {a.steps}"
    )
    done: list[dict] = []
    config: dict = {}

    def save(rows):  # after each row: a run cut short by a time limit keeps what it finished
        if a.json:
            bm.write_json(
                a.json,
                {
                    "header": head,
                    "model": preset,
                    "config": config,
                    "args": vars(a),
                    "rows": done + rows,
                },
            )

    if preset in e2e.HF_PRESETS:
        from dllm_kernels.integrations.transformers import TransformersModel

        model = e2e.make_hf_model(preset, device)
        c = model.config
        config = c.to_dict()
        print(
            f"transformers {type(model).__name__} {preset!r} (random init): {c.num_hidden_layers} "
            f"layers, hidden {c.hidden_size}, heads "
            f"{c.num_attention_heads}/{c.num_key_value_heads}, "
            f"head_dim {c.head_dim}, vocab {c.vocab_size}, {next(model.parameters()).dtype}; "
            f"{shape}"
        )
        with TransformersModel(model) as adapter:  # literal loops: the same attention function
            lit = e2e.LiteralView(adapter)
            done += e2e.run(
                model,
                a.batch,
                a.prompt_length,
                a.gen_length,
                a.block_length,
                a.steps,
                caches=("none", "dual", "block"),
                literal=lit,
                on_row=save,
            )
            if a.threshold is not None:
                done += e2e.run(
                    model,
                    a.batch,
                    a.prompt_length,
                    a.gen_length,
                    a.block_length,
                    a.steps,
                    caches=("dual",),
                    baselines=False,
                    threshold=a.threshold,
                    literal=lit,
                    on_row=save,
                )
    else:
        model = e2e.make_model(preset, device, layers=a.layers)
        c = model.config
        config = vars(c)
        print(
            f"TinyLLaDA {preset!r}: {c.num_layers} layers, hidden {c.hidden_size}, heads "
            f"{c.num_heads}/"
            f"{c.num_kv_heads}, vocab {c.vocab_size}, {next(model.parameters()).dtype}; {shape}"
        )
        done += e2e.run(
            model, a.batch, a.prompt_length, a.gen_length, a.block_length, a.steps, on_row=save
        )
        if a.threshold is not None:
            done += e2e.run(
                model,
                a.batch,
                a.prompt_length,
                a.gen_length,
                a.block_length,
                a.steps,
                caches=("dual",),
                baselines=False,
                threshold=a.threshold,
                on_row=save,
            )
    save([])
    if a.json:
        print(f"bench_generate: wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
