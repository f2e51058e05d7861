"""Tensor parallelism (issue 18): dllm_kernels.models.tensor_parallel and generate(...,
tp_group=). Each test spawns tp CPU processes (torch.multiprocessing, gloo, a FileStore in
tmp_path); the workers save what they computed to tmp_path and the parent compares it with the
unsharded model: the logits shards concatenated equal the unsharded logits, and every rank's
tokens equal the unsharded generate's, in every cache mode, for the fixed schedule, threshold /
factor decoding, T = 0 and seeded T > 0, CFG, token editing and EOS; plus the errors."""

from __future__ import annotations

import datetime
import os
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dllm_kernels as dk
from dllm_kernels.models import (
    TinyLLaDA,
    TinyLLaDAConfig,
    is_tensor_parallel,
    load_pretrained,
    tensor_parallel,
)
from dllm_kernels.models.tensor_parallel import vocab_range
from dllm_kernels.models.tiny_llada import full_attention
from dllm_kernels.runtime import model_kind

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

# random models: hidden 256 / 4 heads (head_dim 64, a kernel size), odd vocabulary (uneven
# vocabulary shards at tp = 2 and 4); GQA (2 kv heads) at tp = 2, 4 kv heads at tp = 4
GQA = TinyLLaDAConfig(vocab_size=97, hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2)
MHA = TinyLLaDAConfig(vocab_size=97, hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=4)
GEN = dict(gen_length=8, block_length=4)
CASES = {  # generate options per case (besides GEN and the prompts)
    **{f"{c}-fixed": dict(cache=c, steps=8) for c in ("none", "prefix", "dual", "block")},
    **{f"{c}-thr": dict(cache=c, threshold=0.5) for c in ("none", "prefix", "dual", "block")},
    "dual-T1": dict(cache="dual", steps=8, temperature=1.0, seed=1234),
    "block-T-thr": dict(cache="block", threshold=0.4, temperature=0.7, top_k=8, seed=7),
    "prefix-factor": dict(cache="prefix", factor=1.0),
    "none-cfg": dict(cache="none", steps=8, cfg_scale=1.0),
    "dual-edit": dict(cache="dual", threshold=0.6, edit_threshold=0.4, penalty_lambda=1.0),
    "block-eos": dict(cache="block", steps=8, eos_id=3, suppress_tokens=[5, 20]),
}
TP4_CASES = ["none-fixed", "dual-thr", "block-T-thr"]
COLLECTIVE_TIMEOUT_S = 40


def _model(name: str):
    if name == "tiny-tasks":
        return load_pretrained("tiny-tasks")[0]
    return TinyLLaDA({"gqa": GQA, "mha": MHA}[name], seed=3)


def _prompts(name: str):
    if name == "tiny-tasks":
        _, tok = load_pretrained("tiny-tasks")
        return [tok.encode(p) for p in ("12+345=", "sort 9081=", "7+8=")]
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 96, (n,), generator=g).tolist() for n in (5, 9, 3)]


def _forward_ids():
    g = torch.Generator().manual_seed(2)
    return torch.randint(0, 25, (2, 11), generator=g)


# ---- the workers (one process per rank)
# --------------------------------------------------------


def _run_rank(rank, tp, store, out_dir, model_name, cases, errors):
    torch.set_num_threads(1)
    dist.init_process_group(  # a rank left waiting in a collective fails instead of hanging
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=tp,
        timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
    )
    try:
        full = _model(model_name)
        shard = tensor_parallel(full)
        res = {
            "meta": (shard.vocab_start, shard.vocab_size_local, shard.vocab_size),
            "kv_heads": shard.config.num_kv_heads,
            "is_tp": is_tensor_parallel(shard) and not is_tensor_parallel(full),
            "kind": model_kind(shard),
        }
        ids = _forward_ids()
        res["logits"] = shard(ids).logits
        res["logits_range"] = shard.forward(
            ids, None, full_attention(), logits_range=(3, 8)
        )
        prompts = _prompts(model_name)
        res["tokens"] = {
            c: dk.generate(shard, prompts, **GEN, **CASES[c], tp_group=shard.tp_group).tokens
            for c in cases
        }
        # a drawn seed (seed=None) at T > 0: rank 0's, so every rank decodes the same
        res["drawn_seed"] = dk.generate(
            shard, prompts, **GEN, steps=8, temperature=1.0, tp_group=dist.group.WORLD
        ).tokens
        if errors:
            res["errors"] = _errors(rank, full, shard, prompts)
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    except BaseException:
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w") as f:
            f.write(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


def _errors(rank, full, shard, prompts):
    """The message (or None) of each misuse, on this rank."""
    out = {}

    def catch(name, fn):
        try:
            fn()
            out[name] = None
        except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
            out[name] = f"{type(e).__name__}: {e}"

    kw = dict(**GEN, steps=8)
    world = dist.group.WORLD
    catch("no_group", lambda: dk.generate(shard, prompts, **kw))
    catch("not_tp", lambda: dk.generate(full, prompts, **kw, tp_group=world))
    catch("callable", lambda: dk.generate(lambda x: full(x), prompts, **kw, tp_group=world))
    other = dist.new_group(list(range(dist.get_world_size())))  # same ranks, another group
    catch("other_group", lambda: dk.generate(shard, prompts, **kw, tp_group=other))
    catch("rank_prompts", lambda: dk.generate(shard, prompts[rank:], **kw, tp_group=world))
    catch("rank_options", lambda: dk.generate(shard, prompts, **kw, seed=rank, tp_group=world))
    three = TinyLLaDAConfig(vocab_size=40, hidden_size=192, num_heads=3, num_kv_heads=3)
    catch("heads", lambda: tensor_parallel(TinyLLaDA(three)))
    # the group still works after every error (no rank left waiting in a collective)
    out["after"] = dk.generate(shard, prompts, **kw, tp_group=world).tokens
    return out


def _spawn(tmp_path, tp, model_name, cases, errors=False):
    out = tmp_path / f"tp{tp}-{model_name}"
    out.mkdir()
    store = tmp_path / f"store-{tp}-{model_name}"
    try:
        mp.spawn(
            _run_rank,
            args=(tp, str(store), str(out), model_name, cases, errors),
            nprocs=tp,
            join=True,
        )
    except Exception:
        errs = "\n".join(p.read_text() for p in sorted(out.glob("*.err")))
        pytest.fail(f"a tensor-parallel worker failed:\n{errs}")
    return [torch.load(out / f"rank{r}.pt") for r in range(tp)]


# ---- the tests
# -----------------------------------------------------------------------------------------


def _check(results, model_name, cases, tp):
    full = _model(model_name)
    c = full.config
    # the layout: contiguous vocabulary ranges of arange(V).tensor_split(tp), the rank's kv heads
    split = torch.arange(c.vocab_size).tensor_split(tp)
    for r, res in enumerate(results):
        assert res["meta"] == (int(split[r][0]), len(split[r]), c.vocab_size)
        assert res["meta"][:2] == vocab_range(c.vocab_size, tp, r)
        assert res["kv_heads"] == c.num_kv_heads // tp
        assert res["is_tp"] and res["kind"] == "runtime"
    # (a) the logits shards concatenated == the unsharded logits (up to summation order)
    ids = _forward_ids()
    want = full(ids).logits
    got = torch.cat([res["logits"] for res in results], dim=-1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    got = torch.cat([res["logits_range"] for res in results], dim=-1)
    torch.testing.assert_close(got, want[:, 3:8], rtol=1e-5, atol=1e-4)
    # (b) every rank's tokens == the unsharded generate's
    prompts = _prompts(model_name)
    P = max(len(p) for p in prompts)
    for case in cases:
        ref = dk.generate(full, prompts, **GEN, **CASES[case], trace=True)
        for r, res in enumerate(results):
            assert torch.equal(res["tokens"][case], ref.tokens), (case, r)
        gen = ref.tokens[:, P:]
        assert not (gen == c.mask_id).any(), case
        if "eos" not in case:  # the outputs are varied, so equality means something
            assert gen.unique().numel() >= 4, (case, gen)
    for res in results[1:]:
        assert torch.equal(res["drawn_seed"], results[0]["drawn_seed"])


def test_tp2_tiny_tasks(tmp_path):
    """The trained model (2 heads, vocabulary 25 -> shards of 13 + 12) at tp = 2, every case."""
    results = _spawn(tmp_path, 2, "tiny-tasks", list(CASES))
    _check(results, "tiny-tasks", list(CASES), 2)
    full, tok = load_pretrained("tiny-tasks")
    out = dk.generate(full, _prompts("tiny-tasks"), **GEN, steps=8).tokens
    answers = {tok.decode(row[-8:].tolist()) for row in out}
    assert len(answers) == 3, answers  # three different, meaningful answers


def test_tp2_random_gqa_and_errors(tmp_path):
    """A random GQA model (4 query / 2 kv heads, vocabulary 97 -> 49 + 48) at tp = 2, whose
    confidences spread over (0, 1), every case; then the misuse errors on every rank."""
    results = _spawn(tmp_path, 2, "gqa", list(CASES), errors=True)
    _check(results, "gqa", list(CASES), 2)
    ref = dk.generate(_model("gqa"), _prompts("gqa"), **GEN, steps=8, trace=True)
    conf = torch.cat([s["conf"][s["committed"]] for s in ref.trace])
    assert conf.min() < 0.6 and conf.max() > 0.95 and conf.std() > 0.1, conf  # spread
    for res in results:
        e = res["errors"]
        assert "tensor-parallel shard (tp_size=2" in e["no_group"]
        assert "pass tp_group=model.tp_group" in e["no_group"]
        assert e["not_tp"].startswith("ValueError") and "needs a tensor-parallel model" in e[
            "not_tp"
        ]
        assert "not supported for a plain callable" in e["callable"]
        assert "not the process group the model was sharded over" in e["other_group"]
        assert "different prompts or options" in e["rank_prompts"]
        assert "different prompts or options" in e["rank_options"]
        assert "must both be multiples of the tensor-parallel size (2)" in e["heads"]
        assert torch.equal(e["after"], results[0]["errors"]["after"])


def test_tp4_uneven_vocabulary(tmp_path):
    """tp = 4 (vocabulary 97 -> 25 + 24 + 24 + 24, one query and one kv head per rank)."""
    results = _spawn(tmp_path, 4, "mha", TP4_CASES)
    _check(results, "mha", TP4_CASES, 4)


def test_errors_without_torch_distributed():
    """Before init_process_group: building a shard says so; a tp_group with a model that is not
    tensor-parallel is refused before any collective."""
    if dist.is_initialized():
        pytest.skip("torch.distributed is initialized in this process")
    model = _model("mha")
    with pytest.raises(RuntimeError, match="torch.distributed is not initialized"):
        tensor_parallel(model)
    with pytest.raises(ValueError, match="tp_group needs a tensor-parallel model"):
        dk.generate(model, [[1, 2]], **GEN, steps=8, tp_group=object())
    with pytest.raises(ValueError, match="not supported for a plain callable"):
        dk.generate(lambda x: model(x), [[1, 2]], **GEN, steps=8, tp_group=object())
