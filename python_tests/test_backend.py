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
