"""Shared fixtures: the devices to test on (CUDA ones are skipped, not dropped, without a GPU)."""

import os

import pytest
import torch

import dllm_kernels
from dllm_kernels import _native

HAS_CUDA = torch.cuda.is_available()

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")]
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda" and not _native.NATIVE_CUDA:
        pytest.fail("a CUDA device is present but dllm_kernels._C has no CUDA kernels")
    return torch.device(request.param)


@pytest.fixture
def gen():
    """A CPU generator with a per-test seed (printed on failure by pytest's captured output)."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return torch.Generator().manual_seed(seed)


def pytest_report_header(config):
    info = dllm_kernels.backend_info()
    return (
        f"dllm_kernels: native={info['native']} cuda={info['cuda']} torch={info['torch']} "
        f"cuda_version={info['cuda_version']} archs={info['archs']} gpu={info['gpu']}"
    )


def _needs_native(item) -> bool:
    """Marked native, or parametrized with a "native" path (the compiled op called directly)."""
    if item.get_closest_marker("native") is not None:
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(v, str) and v == "native" for v in params.values())


def pytest_collection_modifyitems(config, items):
    """On the reference backend (DLLM_KERNELS_NATIVE=0, or a failed build) the tests of the
    compiled ops themselves skip with the reason; everything else runs on the reference."""
    if _native.NATIVE:
        return
    skip = pytest.mark.skip(reason=f"needs the compiled ops ({_native.FALLBACK_REASON})")
    for item in items:
        if _needs_native(item):
            item.add_marker(skip)


def pytest_sessionstart(session):
    if os.environ.get("DLLM_REQUIRE_GPU") == "1" and not (HAS_CUDA and _native.NATIVE_CUDA):
        raise pytest.UsageError("DLLM_REQUIRE_GPU=1 but no CUDA device or no native CUDA kernels")
    # The tests compare the compiled kernels with the reference: without them they would compare
    # the reference with itself. Refuse to run instead of passing vacuously.
    if not _native.NATIVE and os.environ.get("DLLM_KERNELS_NATIVE", "1") != "0":
        raise pytest.UsageError(f"dllm_kernels native ops not loaded: {_native.FALLBACK_REASON}")
