#!/usr/bin/env bash
# tools/dev.sh — set up, build and run dllm-kernels on a fresh machine (the README's two
# commands).
#
#   bash tools/dev.sh main [ARGS]   set up, build, then `python -m dllm_kernels ARGS` (verify +
#                                   bench)
#   bash tools/dev.sh test [ARGS]   set up, build, then ctest (native core) and pytest ARGS
#   bash tools/dev.sh setup         set up and build only
#
# Set-up: a virtual environment in .venv (DLLM_VENV=none uses the current python instead), torch
# installed if missing (DLLM_TORCH, default torch==2.14.1: the CUDA 13.0 build that matches the
# system nvcc here), build tools, and an nvcc of the same CUDA release as torch (pinned pip
# packages when the system nvcc differs; see ../shared/BUILD-NOTES.md). The extension is rebuilt
# only when csrc/, setup.py or the torch version changed.
#
# Build variables (passed through to setup.py): DLLM_KERNELS_CUDA=0|1, TORCH_CUDA_ARCH_LIST,
# MAX_JOBS, DEBUG=1. DLLM_EXTRAS=hf,quality,safetensors,lint also installs the optional
# transformers, matplotlib, safetensors (their tests then run) and the linters.
set -euo pipefail

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in main | test | setup) ;; *)
  echo "usage: bash tools/dev.sh {main|test|setup} [args]" >&2
  exit 2
  ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
t_start=$SECONDS
t_phase=$SECONDS
phase() { # phase NAME: ends the previous phase, prints its time
  local now=$SECONDS
  [ -n "${current_phase:-}" ] && echo "== phase '$current_phase' took $((now - t_phase)) s"
  current_phase=$1
  t_phase=$now
  [ -n "$1" ] && echo "== phase '$1'"
  return 0
}

# ---- python environment --------------------------------------------------------------------------
phase "environment"
venv=${DLLM_VENV:-.venv}
if [ "$venv" != none ]; then
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  # shellcheck disable=SC1091
  . "$venv/bin/activate"
fi
py=python
pipq() { # quiet pip install; drops the warnings this machine's pip configuration prints per index
  "$py" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

if ! "$py" -c "import torch" 2>/dev/null; then
  spec=${DLLM_TORCH:-torch==2.14.1}
  echo "torch not found: installing $spec"
  pipq "$spec"
fi
# Build and test tools: setuptools >= 64 for editable installs through pyproject.toml.
"$py" - <<'EOF' || pipq "setuptools>=77" wheel ninja pytest numpy expecttest hypothesis
import importlib.metadata as md, sys
need = {"setuptools": 77, "ninja": 0, "pytest": 0, "numpy": 0, "expecttest": 0, "wheel": 0,
        "hypothesis": 0}
for name, major in need.items():
    try:
        if int(md.version(name).split(".")[0]) < major:
            sys.exit(1)
    except md.PackageNotFoundError:
        sys.exit(1)
EOF
# Optional extras (DLLM_EXTRAS=hf,quality,safetensors,lint: transformers, matplotlib, safetensors,
# whose tests skip without them; lint: ruff + clang-format for tools/lint.sh; CI sets all four).
extra() { # extra NAME MODULE SPEC: install SPEC when NAME is asked for and MODULE is missing
  if [[ ",${DLLM_EXTRAS:-}," == *",$1,"* ]] && ! "$py" -c "import $2" 2>/dev/null; then
    echo "installing the $1 extra ($3)"
    pipq "$3"
  fi
}
extra hf transformers "transformers>=5,<6"
extra quality matplotlib matplotlib
extra safetensors safetensors safetensors
extra lint ruff "ruff==0.17.6"
extra lint clang_format "clang-format==23.1.5"
"$py" -c "import torch as t
print(f'torch {t.__version__} (CUDA {t.version.cuda}) at {t.__file__}')"

# ---- nvcc matching torch's CUDA release ---------------------------------------------------------
phase "nvcc"
want=$("$py" -c "import torch; v = torch.version.cuda or ''; print('.'.join(v.split('.')[:2]))")
if [ -n "$want" ] && [ "${DLLM_KERNELS_CUDA:-}" != 0 ]; then
  nvcc_release() { "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p'; }
  have=""
  for home in "${CUDA_HOME:-}" /usr/local/cuda; do
    [ -n "$home" ] && [ -x "$home/bin/nvcc" ] && have=$(nvcc_release "$home/bin/nvcc") && break
  done
  pip_nvcc=$("$py" -c "
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit
for base in nvidia.__path__:
    for p in glob.glob(os.path.join(base, 'cu*', 'bin', 'nvcc')):
        print(p); raise SystemExit
")
  [ -n "$pip_nvcc" ] && [ "$(nvcc_release "$pip_nvcc")" = "$want" ] && have_pip=1 || have_pip=0
  if [ "$have" = "$want" ]; then
    echo "system nvcc is CUDA $have, matching torch"
  elif [ "$have_pip" = 1 ]; then
    echo "using pip nvcc $pip_nvcc (CUDA $want); system nvcc is CUDA ${have:-absent}"
  else
    echo "torch needs nvcc of CUDA $want, system nvcc is CUDA ${have:-absent}:" \
      "installing the pinned pip nvcc set"
    pipq "nvidia-cuda-nvcc==$want.*" "nvidia-nvvm==$want.*" "nvidia-cuda-crt==$want.*"
  fi
fi

# ---- build the extension (only when its inputs changed) ------------------------------------------
phase "build"
stamp_file=build/dllm-build.stamp
stamp=$( {
  "$py" -c "import torch, os; print(torch.__version__, torch.version.cuda)"
  env | grep -E '^(DLLM_KERNELS_CUDA|TORCH_CUDA_ARCH_LIST|DEBUG)=' | sort || true
  find csrc setup.py pyproject.toml -type f -print0 | sort -z | xargs -0 sha1sum
} | sha1sum | cut -d' ' -f1)
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] &&
  ls dllm_kernels/_C*.so >/dev/null 2>&1 && [ -f dllm_kernels/_build_info.json ]; then
  echo "extension up to date (delete $stamp_file to force a rebuild)"
else
  mkdir -p build
  log=build/dllm-build.log
  echo "building (MAX_JOBS=${MAX_JOBS:-auto}," \
    "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-default}, log: $log)"
  if ! "$py" -m pip install --no-build-isolation --no-deps --disable-pip-version-check -v -e . \
    >"$log" 2>&1; then
    grep -E "error|ERROR|dllm_kernels setup" "$log" | head -40
    echo "build failed; full log: $log" >&2
    exit 1
  fi
  grep -E "dllm_kernels setup" "$log" || true
  echo "compiled:"
  grep -E " -c " "$log" | grep -oE "csrc/(cpu|cuda|torch)/([a-z_0-9]+/)?[a-z_0-9]+\.(cu|cpp)" |
    sort -u | sed 's/^/  /'
  grep -E " -shared " "$log" | grep -oE "\-o [^ ]+_C[^ ]*\.so" | sed 's/^-o /linked: /'
  echo "$stamp" >"$stamp_file"
fi
"$py" -m dllm_kernels info

# ---- run -----------------------------------------------------------------------------------------
case "$cmd" in
setup) ;;
main)
  phase "main"
  "$py" -m dllm_kernels "$@"
  ;;
test)
  phase "ctest"
  cuda_flag=()
  if [ "${DLLM_KERNELS_CUDA:-}" = 1 ]; then
    cuda_flag=(-DDLLM_CUDA=ON)
  elif [ "${DLLM_KERNELS_CUDA:-}" = 0 ]; then
    cuda_flag=(-DDLLM_CUDA=OFF)
  fi
  archs=${TORCH_CUDA_ARCH_LIST:-8.0;9.0a}
  archs=$(echo "$archs" | tr ' ' ';' | sed 's/\.//g') # "8.0;9.0a" -> "80;90a"
  if [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
    export CUDACXX=/usr/local/cuda/bin/nvcc
  fi
  cmake -S . -B build/cmake -G Ninja -DDLLM_CUDA_ARCHS="$archs" "${cuda_flag[@]}" \
    >build/cmake-configure.log 2>&1 || { cat build/cmake-configure.log; exit 1; }
  grep -E "^-- dllm:" build/cmake-configure.log || true
  cmake --build build/cmake
  ctest --test-dir build/cmake --output-on-failure --no-tests=error
  phase "pytest"
  set +e
  "$py" -m pytest python_tests -ra "$@"
  rc=$?
  set -e
  if [ $rc -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
  fi
  [ $rc -eq 0 ] || exit $rc
  ;;
esac
phase ""
echo "== total $((SECONDS - t_start)) s"
