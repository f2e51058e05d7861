"""python -m dllm_kernels: verify passes, bench writes its JSON. Structure only: no timing
asserts."""

import json
import subprocess
import sys

import pytest
import torch


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "dllm_kernels", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.native
def test_verify_passes_on_every_device():
    out = run("verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout
    for op in (
        "commit_",
        "num_transfer_tokens",
        "denoise_step",
        "select_transfer",
        "denoise_and_select",
        "cache_write_",
        "cache_gather",
        "cache_copy_pages_",
    ):
        assert op in out.stdout
    assert ", 0 failed" in out.stdout


@pytest.mark.native
def test_bench_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    out = run(
        "bench",
        "--device",
        "cpu",
        "--no-compile",
        "--reps",
        "3",
        "--json",
        str(path),
        "--op",
        "commit_",
        "--op",
        "num_transfer_tokens",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(path.read_text())
    head = data["header"]
    assert head["native"] is True and head["torch"] and "cpu" in head["devices"]
    assert head["peaks"]["cpu"]["bandwidth"] > 0
    rows = data["rows"]
    assert {r["op"] for r in rows} == {"commit_", "num_transfer_tokens"}
    for r in rows:
        assert r["native_s"] > 0 and r["reference_s"] > 0 and r["bytes"] > 0
        assert r["gbps"] > 0 and r["pct_peak"] > 0 and r["speedup_vs_ref"] > 0
    assert "GB/s" in out.stdout and "vs ref" in out.stdout


@pytest.mark.native
def test_info_is_json():
    out = run("info")
    assert out.returncode == 0
    assert json.loads(out.stdout)["native"] is True


def test_unknown_op_is_a_clear_error():
    out = run("verify", "--op", "no_such_op")
    assert out.returncode != 0
    assert "unknown op 'no_such_op'" in out.stderr


def test_generate_prints_kernels_and_reference(tmp_path):
    path = tmp_path / "gen.json"
    out = run(
        "generate",
        "--device",
        "cpu",
        "--gen-length",
        "16",
        "--block-length",
        "8",
        "--steps",
        "8",
        "--prompt-length",
        "8",
        "--cache",
        "block",
        "--json",
        str(path),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        "runtime kernels cache=block" in out.stdout
        and "runtime reference cache=block" in out.stdout
    )
    rows = json.loads(path.read_text())["rows"]
    assert [r["nfe"] for r in rows] == [8 + 1 + 2] * 2  # steps + prefill + 2 commits
    assert all(r["tokens_per_s"] > 0 and "model_s" in r for r in rows)


def test_quality_writes_table_json_and_plot(tmp_path):
    out = run(
        "quality",
        "--n",
        "4",
        "--task",
        "addition",
        "--task",
        "sort",
        "--method",
        "threshold=0.9",
        "--method",
        "steps (1/step)",
        "--method",
        "entropy_bound=0.5",
        "--method",
        "editing (threshold=0.9, edit=0.9)",
        "--cache",
        "none",
        "--cache",
        "block",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads((tmp_path / "quality.json").read_text())
    rows = data["results"]
    assert {(r["task"], r["method"], r["cache"]) for r in rows} == {
        (t, m, c)
        for t in ("addition", "sort")
        for m in (
            "threshold=0.9",
            "steps (1/step)",
            "entropy_bound=0.5",
            "editing (threshold=0.9, edit=0.9)",
        )
        for c in ("none", "block")
    }
    for r in rows:
        assert r["n"] == 4 and 0 <= r["accuracy"] <= 1 and r["nfe"] > 0 and r["tokens_per_s"] > 0
    assert data["header"]["model"] == "tiny-tasks"
    assert "tokens/forward" in out.stdout and "threshold=0.9" in out.stdout
    assert data["skipped"] == []  # (a skipped method: test_tiny_tasks' sweep test)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no plot" in out.stdout
    else:
        assert (tmp_path / "quality.png").read_bytes()[:4] == b"\x89PNG"


def test_main_job_runs_the_main_cases_and_full_runs_every_case():
    """`python -m dllm_kernels` runs OpSpec.main_cases of each op (one realistic shape), --full
    and the verify / bench commands every case (CUDA: plus cuda_cases)."""
    from dllm_kernels import registry

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for spec in registry.SPECS:
        main = spec.cases_for(cpu, full=False)
        assert main and all(0 <= i < len(spec.cases) for i in spec.main_cases)
        assert main == tuple(spec.cases[i] for i in spec.main_cases)
        assert spec.cases_for(cpu) == spec.cases
        assert spec.cases_for(cuda) == spec.cases + spec.cuda_cases
