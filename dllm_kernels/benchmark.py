"""Timing, peak measurement and the `python -m dllm_kernels bench` driver.

Method: warm up, then time each call (CUDA events on GPU, perf_counter on CPU) and report the
median. Calls rotate over up to 64 input sets so that together they exceed twice the last-level
cache (L2 on GPU): cases of more than ~1/32 of the cache are then timed from memory; smaller ones
stay cache-resident, as they are in real use. Peaks are measured in the same run: memory
bandwidth by a large device copy (bytes read + written), compute by a large matmul (bf16 on GPU,
fp32 on CPU). Every op is also timed as its reference and, unless disabled, as torch.compile of
the reference, so each ratio comes from one process on one machine.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from . import _native, registry
from .verify import native_on


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_call(fn: Callable[[int], Any], i: int, device: torch.device) -> float:
    """Seconds of one fn(i): CUDA events on a GPU, the host clock on a CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(i)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn(i)
    return time.perf_counter() - t0


def time_fn(fn: Callable[[int], Any], device: torch.device, warmup: int = 5, reps: int = 50,
            max_seconds: float = 2.0) -> float:
    """Median seconds of fn(i) over `reps` calls (fewer if they exceed max_seconds)."""
    return time_paired([fn], device, warmup, reps, max_seconds)[0]


def time_paired(fns: list[Callable[[int], Any]], device: torch.device, warmup: int = 5,
                reps: int = 50, max_seconds: float = 2.0) -> list[float]:
    """Median seconds of each fn, the functions called in turn for `reps` rounds (fewer past
    max_seconds): a drift in the machine's speed (a shared host, frequency changes) then hits
    every function alike, so ratios of the medians compare like with like. Every call gets the
    next index (round r calls fns[k](r * len(fns) + k)): a function that rotates over input sets
    by its index never reads the set the previous call just brought into the cache."""
    m = len(fns)
    for i in range(warmup):
        for k, fn in enumerate(fns):
            fn(i * m + k)
    _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    deadline = time.perf_counter() + max_seconds
    for i in range(reps):
        for k, (fn, ts) in enumerate(zip(fns, times)):
            ts.append(_time_call(fn, i * m + k, device))
        if i >= 4 and time.perf_counter() > deadline:
            break
    return [statistics.median(ts) for ts in times]


def cache_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20))
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            text = f.read().strip()
        return int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
    except (OSError, ValueError):
        return 32 << 20


def peak_bandwidth(device: torch.device) -> float:
    """Bytes/s of a large copy (read + write counted), the practical memory roof."""
    n = (1 << 30) if device.type == "cuda" else (256 << 20)
    src = torch.empty(n, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    t = time_fn(lambda i: dst.copy_(src), device, warmup=2, reps=10, max_seconds=5.0)
    return 2 * n / t


def peak_flops(device: torch.device, dtype: torch.dtype | None = None) -> float:
    """FLOP/s of a large matmul in `dtype` (default: bf16 on GPU, tensor cores; fp32 on CPU; bf16
    on CPU runs on AMX tiles where the CPU has them)."""
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 8192 if device.type == "cuda" else (1024 if dtype == torch.float32 else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_fn(lambda i: a @ b, device, warmup=2, reps=10, max_seconds=5.0)
    return 2 * n**3 / t


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def git_commit() -> str:
    """The checkout's HEAD, else $DLLM_GIT_COMMIT (a tree copied without .git), else unknown."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("DLLM_GIT_COMMIT", "unknown")


def header(devices: list[torch.device]) -> dict[str, Any]:
    build = _native.BUILD_INFO or {}
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "devices": {str(d): device_name(d) for d in devices},
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "native": _native.NATIVE,
        "native_cuda": _native.NATIVE_CUDA,
        "build_commit": build.get("git_commit"),
        "build_archs": build.get("archs"),
        "commit": git_commit(),
        "python": platform.python_version(),
    }


@dataclass
class BenchRow:
    op: str
    device: str
    case: str
    native_s: float | None
    reference_s: float
    compiled_s: float | None
    bytes: int
    flops: int
    gbps: float | None
    tflops: float | None
    pct_peak: float | None
    speedup_vs_ref: float | None
    speedup_vs_compiled: float | None
    note: str = ""


def _input_sets(spec, case, device, gen) -> list[registry.Inputs]:
    first = spec.make_inputs(case.params, device, gen)
    size = sum(v.numel() * v.element_size() for v in first.values() if isinstance(v, torch.Tensor))
    budget = (2 << 30) if device.type == "cuda" else (512 << 20)
    n = max(1, min(64, budget // max(size, 1), math.ceil(2 * cache_bytes(device) / max(size, 1))))
    return [first] + [spec.make_inputs(case.params, device, gen) for _ in range(n - 1)]


def measure_peaks(device: torch.device, flops: bool = True) -> dict:
    """The roofs of a device: copy bandwidth and (if asked) the matmul peak; on a CPU with AMX
    also the bf16 matmul peak (AMX tiles), the roof of bf16 cases there."""
    peaks = {"bandwidth": peak_bandwidth(device), "flops": peak_flops(device) if flops else None}
    # Only where bf16 runs on AMX: elsewhere the bf16 cases run on the fp32 FMA kernel (fp32 is
    # their roof), and torch's bf16 matmul without AMX is so slow that one 2048^3 call takes
    # minutes on 2 cores.
    if flops and device.type == "cpu" and _native.backend_info()["cpu_features"].get("amx_bf16"):
        peaks["flops_bf16"] = peak_flops(device, torch.bfloat16)
    return peaks


def flops_peak(peaks: dict, dtype: torch.dtype | None, device: torch.device) -> float:
    """The compute roof of a case in `dtype`: on CPU the bf16 peak for bf16 (fp32 / fp16 run on
    FMA), on GPU the bf16 tensor-core peak."""
    if device.type == "cpu" and dtype == torch.bfloat16 and peaks.get("flops_bf16"):
        return peaks["flops_bf16"]
    return peaks["flops"]


def _first_float_dtype(inputs: dict) -> torch.dtype | None:
    return next((v.dtype for v in inputs.values()
                 if isinstance(v, torch.Tensor) and v.is_floating_point()), None)


def bench_case(spec: registry.OpSpec, case: registry.Case, device: torch.device, peaks: dict,
               compile_ref: bool = True, reps: int = 50) -> BenchRow:
    gen = torch.Generator().manual_seed(1234)
    sets = _input_sets(spec, case, device, gen)
    # In-place ops rerun on the same inputs: every registered mutating op is idempotent.
    run = lambda fn: (lambda i: spec.call(fn, sets[i % len(sets)]))  # noqa: E731
    note = []
    ok, why = native_on(device)
    native_s = time_fn(run(spec.op), device, reps=reps) if ok else None
    if not ok:
        note.append(why)
    reference_s = time_fn(run(spec.reference), device, reps=reps)
    compiled_s = None
    if compile_ref:
        try:
            torch._dynamo.reset()
            compiled = torch.compile(spec.reference, dynamic=False)
            compiled_s = time_fn(run(compiled), device, warmup=3, reps=reps)
        except Exception as e:  # report, don't hide: the column says why it is missing
            note.append(f"torch.compile failed: {type(e).__name__}")
    nbytes = spec.bytes_moved(sets[0])
    nflops = spec.flops(sets[0]) if spec.flops else 0
    t = native_s
    gbps = nbytes / t / 1e9 if t else None
    tflops = nflops / t / 1e12 if t and nflops else None
    fpeak = flops_peak(peaks, _first_float_dtype(sets[0]), device) if nflops else None
    if t and nflops and nflops / fpeak > nbytes / peaks["bandwidth"]:
        pct = 100 * nflops / t / fpeak
    elif t:
        pct = 100 * nbytes / t / peaks["bandwidth"]
    else:
        pct = None
    return BenchRow(spec.name, str(device), case.label, native_s, reference_s, compiled_s, nbytes,
                    nflops, gbps, tflops, pct,
                    reference_s / t if t else None,
                    compiled_s / t if t and compiled_s else None, "; ".join(note))


def run_bench(specs, devices, compile_ref: bool = True, reps: int = 50, log=print,
              full: bool = True) -> tuple[dict, list[BenchRow]]:
    """Every case of every spec on every device (full=False: OpSpec.main_cases), each logged as a
    table row as soon as it is measured."""
    head = header(devices)
    need_flops = any(spec.flops is not None for spec in specs)
    head["peaks"] = {str(d): measure_peaks(d, need_flops) for d in devices}
    log(format_header(head))
    log(TABLE_HEAD)
    rows = []
    for spec in specs:
        for d in devices:
            for case in spec.cases_for(d, full):
                rows.append(bench_case(spec, case, d, head["peaks"][str(d)], compile_ref, reps))
                log(format_row(rows[-1]))
    return head, rows


def write_json(path: str, data: Any) -> None:
    """Writes data as JSON to path through a temporary file and a rename: a process killed while
    writing (a benchmark stopped by a time limit) leaves the previous complete file, never half of
    one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)


def format_time(s: float | None) -> str:
    """A duration in seconds for a table: "12.3 us" below 1 ms, else "4.56 ms"; None -> "-"."""
    if s is None:
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def _fmt_x(r: float | None) -> str:
    return "-" if r is None else f"{r:.1f}x"


TABLE_HEAD = (f"{'op':<20} {'device':<7} {'case':<30} {'native':>10} {'GB/s':>8} {'%peak':>6} "
              f"{'reference':>10} {'compiled':>10} {'vs ref':>7} {'vs comp':>7}  note")


def format_row(r: BenchRow) -> str:
    gbps = "-" if r.gbps is None else f"{r.gbps:.2f}"
    pct = "-" if r.pct_peak is None else f"{r.pct_peak:.1f}"
    return (f"{r.op:<20} {r.device:<7} {r.case:<30} {format_time(r.native_s):>10} {gbps:>8} {pct:>6} "
            f"{format_time(r.reference_s):>10} {format_time(r.compiled_s):>10} {_fmt_x(r.speedup_vs_ref):>7} "
            f"{_fmt_x(r.speedup_vs_compiled):>7}  {r.note}")


def format_header(head: dict) -> str:
    lines = [f"dllm_kernels bench  {head['date']}  commit {head['commit']}",
             f"torch {head['torch']}  CUDA {head['cuda']}  native={head['native']} native_cuda={head['native_cuda']}  "
             f"built for archs {head['build_archs']} at {head['build_commit']}"]
    for d, name in head["devices"].items():
        p = head.get("peaks", {}).get(d, {})
        bw = p.get("bandwidth")
        line = f"  {d}: {name}; measured copy bandwidth {bw / 1e9:.1f} GB/s" if bw else f"  {d}: {name}"
        if p.get("flops"):
            line += (f"; matmul peak {p['flops'] / 1e12:.2f} TFLOP/s "
                     f"({'bf16' if d.startswith('cuda') else 'fp32'})")
        if p.get("flops_bf16"):
            line += f", {p['flops_bf16'] / 1e12:.2f} bf16"
        lines.append(line)
    return "\n".join(lines)


def to_json(head: dict, rows: list[BenchRow]) -> dict:
    return {"header": head, "rows": [asdict(r) for r in rows]}
