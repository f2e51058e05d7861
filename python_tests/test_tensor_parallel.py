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
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dllm_kernels as dk
from dllm_kernels import _native
from dllm_kernels.models import (
    TinyLLaDA,
    TinyLLaDAConfig,
    is_tensor_parallel,
    load_pretrained,
    tensor_parallel,
)
from dllm_kernels.models.tiny_llada import full_attention
from dllm_kernels.runtime import _penalize_previous_token, model_kind
from dllm_kernels.tp import vocab_range

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

# random models: hidden 256 / 4 heads (head_dim 64, a kernel size), vocabulary 97 (uneven shards:
# 52 + 45 at tp = 2, 28 + 28 + 28 + 13 at tp = 4); GQA (2 kv heads) at tp = 2, 4 kv heads at 4
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
    "dual-reference": dict(cache="dual", threshold=0.5, backend="reference"),
    "none-entropy-bound": dict(cache="none", entropy_bound=0.5),
    "prefix-dream": dict(
        cache="prefix", steps=8, schedule="dream", temperature=0.5, top_p=0.9, seed=5
    ),
    "block-mdlm": dict(cache="block", steps=8, schedule="mdlm", seed=11),
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


def _run_rank(rank, tp, store, out_dir, jobs):
    torch.set_num_threads(1)
    dist.init_process_group(  # a rank left waiting in a collective fails instead of hanging
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=tp,
        timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = {name: _rank_results(rank, name, cases, err) for name, cases, err in jobs}
        for r in res.values():
            r["warnings"] = [str(w.message) for w in caught]
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    except BaseException:
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w") as f:
            f.write(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


def _rank_results(rank, model_name, cases, errors):
    full = _model(model_name)
    shard = tensor_parallel(full)
    res = {
        "meta": (shard.vocab_start, shard.vocab_size_local, shard.vocab_size),
        "kv_heads": shard.config.num_kv_heads,
        "is_tp": is_tensor_parallel(shard) and not is_tensor_parallel(full),
        "kind": model_kind(shard),
        "shard_method": torch.equal(full.shard().lm_head, shard.lm_head),
    }
    ids = _forward_ids()
    res["logits"] = shard(ids).logits
    res["logits_range"] = shard.forward(ids, None, full_attention(), logits_range=(3, 8))
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
    return res


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
    # only rank 1 draws a seed (T > 0, seed=None): refused before the seed's broadcast
    catch("rank_drawn", lambda: dk.generate(shard, prompts, **kw, temperature=rank, tp_group=world))
    three = TinyLLaDAConfig(vocab_size=40, hidden_size=192, num_heads=3, num_kv_heads=3)
    catch("heads", lambda: tensor_parallel(TinyLLaDA(three)))
    four = TinyLLaDAConfig(vocab_size=4, hidden_size=128, num_heads=2)  # ranges of 4: [0, 4), []
    catch("vocab", lambda: tensor_parallel(TinyLLaDA(four)))
    # the group still works after every error (no rank left waiting in a collective)
    out["after"] = dk.generate(shard, prompts, **kw, tp_group=world).tokens
    return out


def _spawn(tmp_path, tp, jobs):
    """{model name: [rank 0's results, rank 1's, ...]} of one spawn of tp processes running the
    jobs [(model name, cases, errors too)] (one spawn per tp: starting processes costs most)."""
    out = tmp_path / f"tp{tp}"
    out.mkdir()
    try:
        mp.spawn(
            _run_rank, args=(tp, str(tmp_path / f"store{tp}"), str(out), jobs), nprocs=tp, join=True
        )
    except Exception:
        errs = "\n".join(p.read_text() for p in sorted(out.glob("*.err")))
        pytest.fail(f"a tensor-parallel worker failed:\n{errs}")
    ranks = [torch.load(out / f"rank{r}.pt") for r in range(tp)]
    return {name: [res[name] for res in ranks] for name, _, _ in jobs}


TINY_CASES = [c for c in CASES if c.endswith(("-fixed", "-thr"))] + ["dual-T1"]


@pytest.fixture(scope="module")
def tp2(tmp_path_factory):
    """tp = 2: the trained model (every cache mode, fixed / threshold, T > 0) and the random GQA
    model (every case, then the misuse errors), in one spawn."""
    jobs = [("tiny-tasks", TINY_CASES, False), ("gqa", list(CASES), True)]
    return _spawn(tmp_path_factory.mktemp("tp2"), 2, jobs)


# ---- the tests
# -----------------------------------------------------------------------------------------


def _check(results, model_name, cases, tp):
    full = _model(model_name)
    c = full.config
    # the layout: the sampling op's contiguous vocabulary ranges, the rank's kv heads
    per = -(-(-(-c.vocab_size // tp)) // 4) * 4  # ceil(ceil(V / tp) / 4) * 4
    for r, res in enumerate(results):
        start = r * per
        assert res["meta"] == (start, min(per, c.vocab_size - start), c.vocab_size)
        assert res["meta"][:2] == vocab_range(c.vocab_size, r, tp)
        assert res["kv_heads"] == c.num_kv_heads // tp
        assert res["is_tp"] and res["kind"] == "runtime" and res["shard_method"]
        if _native.NATIVE:  # the kernels sampled from the shards (no all-gather fallback)
            assert not [w for w in res["warnings"] if "all-gathering" in w], res["warnings"]
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


def test_tp2_tiny_tasks(tp2):
    """The trained model (2 heads, vocabulary 25 -> shards of 16 + 9) at tp = 2."""
    _check(tp2["tiny-tasks"], "tiny-tasks", TINY_CASES, 2)
    full, tok = load_pretrained("tiny-tasks")
    out = dk.generate(full, _prompts("tiny-tasks"), **GEN, steps=8).tokens
    answers = {tok.decode(row[-8:].tolist()) for row in out}
    assert len(answers) == 3, answers  # three different, meaningful answers


def test_tp2_random_gqa(tp2):
    """A random GQA model (4 query / 2 kv heads, vocabulary 97 -> 52 + 45) at tp = 2, whose
    confidences spread over (0, 1), every case."""
    _check(tp2["gqa"], "gqa", list(CASES), 2)
    ref = dk.generate(_model("gqa"), _prompts("gqa"), **GEN, steps=8, trace=True)
    conf = torch.cat([s["conf"][s["committed"]] for s in ref.trace])
    assert conf.min() < 0.6 and conf.max() > 0.95 and conf.std() > 0.1, conf  # spread


def test_tp2_errors(tp2):
    """The misuse errors, raised on every rank (and the group still works after them)."""
    results = tp2["gqa"]
    for res in results:
        e = res["errors"]
        assert "tensor-parallel shard (tp_size=2" in e["no_group"]
        assert "pass tp_group=model.tp_group" in e["no_group"]
        assert e["not_tp"].startswith("ValueError: dllm_kernels.generate: tp_group needs a")
        assert "not supported for a plain callable" in e["callable"]
        assert "not the process group the model was sharded over" in e["other_group"]
        assert "different prompts or options" in e["rank_prompts"]
        assert "different prompts or options" in e["rank_options"]
        assert "different prompts or options" in e["rank_drawn"]
        assert "must both be multiples of the tensor-parallel size (2)" in e["heads"]
        assert "vocab_size (4) is too small for 2 ranks" in e["vocab"]
        assert torch.equal(e["after"], results[0]["errors"]["after"])


def test_tp4_uneven_vocabulary(tmp_path):
    """tp = 4 (vocabulary 97 -> 28 + 28 + 28 + 13, one query and one kv head per rank)."""
    _check(_spawn(tmp_path, 4, [("mha", TP4_CASES, False)])["mha"], "mha", TP4_CASES, 4)


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


def test_edit_penalty_on_vocabulary_shards():
    """Token editing's repetition penalty on each shard (its tokens only) == on the full logits."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 6, 97, generator=g)
    block = torch.randint(0, 97, (3, 6), generator=g)
    want = logits.clone()
    _penalize_previous_token(want, block, 1.5)
    shards = [logits[..., s : s + n].clone() for s, n in (vocab_range(97, r, 4) for r in range(4))]
    for r, t in enumerate(shards):
        _penalize_previous_token(t, block, 1.5, vocab_range(97, r, 4)[0])
    assert torch.equal(torch.cat(shards, -1), want)
    assert not torch.equal(want, logits)
