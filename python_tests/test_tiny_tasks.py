"""The shipped tiny-tasks model (dllm_kernels.models.load_pretrained), its tokenizer, the tasks, the
safetensors reader / writer, and the accuracy claims of the quality harness on held-out problems."""

from __future__ import annotations

import os
import random

import pytest
import torch

import dllm_kernels as dk
from dllm_kernels import quality
from dllm_kernels import tasks as T
from dllm_kernels.models import load_pretrained, safetensors_io
from dllm_kernels.models.pretrained import WEIGHTS_DIR

N_ADD = 300  # held-out addition problems for the accuracy claims


@pytest.fixture(scope="module")
def pretrained():
    return load_pretrained("tiny-tasks")


# ---- tokenizer, tasks, files
# ----------------------------------------------------------------------


def test_tokenizer_round_trip(pretrained):
    _, tok = pretrained
    for text in ("0123456789+=.| sortudk", "123+456=", "sort 9081=", "sudoku 12.4|3..1|....|.1.3="):
        ids = tok.encode(text)
        assert len(ids) == len(text) and tok.decode(ids) == text
        assert all(2 <= i < tok.mask_id for i in ids)
    assert tok.decode(tok.encode("579") + [tok.end_id] * 5) == "579"
    assert tok.decode([tok.mask_id, tok.pad_id, tok.end_id], special=True) == "<mask><pad><end>"
    assert tok.mask_id == tok.vocab_size - 1 and {tok.pad_id, tok.end_id} == {0, 1}
    with pytest.raises(KeyError, match="'x' is not in the vocabulary"):
        tok.encode("x")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])


def test_addition_prompt_is_encoded_as_is(pretrained):
    _, tok = pretrained
    p = T.get("addition").sample(random.Random(0))
    a, b = p.prompt[:-1].split("+")
    assert p.prompt == f"{int(a)}+{int(b)}=" and p.answer == str(int(a) + int(b))
    target = T.get("addition").target_ids(p, tok)
    assert len(target) == 8 and target[len(p.answer) :] == [tok.end_id] * (8 - len(p.answer))


def test_heldout_split_is_fixed_and_disjoint():
    for name, task in T.TASKS.items():
        test = task.heldout(50, seed=3)
        assert test == task.heldout(50, seed=3) and len({p.prompt for p in test}) == 50
        assert all(T.is_heldout(p.prompt) for p in test)
        rng = random.Random(1)
        assert not any(T.is_heldout(task.sample(rng, "train").prompt) for _ in range(200))


def test_sudoku_puzzles_have_one_solution():
    sud = T.get("sudoku")
    assert len(sud.grids) == 288
    for p in sud.heldout(40):
        cells = p.prompt[len("sudoku ") : -1].replace("|", "")
        givens = {c: int(v) for c, v in enumerate(cells) if v != "."}
        assert sud.solutions(givens) == 1
        assert all(p.answer[c] == str(v) for c, v in givens.items())
        assert 4 <= cells.count(".") <= 10


def test_load_pretrained_unknown_name():
    with pytest.raises(ValueError, match="unknown model 'no-such-model'.*tiny-tasks"):
        load_pretrained("no-such-model")
    assert "tiny-tasks" in dk.models.available()


def test_shipped_files_small_and_readable(pretrained):
    path = os.path.join(WEIGHTS_DIR, "tiny-tasks.safetensors")
    assert os.path.getsize(path) <= 8 * 1024 * 1024
    model, tok = pretrained
    tensors, meta = safetensors_io.load_file(path)
    state = model.state_dict()
    assert set(tensors) == set(state)
    for k, v in tensors.items():
        assert torch.equal(v, state[k])
    assert model.config.vocab_size == tok.vocab_size and model.config.mask_id == tok.mask_id
    assert model.config.head_dim in (64, 96, 128, 256)  # the attention kernel's sizes


def test_safetensors_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a": torch.randn(3, 5, generator=g),
        "b": torch.randn(7, generator=g).to(torch.bfloat16),
        "c": torch.arange(6, dtype=torch.int64).view(2, 3),
        "d": torch.tensor([True, False]),
        "e": torch.zeros(0, 4),
        "f": torch.randn(2, 2, generator=g).to(torch.float16),
    }
    path = tmp_path / "x.safetensors"
    safetensors_io.save_file(tensors, path, metadata={"k": "v"})
    raw = path.read_bytes()
    assert (int.from_bytes(raw[:8], "little") + 8) % 8 == 0
    back, meta = safetensors_io.load_file(path)
    assert meta == {"k": "v"} and set(back) == set(tensors)
    for k in tensors:
        assert back[k].dtype == tensors[k].dtype and torch.equal(back[k], tensors[k])
    with pytest.raises(ValueError, match="past the end"):
        safetensors_io.loads(raw[:8] + b"{}")


def test_safetensors_package_agrees(tmp_path):
    st = pytest.importorskip("safetensors.torch", reason="the safetensors package is optional")
    ours, _ = safetensors_io.load_file(os.path.join(WEIGHTS_DIR, "tiny-tasks.safetensors"))
    theirs = st.load_file(os.path.join(WEIGHTS_DIR, "tiny-tasks.safetensors"))
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    t = {"w": torch.randn(4, 3), "i": torch.arange(5, dtype=torch.int32)}
    st.save_file(t, str(tmp_path / "p.safetensors"))
    back, _ = safetensors_io.load_file(tmp_path / "p.safetensors")
    assert all(torch.equal(back[k], t[k]) for k in t)


# ---- accuracy claims on held-out problems
# ----------------------------------------------------------


@pytest.fixture(scope="module")
def addition_one_per_step(pretrained):
    model, tok = pretrained
    return quality.evaluate(model, tok, "addition", {"steps": 8}, cache="none", n=N_ADD)


def test_addition_one_token_per_step_is_accurate(addition_one_per_step):
    r = addition_one_per_step
    assert r["nfe"] == 8 and r["tokens_per_forward"] == 1.0
    assert r["accuracy"] >= 0.95, r


def test_threshold_keeps_accuracy_with_fewer_forwards(pretrained, addition_one_per_step):
    model, tok = pretrained
    r = quality.evaluate(model, tok, "addition", {"threshold": 0.9}, cache="none", n=N_ADD)
    base = addition_one_per_step
    assert r["accuracy"] >= 0.9 * base["accuracy"], (r, base)
    assert base["nfe"] / r["nfe"] >= 1.5, (r, base)


def test_per_row_nfe_equals_batch_of_one(pretrained):
    """The harness's per-problem NFE from a batched call = what the problem takes alone."""
    model, tok = pretrained
    probs = T.get("addition").heldout(6, seed=5)
    for cache in ("none", "block"):
        batched = quality.evaluate(
            model, tok, "addition", {"threshold": 0.7}, cache=cache, problems=probs
        )
        alone = [
            quality.evaluate(model, tok, "addition", {"threshold": 0.7}, cache=cache, problems=[p])
            for p in probs
        ]
        assert batched["nfe"] == pytest.approx(sum(a["nfe"] for a in alone) / len(probs))
        assert batched["correct"] == sum(a["correct"] for a in alone)


@pytest.mark.parametrize("cache", ["none", "prefix", "dual", "block"])
def test_kernels_equal_reference_on_trained_model(pretrained, cache):
    """Meaningful tokens (a trained model, mixed tasks, ragged prompts): the kernels decode exactly
    what the reference ops decode, in every cache mode, fixed schedule and threshold."""
    model, tok = pretrained
    probs = T.get("addition").heldout(12, seed=7) + T.get("sort").heldout(12, seed=7)
    prompts = [tok.encode(p.prompt) for p in probs]
    for opts in ({"steps": 8}, {"steps": 4}, {"threshold": 0.9}):
        outs = [
            dk.generate(
                model, prompts, gen_length=8, cache=cache, backend=b, pad_id=tok.pad_id, **opts
            )
            for b in ("kernels", "reference")
        ]
        assert torch.equal(outs[0].tokens, outs[1].tokens), (cache, opts)
        assert outs[0].nfe == outs[1].nfe
        gen = outs[0].tokens[:, -8:]
        assert len({tok.decode(g) for g in gen}) >= 12  # varied, meaningful answers
    # and they are mostly right
    right = sum(
        T.get(p_task).correct(p, g, tok)
        for p_task, p, g in zip(["addition"] * 12 + ["sort"] * 12, probs, outs[0].tokens[:, -8:])
    )
    assert right >= 18


@pytest.mark.parametrize("cache", ["none", "prefix", "dual", "block"])
def test_sudoku_kernels_equal_reference(pretrained, cache):
    model, tok = pretrained
    probs = T.get("sudoku").heldout(8, seed=2)
    prompts = [tok.encode(p.prompt) for p in probs]
    for opts in ({"steps": 16}, {"threshold": 0.8}):
        out, ref = (
            dk.generate(
                model, prompts, gen_length=16, cache=cache, pad_id=tok.pad_id, backend=b, **opts
            )
            for b in ("kernels", "reference")
        )
        assert torch.equal(out.tokens, ref.tokens) and out.nfe == ref.nfe


@pytest.mark.parametrize("task", ["addition", "sudoku"])
def test_literal_peer_loops_on_trained_model(pretrained, task):
    """The published loops written out (python_tests/peer_loops.py) decode what generate decodes
    on the trained model, prompt by prompt: LLaDA (none), Fast-dLLM threshold (none) and its
    prefix / dual caches, block diffusion (block)."""
    import peer_loops as peers

    model, tok = pretrained
    t = T.get(task)
    G = t.gen_length
    for p in t.heldout(3, seed=11):
        ids = tok.encode(p.prompt)
        x = torch.tensor([ids])
        run = lambda **kw: dk.generate(model, [ids], gen_length=G, pad_id=tok.pad_id, **kw).tokens
        logits_fn = lambda z: model(z).logits
        assert torch.equal(
            run(steps=G, cache="none"), peers.llada(logits_fn, x, tok.mask_id, G, G, G)
        )
        want, nfe = peers.fast_dllm(logits_fn, x, tok.mask_id, G, G, G, threshold=0.9)
        assert torch.equal(run(threshold=0.9, cache="none"), want)
        for cache in ("prefix", "dual"):
            lit = peers.fast_dllm_cached(
                model.forward, x, tok.mask_id, G, G // 2, G, dual=cache == "dual"
            )
            assert torch.equal(run(steps=G, block_length=G // 2, cache=cache), lit), cache
        lit = peers.block_diffusion(model.forward, x, tok.mask_id, G, G // 2, G)
        assert torch.equal(run(steps=G, block_length=G // 2, cache="block"), lit)


def test_rows_decode_the_same_alone_and_in_a_ragged_batch(pretrained):
    model, tok = pretrained
    probs = T.get("addition").heldout(4, seed=9) + T.get("sort").heldout(4, seed=9)
    prompts = [tok.encode(p.prompt) for p in probs]
    assert len({len(p) for p in prompts}) > 2
    for cache in ("none", "dual", "block"):
        batch = dk.generate(
            model, prompts, gen_length=8, threshold=0.8, cache=cache, pad_id=tok.pad_id
        ).tokens
        for b, ids in enumerate(prompts):
            alone = dk.generate(
                model, [ids], gen_length=8, threshold=0.8, cache=cache, pad_id=tok.pad_id
            ).tokens
            assert torch.equal(batch[b, -8:], alone[0, -8:]), (cache, probs[b])


def test_quality_sweep_skips_methods_generate_lacks(pretrained):
    model, tok = pretrained
    methods = [
        quality.Method("threshold=0.9", "threshold", {"threshold": 0.9}),
        quality.Method("bogus", "bogus", {"no_such_option": 1}),
    ]
    results, skipped = quality.sweep(
        model, tok, tasks=["sort"], methods=methods, caches=["none", "dual"], n=8, progress=False
    )
    assert [(r["method"], r["cache"]) for r in results] == [
        ("threshold=0.9", "none"),
        ("threshold=0.9", "dual"),
    ]
    assert skipped and skipped[0]["method"] == "bogus" and "no_such_option" in skipped[0]["reason"]
    table = quality.format_table(results)
    assert "threshold=0.9" in table and "tokens/forward" in table
    grid = quality.format_grid(results).splitlines()
    assert grid[0] == "| task | method | cache=none | cache=dual |" and len(grid) == 3
    r = results[0]
    assert grid[2].startswith(
        f"| sort | threshold=0.9 | {100 * r['accuracy']:.1f} % · {r['tokens_per_forward']:.2f} |"
    )


def test_quality_plot(tmp_path, pretrained):
    pytest.importorskip(
        "matplotlib", reason="matplotlib is optional (the plot is skipped without it)"
    )
    model, tok = pretrained
    results, _ = quality.sweep(
        model,
        tok,
        tasks=["addition", "sort"],
        methods=[m for m in quality.METHODS if m.family == "steps"][:2],
        caches=["none"],
        n=4,
        progress=False,
    )
    path = quality.plot(results, str(tmp_path / "q.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
