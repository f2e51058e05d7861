#!/usr/bin/env bash
# benchmarks/gpu_session.sh — everything a lent GPU machine is for, in ONE device call.
#
#   on the device (run, timeout_s 600):  DLLM_GIT_COMMIT=<sha> bash benchmarks/gpu_session.sh
#   here, without a GPU (CI runs it):    bash benchmarks/gpu_session.sh --dry-run
#   reruns of one part (old modes):      bash benchmarks/gpu_session.sh test|bench|e2e
#
# The default run works to a global deadline, DLLM_SESSION_SECONDS (default 540) after its start,
# and gives each step `timeout` min(its budget, the time left); a step that would start with less
# than 5 s left is skipped. Steps, in priority order (budget in seconds):
#   build        150  setup.py build_ext --inplace for sm_90a, MAX_JOBS=16: about as long as the
#                     slowest unit (denoise_step's kernels are split over several, see
#                     csrc/cuda/denoise_step/instances.h; build.log ends with ninja's slowest
#                     units); the CUDA ctest binaries build in the background meanwhile (nice)
#   verify        60  python -m dllm_kernels verify --device cuda (every op, CPU-reference check
#                     on the registry's small and realistic shapes)
#   memcheck      60  compute-sanitizer --tool memcheck   } over benchmarks/sanitize_cases.py:
#   racecheck     70  compute-sanitizer --tool racecheck  } one tiny case per CUDA kernel and
#   synccheck     40  compute-sanitizer --tool synccheck  } launch variant (--quick: without
#   initcheck     30  compute-sanitizer --tool initcheck  } the one O(L^2) select case)
#   pytest       100  python -m pytest -m cuda, 8 processes (DLLM_REQUIRE_GPU=1: fail, never skip)
#   ctest         30  the native CUDA tests (csrc/tests/test_*_cuda.cu)
#   cpu_simd      25  the CPU denoise_step SIMD paths vs generic (AVX-512 runs only on a host that
#                     has it: the lent machines' CPUs may; the 2-core dev/CI VMs have AVX2 only)
#   bench_denoise_step_tp   60  tp = 2 denoise_step on one GPU: rank 0's shard work (the CUDA
#                               shard kernels + tp.py's glue, no collectives) vs the unsharded op,
#                               checked bit-equal; its NCCL table needs 2 GPUs (skipped here)
#   bench_denoise_step     120  LLaDA shapes vs the eager LLaDA step, the reference, torch.compile
#   bench_block_attention   75  vs gather + SDPA (every backend) and SDPA on gathered K/V
#   bench_generate          75  LLaDA-8B-shaped TinyLLaDA, runtime vs literal loops
# Each result is written as soon as its step ends, under $OUT (8 files, the most a device call
# returns): summary.txt (environment, plan, one line + log tail per step, final tables), build.log,
# tests.log (verify, pytest, ctest), sanitize.log, bench.log (the three benchmarks' output) and
# bench_denoise_step.json, bench_block_attention.json, bench_generate.json (rewritten after each
# case, so a benchmark cut off by the deadline keeps what it finished; bench_denoise_step_tp's
# table is in bench.log only, a ninth file would not come back). Commit them under
# benchmarks/results/<date>-<gpu>/.
#
# The device has torch (python3), nvcc and compute-sanitizer but no network: nothing is installed,
# only built. The tree is sent without .git: DLLM_GIT_COMMIT names the commit in the results.
# --dry-run (no GPU needed, < 60 s): checks the prerequisites (python, torch, the built package,
# every script the run calls and the exact arguments it passes them), prints the plan, runs the CPU
# parts (verify on a tiny subset, the sanitizer cases on the CPU kernels, pytest's selection of the
# CUDA tests), and skips the GPU parts.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=run
case "${1:-}" in
"" | all) mode=run ;;
--dry-run) mode=dry ;;
test | bench | e2e) mode=$1 ;;
*) echo "usage: gpu_session.sh [--dry-run | test | bench | e2e]" >&2; exit 2 ;;
esac

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ "$mode" = dry ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONUNBUFFERED=1
# the package imports from here when built in place
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# ---- the plan ------------------------------------------------------------------------------------
# name budget(s) what
PLAN=(
  "build 150 setup.py build_ext --inplace, sm_90a, MAX_JOBS=16 (+ ctest binaries in the background)"
  "verify 60 python -m dllm_kernels verify --device cuda"
  "memcheck 60 compute-sanitizer --tool memcheck: benchmarks/sanitize_cases.py"
  "racecheck 70 compute-sanitizer --tool racecheck: benchmarks/sanitize_cases.py --quick"
  "synccheck 40 compute-sanitizer --tool synccheck: benchmarks/sanitize_cases.py --quick"
  "initcheck 30 compute-sanitizer --tool initcheck: benchmarks/sanitize_cases.py --quick"
  "pytest 100 python -m pytest -m cuda python_tests -n 8 (DLLM_REQUIRE_GPU=1)"
  "ctest 30 ctest -R _cuda (native CUDA tests)"
  "cpu_simd 25 pytest test_denoise_step_simd.py: the host's AVX-512 denoise_step path, if any"
  "bench_denoise_step_tp 60 benchmarks/bench_denoise_step_tp.py --device cuda, tp=2 on one GPU"
  "bench_denoise_step 120 benchmarks/bench_denoise_step.py, LLaDA shapes"
  "bench_block_attention 75 benchmarks/bench_block_attention.py, LLaDA / Dream steps + prefill"
  "bench_generate 75 benchmarks/bench_generate.py, llada8b-shaped"
)
budget_of() {
  local p
  for p in "${PLAN[@]}"; do
    [ "${p%% *}" = "$1" ] && { set -- $p; echo "$2"; return; }
  done
  echo 60
}
print_plan() {
  local p total=0
  echo "plan (deadline ${SESSION}s after start; each step gets min(budget, time left)):"
  for p in "${PLAN[@]}"; do
    set -- $p
    local name=$1 b=$2; shift 2
    total=$((total + b))
    printf '  %-22s %4s s  %s\n' "$name" "$b" "$*"
  done
  echo "  (budgets add up to ${total} s: the later benchmarks get what the earlier steps leave)"
}

# The arguments the run passes each script (the dry run checks that they parse).
VERIFY_ARGS=(verify --device cuda)
SAN_ARGS=(benchmarks/sanitize_cases.py)  # all but memcheck add --quick
# -v: one line per test as it ends, so a run stopped by its limit still names its failures.
PYTEST_ARGS=(-m pytest -m cuda python_tests -v -ra -p no:cacheprovider --durations=10)
# default shapes (1x32x126464, 8x32x126464) and dtypes (bf16, fp32); the configs without top_p
BDTP_ARGS=(benchmarks/bench_denoise_step_tp.py --device cuda --reps 20 --rounds 5)
BDS_ARGS=(benchmarks/bench_denoise_step.py --device cuda
          --shapes 1x32x126464,64x32x126464,8x32x126464
          --dtypes bf16,fp32)
BBA_ARGS=(benchmarks/bench_block_attention.py --device cuda --no-flex
          --case "LLaDA step B=1 pre=2048" --case "LLaDA step B=8 pre=2048"
          --case "LLaDA step B=32 pre=8192"
          --case "Dream step B=8 pre=2048" --case "LLaDA prefill L=4096")
SIMD_ARGS=(-m pytest python_tests/test_denoise_step_simd.py -v -ra -p no:cacheprovider)
BGEN_ARGS=(benchmarks/bench_generate.py --device cuda --model llada8b-shaped)
SESSION=${DLLM_SESSION_SECONDS:-540}

# ---- dry run -------------------------------------------------------------------------------------
if [ "$mode" = dry ]; then
  t0=$SECONDS
  fails=0
  mkdir -p build
  ok() { echo "  ok    $*"; }
  bad() { echo "  FAIL  $*"; fails=$((fails + 1)); }
  echo "== gpu_session.sh --dry-run (python: $PY)"
  print_plan
  echo "== prerequisites"
  if bash -n "${BASH_SOURCE[0]}"; then ok "bash syntax of gpu_session.sh"
  else bad "bash syntax of gpu_session.sh"; fi
  for f in setup.py CMakeLists.txt benchmarks/sanitize_cases.py benchmarks/bench_denoise_step.py \
    benchmarks/bench_denoise_step_tp.py \
    benchmarks/bench_block_attention.py benchmarks/bench_generate.py dllm_kernels/__main__.py; do
    [ -f "$f" ] || { bad "missing $f"; continue; }
    case "$f" in
    *.py) "$PY" -m py_compile "$f" 2>&1 && ok "python syntax: $f" || bad "python syntax: $f" ;;
    *) ok "present: $f" ;; esac
  done
  for tool in timeout nice cmake ctest; do
    command -v "$tool" >/dev/null && ok "$tool on PATH" || bad "$tool not on PATH"
  done
  # The device has these; here they are only reported.
  for tool in nvidia-smi compute-sanitizer nvcc; do
    where=$(command -v "$tool" ||
      { [ -x "/usr/local/cuda/bin/$tool" ] && echo "/usr/local/cuda/bin/$tool"; } || true)
    echo "  info  $tool: ${where:-not here (the device machine has it)}"
  done
  # One python process (torch is imported once): the package with its native ops, every script
  # the run calls with the exact arguments it passes them (parsed, not run), then the first CPU
  # part: the sanitizer cases on the CPU kernels.
  if "$PY" - "${VERIFY_ARGS[@]}" --- "${SAN_ARGS[@]:1}" --quick --- "${BDTP_ARGS[@]:1}" \
    --- "${BDS_ARGS[@]:1}" \
    --- "${BBA_ARGS[@]:1}" --- "${BGEN_ARGS[@]:1}" <<'EOF'
import argparse, contextlib, importlib, importlib.util, sys, time
try:
    import torch
    import dllm_kernels as dk
    info = dk.backend_info()
except Exception as e:  # noqa: BLE001
    print(f"  FAIL  import torch / dllm_kernels: {type(e).__name__}: {e}")
    sys.exit(1)
if not info["native"]:
    print("  FAIL  dllm_kernels without its native ops (build first: bash tools/dev.sh setup): "
          f"{info['fallback_reason']}")
    sys.exit(1)
print(f"  ok    torch {torch.__version__} | dllm_kernels native, cuda {info['cuda']}, "
      f"archs {info['archs']}")
bad = 0


def load(name, src):
    if not src.endswith(".py"):
        return importlib.import_module(src)
    spec = importlib.util.spec_from_file_location(name.replace(".py", ""), src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


groups, cur = [], []
for a in sys.argv[1:]:
    if a == "---":
        groups.append(cur); cur = []
    else:
        cur.append(a)
groups.append(cur)
class Parsed(Exception):
    pass
orig = argparse.ArgumentParser.parse_args
def parse_then_stop(self, args=None, namespace=None):
    ns = orig(self, args, namespace)  # exits 2 on a bad or unknown argument
    raise Parsed(ns)
argparse.ArgumentParser.parse_args = parse_then_stop
scripts = [("python -m dllm_kernels", "dllm_kernels.__main__"),
           ("sanitize_cases.py", "benchmarks/sanitize_cases.py"),
           ("bench_denoise_step_tp.py", "benchmarks/bench_denoise_step_tp.py"),
           ("bench_denoise_step.py", "benchmarks/bench_denoise_step.py"),
           ("bench_block_attention.py", "benchmarks/bench_block_attention.py"),
           ("bench_generate.py", "benchmarks/bench_generate.py")]
for (name, src), args in zip(scripts, groups):
    mod = load(name, src)
    try:
        mod.main(args)
        print(f"  FAIL  {name} {' '.join(args)}: ran instead of parsing"); bad += 1
    except Parsed as parsed:
        print(f"  ok    arguments parse: {name} {' '.join(args)}")
        ns = parsed.args[0]
        if name == "bench_block_attention.py":  # each --case must pick a CUDA case
            for pat in ns.case or []:
                picked = [c.label for c in mod.cases(torch.device("cuda"), pat)]
                if not picked:
                    print(f"  FAIL  bench_block_attention.py --case {pat!r} matches no CUDA case")
                    bad += 1
                else:
                    print(f"  ok    --case {pat!r}: {', '.join(picked)}")
    except SystemExit as e:
        print(f"  FAIL  arguments do not parse: {name} {' '.join(args)} (exit {e.code})"); bad += 1
argparse.ArgumentParser.parse_args = orig

print("== CPU parts (the GPU parts are skipped: build for sm_90a, sanitizers, CUDA tests, "
      "benchmarks)")
t = time.perf_counter()
with open("build/dry-sanitize.log", "w") as log, contextlib.redirect_stdout(log):
    rc = load("sanitize_cases.py", "benchmarks/sanitize_cases.py").main(["--device", "cpu"])
text = open("build/dry-sanitize.log").read()
if rc == 0:
    last = text.strip().splitlines()[-1]
    print(f"  ok    sanitizer cases on the CPU kernels ({time.perf_counter() - t:.0f} s): {last}")
else:
    print(text)
    print("  FAIL  sanitizer cases on the CPU kernels"); bad += 1

sys.exit(1 if bad else 0)
EOF
  then :; else
    bad "the package, the sanitizer cases on the CPU or the arguments the run passes its scripts"
  fi
  t=$SECONDS
  if "$PY" -m dllm_kernels verify --device cpu --op commit_ --op num_transfer_tokens \
    --op select_transfer >build/dry-verify.log 2>&1; then
    ok "verify on cpu, 3 quick ops ($((SECONDS - t)) s): $(tail -n 1 build/dry-verify.log)"
  else cat build/dry-verify.log; bad "verify on cpu"; fi
  t=$SECONDS
  if "$PY" "${PYTEST_ARGS[@]:0:5}" --collect-only -q -p no:cacheprovider \
    >build/dry-pytest.log 2>&1; then
    n=$(grep -cE "::" build/dry-pytest.log || true)
    if [ "${n:-0}" -gt 0 ]; then
      ok "pytest -m cuda selects $n tests ($((SECONDS - t)) s; skipped here)"
    else cat build/dry-pytest.log; bad "pytest -m cuda selects no test"; fi
  else cat build/dry-pytest.log; bad "pytest -m cuda collection"; fi
  t=$SECONDS
  if "$PY" "${SIMD_ARGS[@]:0:3}" --collect-only -q -p no:cacheprovider \
    >build/dry-simd.log 2>&1; then
    n=$(grep -cE '::' build/dry-simd.log || true)
    ok "cpu_simd collects $n tests ($((SECONDS - t)) s; run on the device)"
  else cat build/dry-simd.log; bad "cpu_simd collection"; fi
  if [ -d build/cmake ] && grep -q "sampling_cuda" build/cmake/CTestTestfile.cmake 2>/dev/null; then
    names=$(grep -oE 'add_test\(\[=\[[a-z_]*_cuda' build/cmake/CTestTestfile.cmake |
      sed 's/.*\[//' | tr '\n' ' ')
    ok "ctest knows the CUDA tests: $names"
  else
    echo "  info  no CUDA ctest configuration in build/cmake here (CI's test command makes one)"
  fi
  echo "== dry run: $fails failure(s) in $((SECONDS - t0)) s"
  [ "$fails" -eq 0 ]
  exit
fi

# ---- on the device -------------------------------------------------------------------------------
OUT=${OUT:-build/gpu_session}
mkdir -p "$OUT" build
export MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
export DLLM_KERNELS_CUDA=1
export DLLM_REQUIRE_GPU=1  # pytest fails instead of skipping the CUDA tests
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no usable CUDA device: stopping before spending the session" >&2
  nvidia-smi >&2 || true
  exit 1
fi
if [ -z "${CUDACXX:-}" ]; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then CUDACXX=/usr/local/cuda/bin/nvcc
  else CUDACXX=$(command -v nvcc || true); fi
  export CUDACXX
fi
SANITIZER=$(command -v compute-sanitizer || true)
if [ -z "$SANITIZER" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
  SANITIZER=/usr/local/cuda/bin/compute-sanitizer
fi
START=$SECONDS
SUMMARY=$OUT/summary.txt
status=0
say() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LOG CMD...: runs CMD with timeout min(budget, time left), appending to $OUT/LOG,
# then writes one line and the log's tail to the summary. Returns the command's status.
step() {
  local name=$1 log=$2; shift 2
  local budget left limit t0 rc
  budget=${STEP_TIMEOUT:-300}
  if [ "$mode" = run ]; then
    budget=$(budget_of "$name")
    left=$((START + SESSION - SECONDS))
    if [ "$left" -lt 5 ]; then
      say "== $name: SKIPPED (deadline: ${left} s left)"
      status=1
      return 99
    fi
    limit=$((budget < left ? budget : left))
  else
    limit=$budget
  fi
  echo "==== $name: $* (limit ${limit} s)" >>"$OUT/$log"
  local first
  first=$(wc -l <"$OUT/$log")
  t0=$SECONDS
  timeout -k 10 "$limit" "$@" >>"$OUT/$log" 2>&1
  rc=$?
  local what="rc=$rc"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && what="TIMEOUT after ${limit} s"
  say "== $name: $what in $((SECONDS - t0)) s (budget ${budget} s, log $log," \
    "$((SECONDS - START)) s elapsed)"
  tail -n +"$first" "$OUT/$log" | tail -n 6 | sed 's/^/   /' | tee -a "$SUMMARY"
  [ $rc -eq 0 ] || status=1
  return $rc
}

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  echo "commit ${DLLM_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$PY" -c "import torch, sys
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0))"
  echo "nvcc: ${CUDACXX:-none} $("${CUDACXX:-nvcc}" --version 2>/dev/null | tail -1)"
  echo "compute-sanitizer: ${SANITIZER:-none}" \
    "$("${SANITIZER:-false}" --version 2>/dev/null | tail -1)"
  echo "cores: $(nproc), MAX_JOBS=$MAX_JOBS, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST, mode $mode"
} >"$SUMMARY" 2>&1
cat "$SUMMARY"
[ "$mode" = run ] && print_plan | tee -a "$SUMMARY"

# The slowest compile units of the last build, from ninja's log (ms start / end per output).
ninja_times() {
  local f
  f=$(ls -t build/temp*/.ninja_log 2>/dev/null | head -n 1)
  [ -n "$f" ] || return 0
  echo "slowest units (ninja log $f):"
  awk -F'\t' '!/^#/ {
      sub(/.*\/temp[^\/]*\//, "", $4); printf "%7.1f s  %s\n", ($2 - $1) / 1000, $4 }' "$f" |
    sort -rn | head -n 12
}

cuda_ops_built() {
  "$PY" -c "import dllm_kernels as d, sys; sys.exit(0 if d.backend_info()['cuda'] else 1)" \
    2>/dev/null
}

# The native CUDA tests, configured and built in the background at low priority.
ctest_bg() {
  nice -n 15 bash -c 'cmake -S . -B build/cmake-gpu -G Ninja -DDLLM_CUDA=ON -DDLLM_CUDA_ARCHS=90a &&
    cmake --build build/cmake-gpu -j 8' >build/cmake-gpu.log 2>&1
  echo $? >build/cmake-gpu.rc
}
# Waits (inside the ctest step's limit) for the background build, then runs the CUDA tests.
ctest_run() {
  while [ ! -f build/cmake-gpu.rc ]; do sleep 1; done
  if [ "$(cat build/cmake-gpu.rc)" != 0 ]; then
    tail -n 40 build/cmake-gpu.log
    echo "ctest build failed"
    return 1
  fi
  ctest --test-dir build/cmake-gpu -R _cuda --output-on-failure --no-tests=error
}
export -f ctest_run

if [ "$mode" = run ]; then
  rm -f build/cmake-gpu.rc
  ctest_bg &
  # In place: no pip, no editable-install metadata; PYTHONPATH above makes it importable.
  step build build.log "$PY" setup.py build_ext --inplace ||
    { say "build failed: nothing else can run"; tail -n 40 "$OUT/build.log"; exit 1; }
  ninja_times >>"$OUT/build.log"
  ninja_times | head -n 4 | sed 's/^/   /' | tee -a "$SUMMARY"
  step verify tests.log "$PY" -m dllm_kernels "${VERIFY_ARGS[@]}"
  if [ -n "$SANITIZER" ]; then
    export PYTORCH_NO_CUDA_MEMORY_CACHING=1  # one cudaMalloc per tensor: memcheck sees every end
    # API errors are not reported (torch's own probing calls would count); a failed launch of
    # ours still fails its case, as every launcher's error is checked and raised.
    san=("$SANITIZER" --error-exitcode 86 --target-processes all --print-limit 50
         --report-api-errors no)
    step memcheck sanitize.log "${san[@]}" --tool memcheck --leak-check no "$PY" "${SAN_ARGS[@]}"
    step racecheck sanitize.log "${san[@]}" --tool racecheck "$PY" "${SAN_ARGS[@]}" --quick
    step synccheck sanitize.log "${san[@]}" --tool synccheck "$PY" "${SAN_ARGS[@]}" --quick
    step initcheck sanitize.log "${san[@]}" --tool initcheck "$PY" "${SAN_ARGS[@]}" --quick
    unset PYTORCH_NO_CUDA_MEMORY_CACHING
  else
    say "== sanitizers: SKIPPED (no compute-sanitizer found)"; status=1
  fi
  # pytest-xdist (in the device image) spreads the tests over 8 processes sharing the GPU.
  xdist=()
  "$PY" -c "import xdist" 2>/dev/null && xdist=(-n 8)
  step pytest tests.log "$PY" "${PYTEST_ARGS[@]}" "${xdist[@]}"
  step ctest tests.log bash -c ctest_run
  step cpu_simd tests.log "$PY" "${SIMD_ARGS[@]}"
  step bench_denoise_step_tp bench.log "$PY" "${BDTP_ARGS[@]}"
  step bench_denoise_step bench.log "$PY" "${BDS_ARGS[@]}" --json "$OUT/bench_denoise_step.json"
  step bench_block_attention bench.log "$PY" "${BBA_ARGS[@]}" \
    --json "$OUT/bench_block_attention.json"
  step bench_generate bench.log "$PY" "${BGEN_ARGS[@]}" --json "$OUT/bench_generate.json"
else
  # The old modes, one part per call, each step limited to STEP_TIMEOUT (default 300) s.
  if [ "$mode" = test ] || ! cuda_ops_built; then
    step build build.log bash -c "'$PY' -m pip install --no-build-isolation --no-deps -v -e . ||
      { echo '== pip install -e failed; building in place';
        '$PY' setup.py build_ext --inplace; }" ||
      { tail -40 "$OUT/build.log"; exit 1; }
  fi
  if [ "$mode" = test ]; then
    step ctest ctest.log bash -c 'cmake -S . -B build/cmake-gpu -G Ninja -DDLLM_CUDA=ON \
        -DDLLM_CUDA_ARCHS=90a && cmake --build build/cmake-gpu &&
      ctest --test-dir build/cmake-gpu --output-on-failure --no-tests=error'
    step pytest pytest.log "$PY" -m pytest python_tests -ra -q
    step verify verify.log "$PY" -m dllm_kernels verify
  fi
  if [ "$mode" = bench ]; then
    # The registry bench skips torch.compile to stay inside the command's time; the
    # torch.compile comparisons are in bench_denoise_step.py.
    step bench bench.log "$PY" -m dllm_kernels bench --device cuda --no-compile \
      --json "$OUT/bench.json"
    step bench_denoise_step bench_denoise_step.log "$PY" benchmarks/bench_denoise_step.py \
      --device cuda --json "$OUT/bench_denoise_step.json"
  fi
  if [ "$mode" = e2e ]; then
    step bench_block_attention bench_block_attention.log "$PY" benchmarks/bench_block_attention.py \
      --device cuda --json "$OUT/bench_block_attention.json"
    step bench_generate bench_generate.log "$PY" benchmarks/bench_generate.py --device cuda \
      --json "$OUT/bench_generate.json"
  fi
fi

# section LOG NAME: the lines a step wrote to LOG (from its "==== NAME:" line to the next).
section() { awk -v h="==== $2:" 'index($0, h) == 1 { on = 1; next } /^==== / { on = 0 } on' "$1"; }
{
  echo "== tables ($((SECONDS - START)) s elapsed)"
  for name in bench bench_denoise_step_tp bench_denoise_step bench_block_attention \
    bench_generate; do
    for log in "$OUT/bench.log" "$OUT/$name.log"; do
      [ -f "$log" ] && grep -q "^==== $name:" "$log" || continue
      echo "-- $name"
      section "$log" "$name" | grep -v "^W[0-9]" | tail -n 30
      break
    done
  done
  grep -hE "^verify:|^sanitize_cases:|ERROR SUMMARY|passed|failed" "$OUT"/tests.log \
    "$OUT"/sanitize.log 2>/dev/null | tail -n 20
  echo "== gpu_session: status $status, $((SECONDS - START)) s"
} | tee -a "$SUMMARY"
exit $status
