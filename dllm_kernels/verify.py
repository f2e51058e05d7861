"""`python -m dllm_kernels verify`: every registered op against its reference, on every device."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import _native, registry


def available_devices() -> list[torch.device]:
    devs = [torch.device("cpu")]
    if torch.cuda.is_available():
        devs.append(torch.device("cuda", torch.cuda.current_device()))
    return devs


def native_on(device: torch.device) -> tuple[bool, str]:
    """Whether the compiled kernels serve `device`, and why not."""
    if not _native.NATIVE:
        return False, f"native ops not loaded: {_native.FALLBACK_REASON}"
    if device.type == "cuda" and not _native.NATIVE_CUDA:
        return False, "dllm_kernels._C was built without CUDA kernels"
    return True, ""


@dataclass
class VerifyRow:
    op: str
    device: str
    case: str
    seed: int
    ok: bool
    max_err: float
    note: str = ""


def verify_case(spec: registry.OpSpec, case: registry.Case, device: torch.device, seed: int) -> VerifyRow:
    ok_native, why = native_on(device)
    if not ok_native:
        return VerifyRow(spec.name, str(device), case.label, seed, False, float("nan"), why)
    gen = torch.Generator().manual_seed(seed)
    inputs = spec.make_inputs(case.params, device, gen)
    got_in, want_in = registry.clone_inputs(inputs), registry.clone_inputs(inputs)
    got = spec.outputs(spec.call(spec.op, got_in), got_in)
    want = spec.outputs(spec.call(spec.reference, want_in), want_in)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ok, err = registry.compare(spec, got, want)
    return VerifyRow(spec.name, str(device), case.label, seed, ok, err)


def run_verify(specs, devices, seed: int | None = None, on_row=None,
               full: bool = True) -> list[VerifyRow]:
    """Every case of every spec on every device (full=False: the main job's cases,
    OpSpec.main_cases); on_row(row) after each (e.g. to print it at once, so that a run stopped
    by a time limit shows what it checked)."""
    rows = []
    for spec in specs:
        for device in devices:
            for case in spec.cases_for(device, full):
                s = seed if seed is not None else int.from_bytes(os.urandom(4), "little")
                rows.append(verify_case(spec, case, device, s))
                if on_row is not None:
                    on_row(rows[-1])
    return rows


def format_header() -> str:
    head = f"{'op':<22} {'device':<8} {'case':<30} {'seed':>10}  {'result':<6} {'max err':>8}  note"
    return head + "\n" + "-" * len(head)


def format_row(r: VerifyRow) -> str:
    err = "-" if r.max_err != r.max_err else f"{r.max_err:.3g}"
    return f"{r.op:<22} {r.device:<8} {r.case:<30} {r.seed:>10}  {'PASS' if r.ok else 'FAIL':<6} {err:>8}  {r.note}"


def format_rows(rows: list[VerifyRow]) -> str:
    return "\n".join([format_header()] + [format_row(r) for r in rows])
