"""Import behaviour: native loading, build metadata, and the fallback to the reference ops."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import dllm_kernels as dk
from dllm_kernels import _native, registry


@pytest.mark.native
def test_backend_info_reports_native():
    info = dk.backend_info()
    for key in ("native", "cuda", "torch", "cuda_version", "archs", "gpu", "build"):
        assert key in info
    assert info["native"] is True
    assert info["torch"] == torch.__version__
    build = info["build"]
    assert build["torch"] == torch.__version__
    # `cuda` means "compiled CUDA kernels are registered", and must agree with what was built.
    assert info["cuda"] == build["with_cuda"]
    if build["with_cuda"]:
        assert info["archs"] and all(a for a in info["archs"])


@pytest.mark.native
def test_every_registered_op_has_a_spec_and_kernels():
    names = {s.name for s in registry.SPECS}
    assert names == set(_native._OPS)
    for op in _native._OPS:
        assert _native._has_kernel(op, "CPU")
        assert _native._has_kernel(op, "Meta"), f"{op}: no fake kernel registered"


def _native_calls(device, wrap=lambda t: t):
    """A valid call of every native op through the public API, with the Python argument forms
    that ops.py normalises (lists, scalars, a 0-d tensor, seed None, default max_len / scale).
    wrap: applied to every input tensor (e.g. FakeTensorMode.from_tensor)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 49, (2, 5), generator=g)
    x[:, ::2] = 49
    logits, x, conf, k_cache, v_cache, q = (wrap(t.to(device)) for t in (
        torch.randn(2, 5, 50, generator=g), x, torch.rand(2, 5, generator=g),
        torch.randn(4, 8, 2, 64, generator=g), torch.randn(4, 8, 2, 64, generator=g),
        torch.randn(2, 3, 4, 64, generator=g)))
    table = wrap(torch.tensor([[0, 1], [2, 3]], dtype=torch.int32, device=device))
    lens = wrap(torch.tensor([9, 16], dtype=torch.int32, device=device))
    slots = wrap(torch.tensor([3, 17], device=device))
    return {
        "commit_": lambda: dk.commit_(x.clone(), x.flip(1), x == 49),
        "num_transfer_tokens": lambda: dk.num_transfer_tokens(x == 49, torch.tensor(3)),
        "denoise_step": lambda: dk.denoise_step(logits, x, 49, temperature=1.0,
                                                suppress_tokens=[3, 7, 3], seed=1),
        "select_transfer": lambda: [dk.select_transfer(conf, num_transfer=2),
                                    dk.select_transfer(conf, probability=0.5, seed=2),
                                    dk.select_transfer(conf, threshold=0.5, strict=True),
                                    dk.select_transfer(conf, factor=1.0)],
        "denoise_and_select": lambda: dk.denoise_and_select(logits, x.clone(), 49, num_transfer=1,
                                                            suppress_tokens=[0], commit=True),
        "cache_write_": lambda: dk.cache_write_(k_cache, v_cache, q[:, 0, :2], q[:, 1, :2], slots),
        "cache_gather": lambda: dk.cache_gather(k_cache, v_cache, table, lens),
        "cache_copy_pages_": lambda: dk.cache_copy_pages_(k_cache, v_cache, [(0, 3), (1, 2)]),
        "block_attention": lambda: dk.block_attention(
            q, q[:, :, :2], q[:, :, 2:], k_cache=k_cache, v_cache=v_cache, block_table=table,
            cache_lens=lens, mask="block_causal", block_size=4),
    }


@pytest.mark.native
def test_native_calls_are_checked_once(monkeypatch, device):
    """One source per argument rule: a native call is checked by the C++ checks alone. With every
    Python check (dllm_kernels._checks) made to fail, a native call of every op still runs (the
    Python side only normalises arguments), and so it does on fake tensors (the Meta kernels)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from dllm_kernels import _checks, reference

    calls = _native_calls(device)
    assert set(calls) == set(_native._OPS)

    def python_check(*args, **kwargs):
        raise AssertionError("a dllm_kernels._checks function ran on the native path")

    patched = [name for name, fn in vars(_checks).items()
               if callable(fn) and getattr(fn, "__module__", None) == _checks.__name__]
    assert {"commit_", "denoise_step", "select_rule", "cache_pair", "block_attention"} <= set(patched)
    for name in patched:
        monkeypatch.setattr(_checks, name, python_check)
    for call in calls.values():
        call()
    with FakeTensorMode() as mode:  # (no value-dependent normalisation: seeds given, no max_len)
        fake = _native_calls(device, mode.from_tensor)
        for op in ("commit_", "denoise_step", "select_transfer", "cache_write_", "block_attention"):
            fake[op]()
    with pytest.raises(AssertionError, match="ran on the native path"):  # the reference does check
        reference.commit_(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.long),
                          torch.zeros(1, 1, dtype=torch.bool))


@pytest.mark.native
def test_mismatched_build_falls_back_with_one_clear_warning(monkeypatch):
    monkeypatch.setattr(_native, "_read_build_info", lambda: {"torch": "0.0.1", "cuda": "9.9"})
    with pytest.warns(RuntimeWarning, match=r"built for torch 0\.0\.1 \(CUDA 9\.9\), you have torch") as rec:
        native, cuda, reason, _ = _native._load()
    assert (native, cuda) == (False, False) and "reference ops" in str(rec[0].message)
    assert len(rec) == 1


@pytest.mark.native
def test_missing_build_falls_back(monkeypatch):
    monkeypatch.setattr(_native, "_read_build_info", lambda: None)
    with pytest.warns(RuntimeWarning, match=r"not built"):
        native, _, reason, _ = _native._load()
    assert native is False and "pip install" in reason


CODE = (
    "import json, torch, dllm_kernels as dk\n"
    "x = torch.tensor([[5, 9, 9]]); dk.commit_(x, torch.tensor([[1, 2, 3]]), torch.tensor([[True, False, True]]))\n"
    "n = dk.num_transfer_tokens(torch.tensor([[True, True, False, True]]), 2)\n"
    "print(json.dumps({'x': x.tolist(), 'n': n.tolist(), 'native': dk.backend_info()['native']}))\n"
)
EXPECTED = {"x": [[1, 9, 3]], "n": [[2, 1]], "native": False}


def _run(code, cwd, **env):
    return subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **env}, timeout=300)


@pytest.mark.native
@pytest.mark.parametrize("state", ["no _C", "built for another torch"])
def test_fallback_in_a_fresh_process(tmp_path, state):
    """A copy of the package without its extension, or with build info from another torch:
    import works, one warning says why, and the ops give the reference results."""
    pkg = os.path.dirname(dk.__file__)
    ignore = ["__pycache__", "_build_info.json"] + (["*.so"] if state == "no _C" else [])
    shutil.copytree(pkg, tmp_path / "dllm_kernels", ignore=shutil.ignore_patterns(*ignore))
    if state != "no _C":
        (tmp_path / "dllm_kernels" / "_build_info.json").write_text(
            json.dumps({"torch": "0.0.1", "cuda": "9.9", "archs": ["9.0a"]}))
    out = _run(CODE, tmp_path, PYTHONPATH=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == EXPECTED
    assert out.stderr.count("using the reference ops") == 1, out.stderr
    why = "not built" if state == "no _C" else "built for torch 0.0.1 (CUDA 9.9), you have torch"
    assert why in out.stderr


def test_native_off_by_request(tmp_path):
    out = _run(CODE, tmp_path, DLLM_KERNELS_NATIVE="0")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == EXPECTED


def test_verify_refuses_to_pass_without_native():
    out = subprocess.run([sys.executable, "-m", "dllm_kernels", "verify", "--device", "cpu"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "DLLM_KERNELS_NATIVE": "0"})
    assert out.returncode == 1
    assert "native ops not loaded" in out.stdout
