#!/usr/bin/env bash
# benchmarks/gpu_session.sh — everything a lent GPU machine is for, in one call:
# build for sm_90a, run the native CUDA tests (ctest) and every pytest test, verify every op on
# CPU and CUDA, then benchmark; logs and JSON go to $OUT (at most 8 files per call come back).
#
#   device run:  bash benchmarks/gpu_session.sh [all|test|bench|e2e]
#   then commit $OUT/*.json and the logs under benchmarks/results/<date>-<gpu>/.
#
# A device command may run 10 minutes at most: `test` (build, ctest, pytest, verify), `bench`
# (the op benchmarks and bench_denoise_step) and `e2e` (bench_block_attention and bench_generate;
# both rebuild only if the CUDA ops are not importable) fit one call each, `all` runs everything
# when the build is fast. The machine keeps the build between calls while warm.
#
# The device has torch (python3) but no network: nothing is installed, only built. The tree is
# sent without .git: pass DLLM_GIT_COMMIT=$(git rev-parse HEAD) so the results name their commit.
# Each step has STEP_TIMEOUT seconds (default 300); CPU figures come from the CI-class machine.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-all}
case "$mode" in all | test | bench | e2e) ;; *) echo "usage: gpu_session.sh [all|test|bench|e2e]" >&2; exit 2 ;; esac
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
  timeout "${STEP_TIMEOUT:-300}" "$@" >"$OUT/$log" 2>&1
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
if [ "$mode" = test ] || [ "$mode" = all ] || ! "$PY" -c "import dllm_kernels as d, sys; sys.exit(0 if d.backend_info()['cuda'] else 1)" 2>/dev/null; then
  step build build.log bash -c "'$PY' -m pip install --no-build-isolation --no-deps -v -e . ||
    { echo '== pip install -e failed; building in place'; '$PY' setup.py build_ext --inplace; }" ||
    { tail -40 "$OUT/build.log"; exit 1; }
fi
if [ "$mode" = test ] || [ "$mode" = all ]; then
step ctest ctest.log bash -c 'cmake -S . -B build/cmake-gpu -G Ninja -DDLLM_CUDA=ON -DDLLM_CUDA_ARCHS=90a &&
  cmake --build build/cmake-gpu && ctest --test-dir build/cmake-gpu --output-on-failure --no-tests=error'
step pytest pytest.log "$PY" -m pytest python_tests -ra -q
step verify verify.log "$PY" -m dllm_kernels verify
fi
if [ "$mode" = bench ] || [ "$mode" = all ]; then
# torch.compile comparisons are in bench_denoise_step.py (a subset of cases); the registry bench
# skips them to stay inside the command's time.
step bench bench.log "$PY" -m dllm_kernels bench --device cuda --no-compile --json "$OUT/bench.json"
step bench_denoise_step bench_denoise_step.log "$PY" benchmarks/bench_denoise_step.py --device cuda \
  --json "$OUT/bench_denoise_step.json"
fi
if [ "$mode" = e2e ] || [ "$mode" = all ]; then
step bench_block_attention bench_block_attention.log "$PY" benchmarks/bench_block_attention.py \
  --device cuda --json "$OUT/bench_block_attention.json"
step bench_generate bench_generate.log "$PY" benchmarks/bench_generate.py --device cuda \
  --json "$OUT/bench_generate.json"
fi
echo "== tables"
for log in bench bench_denoise_step bench_block_attention bench_generate; do
  [ -f "$OUT/$log.log" ] && { echo "-- $log"; grep -v "^W[0-9]" "$OUT/$log.log" | tail -n 30; }
done
exit $status
