"""Quality vs speed of decoding methods: held-out exact match against forwards per token.

    import dllm_kernels as dk
    from dllm_kernels import quality
    model, tok = dk.models.load_pretrained("tiny-tasks")
    r = quality.evaluate(model, tok, "addition", {"threshold": 0.9}, cache="dual", n=200)
    r["accuracy"], r["nfe"], r["tokens_per_forward"], r["tokens_per_s"]
    results, skipped = quality.sweep(model, tok)          # every METHODS entry x cache mode x task
    print(quality.format_table(results)); quality.plot(results, "quality.png")

or `python -m dllm_kernels quality [--n N | --full] [--out DIR]` (table, JSON, PNG).

Definitions (per task, on held-out problems, dllm_kernels.tasks):
  accuracy            exact match of the whole generated region (answer, then end tokens)
  nfe                 model forwards one problem takes, averaged over problems: the steps in
                      which its block still held a mask, plus the forwards that are not steps
                      (cache="block": the prompt prefill and one commit per block). A batch runs
                      until its slowest row is done; a row's count is what it needs decoded alone
                      (at T = 0 a row decodes the same alone or in any batch), as Fast-dLLM and
                      dInfer report it.
  tokens_per_forward  gen_length / nfe (end tokens included: they are decoded too)
  tokens_per_s        generated tokens per second of the batched call (batch_size rows at once,
                      this machine; includes recording the trace)

Methods are the entries of METHODS: generate options, optionally with steps given as tokens per
step. A method whose options generate does not accept yet (it raises TypeError / ValueError on
them) is skipped and reported, so a new decoding method is one table entry.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import torch

from . import tasks as T
from .runtime import CACHE_MODES, generate


@dataclass(frozen=True)
class Method:
    """name: the label; family: the plot line it belongs to; options: generate keyword arguments;
    tokens_per_step: for fixed schedules, steps = gen_length // tokens_per_step."""

    name: str
    family: str
    options: dict = field(default_factory=dict)
    tokens_per_step: int | None = None

    def generate_options(self, task: T.Task) -> dict:
        opts = dict(self.options)
        if self.tokens_per_step is not None:
            opts["steps"] = max(1, task.gen_length // self.tokens_per_step)
        return opts


METHODS: list[Method] = [
    *(Method(f"steps ({k}/step)", "steps", {}, k) for k in (1, 2, 4)),
    *(Method(f"threshold={t}", "threshold", {"threshold": t}) for t in (0.5, 0.7, 0.8, 0.9, 0.95)),
    *(Method(f"factor={f}", "factor", {"factor": f}) for f in (0.5, 1.0, 2.0)),
    *(Method(f"dream ({k}/step)", "dream", {"schedule": "dream"}, k) for k in (1, 2, 4)),
    *(Method(f"entropy_bound={g}", "entropy_bound", {"entropy_bound": g}) for g in (0.1, 0.5, 1.0)),
    *(
        Method(
            f"editing (threshold={t}, edit={e})",
            "editing",
            {"threshold": t, "edit_threshold": e, "max_post_edit_steps": 4},
        )
        for t, e in ((0.9, 0.9), (0.7, 0.8), (0.5, 0.7))
    ),
    *(Method(f"mdlm ({k}/step)", "mdlm", {"schedule": "mdlm"}, k) for k in (1, 2)),
]


def _as_method(method) -> Method:
    if isinstance(method, Method):
        return method
    if isinstance(method, dict):
        name = ", ".join(f"{k}={v}" for k, v in method.items()) or "default"
        return Method(name, name, dict(method))
    for m in METHODS:
        if m.name == method:
            return m
    raise ValueError(
        f"dllm_kernels.quality: unknown method {method!r}; pass a dict of generate "
        f"options or one of {[m.name for m in METHODS]}"
    )


def _row_nfe(out, B: int) -> torch.Tensor:
    """Forwards per row: steps in which the row's block held a mask (conf > -inf somewhere; with
    token editing: in which the row was still editing its block) plus the forwards that are not
    steps (prefill / commit)."""
    steps = torch.zeros(B, dtype=torch.int64)
    for s in out.trace:
        active = (
            torch.isfinite(s["conf"]).any(1)
            if s["conf"].numel()
            else torch.zeros(0, dtype=torch.bool)
        )
        steps[s["rows"].long()] += active.long()
    return steps + (out.nfe - len(out.trace))


def evaluate(
    model,
    tok: T.CharTokenizer,
    task,
    method,
    *,
    cache: str = "none",
    n: int = 100,
    seed: int = 0,
    batch_size: int | None = 256,
    backend: str = "kernels",
    block_length: int | None = None,
    problems: list | None = None,
) -> dict:
    """One decoding configuration on one task's held-out problems.

    Args:
        model, tok: e.g. dllm_kernels.models.load_pretrained("tiny-tasks").
        task: a name of dllm_kernels.tasks.TASKS or a Task.
        method: a Method, a METHODS name, or a dict of generate options (e.g. {"threshold": 0.9};
            {"steps": 8}).
        cache: generate's cache mode; n: problems (task.heldout(n, seed)); problems: or these.
        batch_size: rows per generate call (None: all at once).
        backend: "kernels" or "reference".
        block_length: the decode block (default: the task's, one block).

    Returns a dict: task, method, family, cache, n, correct, accuracy, nfe, tokens_per_forward,
    tokens_per_s, seconds, options, batch_size (see the module doc for the definitions).
    Raises TypeError / ValueError when generate refuses the options.
    """
    task = T.get(task) if isinstance(task, str) else task
    m = _as_method(method)
    opts = m.generate_options(task)
    if not {"steps", "threshold", "factor", "entropy_bound"} & set(opts):
        opts["steps"] = task.gen_length
    probs = problems if problems is not None else task.heldout(n, seed=seed)
    G = task.gen_length
    bl = block_length or task.block_length
    bs = batch_size or len(probs)
    correct, nfe_sum, secs = 0, 0, 0.0
    for i in range(0, len(probs), bs):
        chunk = probs[i : i + bs]
        prompts = [tok.encode(p.prompt) for p in chunk]
        t0 = time.perf_counter()
        out = generate(
            model,
            prompts,
            gen_length=G,
            block_length=bl,
            cache=cache,
            mask_id=tok.mask_id,
            pad_id=tok.pad_id,
            backend=backend,
            trace=True,
            **opts,
        )
        secs += time.perf_counter() - t0
        gen = out.tokens[:, -G:].cpu()
        correct += sum(task.correct(p, g, tok) for p, g in zip(chunk, gen))
        nfe_sum += int(_row_nfe(out, len(chunk)).sum())
    N = len(probs)
    nfe = nfe_sum / N
    return {
        "task": task.name,
        "method": m.name,
        "family": m.family,
        "cache": cache,
        "n": N,
        "correct": correct,
        "accuracy": correct / N,
        "nfe": nfe,
        "tokens_per_forward": G / nfe if nfe else math.inf,
        "tokens_per_s": N * G / secs if secs > 0 else math.inf,
        "seconds": secs,
        "options": opts,
        "block_length": bl,
        "batch_size": min(bs, N),
        "backend": backend,
    }


def supported(model, tok, task, method, cache: str = "none") -> str | None:
    """None if generate accepts the method's options (one problem is decoded), else the reason."""
    task = T.get(task) if isinstance(task, str) else task
    try:
        evaluate(model, tok, task, method, cache=cache, problems=task.heldout(1))
    except (TypeError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def sweep(
    model,
    tok,
    *,
    tasks=None,
    methods=None,
    caches=CACHE_MODES,
    n: int = 100,
    seed: int = 0,
    batch_size: int | None = 256,
    backend: str = "kernels",
    progress: bool = True,
    file=None,
) -> tuple[list[dict], list[dict]]:
    """Every method x cache mode x task: (results, skipped), skipped = [{method, reason}] for the
    methods generate does not take. progress: a tqdm bar (or one line per configuration without
    tqdm) on `file` (stderr)."""
    tasks = [T.get(t) if isinstance(t, str) else t for t in (tasks or list(T.TASKS))]
    methods = [_as_method(m) for m in (methods or METHODS)]
    file = file or sys.stderr
    skipped, runnable = [], []
    for m in methods:
        why = supported(model, tok, tasks[0], m, caches[0])
        if why is None:
            runnable.append(m)
        else:
            skipped.append({"method": m.name, "family": m.family, "reason": why})
    configs = [(t, m, c) for t in tasks for m in runnable for c in caches]
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(configs), desc="quality", unit="config", file=file)
        except ImportError:
            bar = None
    results = []
    for j, (t, m, c) in enumerate(configs):
        r = evaluate(
            model, tok, t, m, cache=c, n=n, seed=seed, batch_size=batch_size, backend=backend
        )
        results.append(r)
        if bar is not None:
            bar.set_postfix_str(f"{t.name} {m.name} {c}: {r['accuracy']:.0%}", refresh=False)
            bar.update(1)
        elif progress:
            print(
                f"[{j + 1}/{len(configs)}] {t.name} {m.name} cache={c}: accuracy "
                f"{r['accuracy']:.1%}, {r['tokens_per_forward']:.2f} tokens/forward",
                file=file,
                flush=True,
            )
    if bar is not None:
        bar.close()
    return results, skipped


def format_table(results: list[dict], markdown: bool = True) -> str:
    """A table: task, method, cache, accuracy, NFE, tokens per forward, tokens/s."""
    head = ["task", "method", "cache", "accuracy", "NFE", "tokens/forward", "tokens/s"]
    rows = [
        [
            r["task"],
            r["method"],
            r["cache"],
            f"{r['accuracy']:.1%}",
            f"{r['nfe']:.2f}",
            f"{r['tokens_per_forward']:.2f}",
            f"{r['tokens_per_s']:.0f}",
        ]
        for r in results
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    w = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{k}}}" if i < 3 else f"{{:>{k}}}" for i, k in enumerate(w))
    return "\n".join(fmt.format(*r) for r in [head, *rows])


def format_grid(results: list[dict]) -> str:
    """A markdown table, one row per task and method, one column per cache mode: "accuracy ·
    tokens per forward" (the README's table)."""
    caches = [c for c in CACHE_MODES if any(r["cache"] == c for r in results)]
    cell = {(r["task"], r["method"], r["cache"]): r for r in results}
    keys = list(dict.fromkeys((r["task"], r["method"]) for r in results))
    lines = [
        "| task | method | " + " | ".join(f"cache={c}" for c in caches) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in caches) + " |",
    ]
    for t, m in keys:
        vals = []
        for c in caches:
            r = cell.get((t, m, c))
            vals.append(
                "-" if r is None else f"{100 * r['accuracy']:.1f} % · {r['tokens_per_forward']:.2f}"
            )
        lines.append(f"| {t} | {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


_STYLES = {"none": "-", "prefix": "--", "dual": "-.", "block": ":"}


def plot(results: list[dict], path: str, title: str | None = None) -> str:
    """PNG: accuracy vs tokens per forward, one panel per task, one line per method family
    (colour) and cache mode (line style). Needs matplotlib (ImportError otherwise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task_names = list(dict.fromkeys(r["task"] for r in results))
    families = list(dict.fromkeys(r["family"] for r in results))
    colors = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(
        1, len(task_names), figsize=(5.2 * len(task_names), 4.4), squeeze=False
    )
    for ax, tn in zip(axes[0], task_names):
        for f in families:
            for c in _STYLES:
                pts = sorted(
                    (r["tokens_per_forward"], r["accuracy"])
                    for r in results
                    if r["task"] == tn and r["family"] == f and r["cache"] == c
                )
                if not pts:
                    continue
                ax.plot(
                    [p[0] for p in pts],
                    [100 * p[1] for p in pts],
                    _STYLES[c],
                    marker="o",
                    markersize=3,
                    color=colors[f],
                    label=f"{f}, {c}",
                    alpha=0.85,
                )
        n = next(r["n"] for r in results if r["task"] == tn)
        ax.set_title(f"{tn} (n={n} held-out)")
        ax.set_xlabel("tokens per forward")
        ax.set_ylabel("exact match (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=7, frameon=False
    )
    if title:
        fig.suptitle(title)
    rows_legend = -(-len(labels) // 4)
    fig.tight_layout(rect=(0, 0.04 * rows_legend + 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
