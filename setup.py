"""Builds dllm_kernels._C (CPU ops always; CUDA ops when a matching nvcc is found).

    pip install --no-build-isolation -e .        # against the torch already installed

Environment variables:
    DLLM_KERNELS_CUDA      1: build the CUDA kernels (fail if impossible); 0: CPU only;
                           unset: CUDA when torch has CUDA (torch.version.cuda) and nvcc is found.
    TORCH_CUDA_ARCH_LIST   target archs, default "8.0;9.0a" (CI uses "9.0a").
    MAX_JOBS               parallel compile jobs (ninja).
    DEBUG=1                -O0 -g for host code (device code always carries -lineinfo).
    CUDA_HOME              the CUDA toolkit to use; otherwise found as described in
                           find_cuda_home() below.

nvcc must come from the same CUDA minor release as torch.version.cuda: CCCL refuses newer
headers than its compiler. When the system nvcc does not match, install the pip nvcc set pinned to
torch's CUDA (the message below prints the exact command); this file then finds it on its own.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys

from setuptools import find_packages, setup

import torch

ROOT = os.path.dirname(os.path.abspath(__file__))
PKG = "dllm_kernels"
DEFAULT_ARCHS = "8.0;9.0a"


def log(msg: str) -> None:
    print(f"[dllm_kernels setup] {msg}", flush=True)


def fail(msg: str) -> None:
    sys.exit(f"\n[dllm_kernels setup] ERROR: {msg}\n")


def minor(version: str | None) -> str | None:
    """'13.0.88' -> '13.0'."""
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def nvcc_version(nvcc: str) -> str | None:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def pip_cuda_dirs() -> list[str]:
    """Folders of the pip CUDA wheels (site-packages/nvidia/cuXY), newest layout first."""
    try:
        import nvidia  # namespace package installed by torch's CUDA dependencies
    except ImportError:
        return []
    major = (torch.version.cuda or "").split(".")[0]
    dirs = []
    for base in nvidia.__path__:
        dirs += sorted(glob.glob(os.path.join(base, f"cu{major}")))
    return [d for d in dirs if os.path.isdir(d)]


def pip_cuda_include_dirs() -> list[str]:
    """Include dirs of the pip CUDA wheels (cusparse.h, cublas_v2.h, ... that ATen's CUDA headers
    include but a bare system toolkit may lack). Found from the installed `nvidia` package."""
    found = []
    for d in pip_cuda_dirs():
        inc = os.path.join(d, "include")
        if os.path.isfile(os.path.join(inc, "cusparse.h")):
            found.append(inc)
    try:  # older wheels: one package per library, nvidia/cusparse/include, ...
        import nvidia

        for base in nvidia.__path__:
            found += sorted(os.path.dirname(p) for p in glob.glob(os.path.join(base, "*", "include", "cusparse.h")))
    except ImportError:
        pass
    return list(dict.fromkeys(found))


def find_cuda_home(want: str) -> tuple[str | None, str]:
    """Returns (CUDA home whose nvcc is CUDA `want` (major.minor), report of what was seen)."""
    seen = []
    candidates = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.environ[var])
    candidates += pip_cuda_dirs()  # pip nvcc pinned to torch's CUDA, if installed
    candidates.append("/usr/local/cuda")
    which = shutil.which("nvcc")
    if which:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(which))))
    for home in dict.fromkeys(candidates):
        nvcc = os.path.join(home, "bin", "nvcc")
        if not (os.path.isfile(nvcc) and os.path.isfile(os.path.join(home, "include", "cuda_runtime.h"))):
            continue  # not a toolkit (e.g. /usr/local/bin/nvcc is a wrapper script)
        v = nvcc_version(nvcc)
        seen.append(f"{nvcc} (CUDA {v})")
        if v == want:
            return home, "; ".join(seen)
        if os.environ.get("CUDA_HOME") == home:
            break  # an explicit CUDA_HOME that does not match is an error, not a hint
    return None, "; ".join(seen) or "no nvcc found"


def link_dir_for_cudart(cuda_home: str) -> list[str]:
    """The pip CUDA wheels ship libcudart.so.13 but no libcudart.so, so `-lcudart` fails to link.
    Make a build-private folder holding that link (outside the package tree)."""
    for sub in ("lib64", "lib"):
        if os.path.exists(os.path.join(cuda_home, sub, "libcudart.so")):
            return []
    libs = sorted(glob.glob(os.path.join(cuda_home, "lib*", "libcudart.so.*")))
    if not libs:
        fail(f"no libcudart.so* under {cuda_home}/lib*; cannot link the CUDA extension")
    link_dir = os.path.join(ROOT, "build", "dllm-link")
    os.makedirs(link_dir, exist_ok=True)
    link = os.path.join(link_dir, "libcudart.so")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(libs[0], link)
    log(f"linked {link} -> {libs[0]}")
    return [link_dir]


def decide_cuda() -> tuple[bool, str | None]:
    """Returns (build CUDA?, CUDA home). Fails loudly when CUDA was asked for but cannot be built."""
    flag = os.environ.get("DLLM_KERNELS_CUDA", "").strip()
    if flag not in ("", "0", "1"):
        fail(f"DLLM_KERNELS_CUDA must be 0, 1 or unset, got {flag!r}")
    if flag == "0":
        log("DLLM_KERNELS_CUDA=0: building the CPU ops only")
        return False, None
    want = minor(torch.version.cuda)
    if want is None:
        if flag == "1":
            fail(f"DLLM_KERNELS_CUDA=1 but torch {torch.__version__} has no CUDA; install a CUDA build of torch")
        log(f"torch {torch.__version__} has no CUDA: building the CPU ops only")
        return False, None
    home, seen = find_cuda_home(want)
    if home is None:
        if flag == "" and seen == "no nvcc found":
            log(f"torch has CUDA {want} but no nvcc was found: building the CPU ops only "
                "(set DLLM_KERNELS_CUDA=1 to make this an error)")
            return False, None
        fail(
            f"torch {torch.__version__} was built with CUDA {want}, but no nvcc of CUDA {want} was "
            f"found (seen: {seen}). nvcc must match torch's CUDA minor release, or CCCL aborts "
            f"with 'CUDA compiler and CUDA toolkit headers are incompatible'. Fix one of:\n"
            f"  pip install 'nvidia-cuda-nvcc=={want}.*' 'nvidia-nvvm=={want}.*' 'nvidia-cuda-crt=={want}.*'\n"
            f"    (pin all three; this setup.py then finds that nvcc by itself)\n"
            f"  export CUDA_HOME=/path/to/cuda-{want}\n"
            f"  export DLLM_KERNELS_CUDA=0   # CPU ops only"
        )
    return True, home


def git_commit() -> str:
    """HEAD (+ "-dirty"), or $DLLM_GIT_COMMIT where the tree has no .git (e.g. a copy sent to a
    GPU machine)."""
    if not os.path.exists(os.path.join(ROOT, ".git")):
        return os.environ.get("DLLM_GIT_COMMIT", "unknown")
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_extension():
    with_cuda, cuda_home = decide_cuda()
    if with_cuda:
        os.environ["CUDA_HOME"] = cuda_home  # cpp_extension reads it when first imported
        if os.path.join(cuda_home, "bin") not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = os.path.join(cuda_home, "bin") + os.pathsep + os.environ.get("PATH", "")
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)
    from torch.utils import cpp_extension  # noqa: E402  (after CUDA_HOME is settled)

    debug = os.environ.get("DEBUG", "0") == "1"
    opt = ["-O0", "-g"] if debug else ["-O3"]
    sources = sorted(glob.glob(os.path.join("csrc", "torch", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    include_dirs = [os.path.join(ROOT, "csrc", d) for d in ("include", "torch", "cuda")]
    # -fno-trapping-math lets GCC if-convert and vectorise the branch-free CPU loops (we never read
    # floating-point exception flags); no -march: hot loops carry their own AVX2 clones.
    cxx = opt + ["-fno-trapping-math"] + (["-fopenmp"] if sys.platform.startswith("linux") else [])
    extra_link = ["-fopenmp"] if sys.platform.startswith("linux") else []
    info = {
        "package": PKG,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if with_cuda else None,
        "with_cuda": with_cuda,
        "archs": os.environ["TORCH_CUDA_ARCH_LIST"].replace(" ", ";").split(";") if with_cuda else [],
        "nvcc": None,
        "debug": debug,
        "git_commit": git_commit(),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
    }
    if with_cuda:
        # csrc/cuda/<op>.cu (the glue) and csrc/cuda/<op>/*.cu (kernel instances split off a heavy
        # op so that no unit compiles for long: see csrc/cuda/denoise_step/instances.h)
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "**", "*.cu"), recursive=True))
        nvcc_flags = opt + ["-lineinfo", "-DDLLM_WITH_CUDA"]
        for inc in pip_cuda_include_dirs():
            nvcc_flags += ["-isystem", inc]  # after CUDA_HOME/include: only fills in missing headers
        info["nvcc"] = f"{os.path.join(cuda_home, 'bin', 'nvcc')} (CUDA {nvcc_version(os.path.join(cuda_home, 'bin', 'nvcc'))})"
        ext = cpp_extension.CUDAExtension(
            f"{PKG}._C", sources, include_dirs=include_dirs,
            library_dirs=link_dir_for_cudart(cuda_home),
            extra_compile_args={"cxx": cxx + ["-DDLLM_WITH_CUDA"], "nvcc": nvcc_flags},
            extra_link_args=extra_link,
        )
        log(f"building CPU + CUDA ops with {info['nvcc']} for archs {info['archs']}")
    else:
        ext = cpp_extension.CppExtension(
            f"{PKG}._C", sources, include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx}, extra_link_args=extra_link,
        )

    class BuildExtWithInfo(cpp_extension.BuildExtension):
        """Writes dllm_kernels/_build_info.json only once the extension has built, and removes the
        old one first, so a failed rebuild never leaves a stale _C looking current."""

        def run(self):
            src = os.path.join(ROOT, PKG, "_build_info.json")
            if os.path.exists(src):
                os.remove(src)
            super().run()
            for folder in dict.fromkeys([os.path.join(ROOT, PKG), os.path.join(self.build_lib, PKG)]):
                if os.path.isdir(folder):
                    with open(os.path.join(folder, "_build_info.json"), "w") as f:
                        json.dump(info, f, indent=2)
                        f.write("\n")

    return ext, BuildExtWithInfo


ext, build_ext = build_extension()

setup(
    name=PKG,
    version="0.1.0",
    description="Native kernels and runtime for masked-diffusion language models",
    packages=find_packages(include=[PKG, f"{PKG}.*"]),
    # the shipped trained model (dllm_kernels.models.load_pretrained): weights + config/tokenizer
    package_data={PKG: ["_build_info.json"], f"{PKG}.models": ["weights/*.safetensors", "weights/*.json"]},
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
    python_requires=">=3.9",
    # optional: transformers models in generate (dllm_kernels.integrations.transformers)
    extras_require={"hf": ["transformers>=5,<6"],
                    # optional: the PNG of `python -m dllm_kernels quality`; a cross-check test
                    "quality": ["matplotlib"], "safetensors": ["safetensors"],
                    # the style checks of tools/lint.sh (pinned: formatting changes between versions)
                    "lint": ["ruff==0.17.6", "clang-format==23.1.5"]},
)
