#!/usr/bin/env bash
# benchmarks/gpu_session.sh — everything a lent GPU machine is for, in one call:
# build for sm_90a, run the native CUDA tests (ctest) and every pytest test, verify every op on
# CPU and CUDA, then benchmark; logs and JSON go to $OUT (8 files: the most that come back).
#
#   device run:  bash benchmarks/gpu_session.sh
#   then commit $OUT/bench.json and the logs under benchmarks/results/<date>-<gpu>/.
#
# The device has torch (python3) but no network: nothing is installed, only built. The tree is
# sent without .git: pass DLLM_GIT_COMMIT=$(git rev-parse HEAD) so the results name their commit.
# Each step has STEP_TIMEOUT seconds (default 420); CPU figures come from the CI-class machine.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-build/gpu_session}
mkdir -p "$OUT"
export MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a} DLLM_KERNELS_CUDA=1
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package also imports from here if built in place
export DLLM_REQUIRE_GPU=1  # pytest fails instead of skipping the CUDA tests
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no usable CUDA device: stopping before spending the session" >&2
  nvidia-smi >&2 || true
  exit 1
fi
if [ -z "${CUDACXX:-}" ]; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then CUDACXX=/usr/local/cuda/bin/nvcc; else CUDACXX=$(command -v nvcc || true); fi
  export CUDACXX
fi
status=0
step() { # step NAME LOG CMD...: run, log, remember failure, keep going
  local name=$1 log=$2; shift 2
  local t0=$SECONDS
  timeout "${STEP_TIMEOUT:-420}" "$@" >"$OUT/$log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - t0)) s (log $log)"
  tail -n 6 "$OUT/$log" | sed 's/^/   /'
  [ $rc -eq 0 ] || status=1
  return $rc
}

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  git rev-parse HEAD 2>/dev/null || echo "commit ${DLLM_GIT_COMMIT:-unknown}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  command -v nvcc && nvcc --version | tail -2
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# An editable install needs setuptools >= 64; if the device's is older, build in place instead.
step build build.log bash -c "'$PY' -m pip install --no-build-isolation --no-deps -v -e . ||
  { echo '== pip install -e failed; building in place'; '$PY' setup.py build_ext --inplace; }" ||
  { tail -40 "$OUT/build.log"; exit 1; }
step ctest ctest.log bash -c 'cmake -S . -B build/cmake-gpu -G Ninja -DDLLM_CUDA=ON -DDLLM_CUDA_ARCHS=90a &&
  cmake --build build/cmake-gpu && ctest --test-dir build/cmake-gpu --output-on-failure --no-tests=error'
step pytest pytest.log "$PY" -m pytest python_tests -ra -q
step verify verify.log "$PY" -m dllm_kernels verify
step bench bench.log bash -c "'$PY' -m dllm_kernels bench --device cuda --json '$OUT/bench.json' &&
  '$PY' benchmarks/bench_denoise_step.py --device cuda --json '$OUT/bench_denoise_step.json'"
echo "== bench table"
grep -v "^W[0-9]" "$OUT/bench.log" | tail -n 20
exit $status
