"""Compile time of each translation unit of the extension, one unit at a time.

    python tools/unit_times.py [--log build/dllm-build.log] [--only SUBSTRING ...] [--src PATH]

Reads the compile commands that ninja printed into the build log (tools/dev.sh writes it with
`pip install -v`), reruns each with its object sent to a scratch folder, and prints the seconds
took (CPU time of the compiler processes, user + sys, and wall time), slowest first. Units run one
after another, so each is one core's time (the build on N cores takes about as long as its
slowest unit once there are N units or more); on a shared machine the CPU time is the steadier
figure, as the wall time grows with the load. --src
replaces the source of the command of the same file name (e.g. an older copy of a unit).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time


def commands(log: str) -> list[tuple[str, list[str]]]:
    """(source, argv) of every compile command in the log (the last build's, deduplicated)."""
    found: dict[str, list[str]] = {}
    for line in open(log, errors="replace"):
        m = re.match(r"\s*\[\d+/\d+\] (.*\s-c\s.*)$", line)
        if not m:
            continue
        argv = shlex.split(m.group(1))
        srcs = [a for a in argv if a.endswith((".cu", ".cpp"))]
        if srcs:
            found[srcs[-1]] = argv
    return list(found.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--log", default="build/dllm-build.log")
    ap.add_argument("--only", action="append", help="units whose path contains this (repeatable)")
    ap.add_argument(
        "--src",
        action="append",
        default=[],
        help="compile this file in place of the unit of the same name",
    )
    a = ap.parse_args(argv)
    if not os.path.exists(a.log):
        sys.exit(f"no build log at {a.log}: build first (bash tools/dev.sh setup)")
    cmds = commands(a.log)
    if a.only:
        cmds = [(s, c) for s, c in cmds if any(o in s for o in a.only)]
    if not cmds:
        sys.exit("no compile command matched")
    subst = {os.path.basename(p): os.path.abspath(p) for p in a.src}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for src, argv in cmds:
            out = os.path.join(tmp, "unit.o")
            argv = list(argv)
            for i, arg in enumerate(argv):
                if i and argv[i - 1] == "-o":
                    argv[i] = out
                elif i and argv[i - 1] in ("-MF",):
                    argv[i] = out + ".d"
                elif arg == src and os.path.basename(src) in subst:
                    argv[i] = subst[os.path.basename(src)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            r = subprocess.run(argv, capture_output=True, text=True)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            shown = subst.get(os.path.basename(src), src)
            print(
                f"{cpu:7.1f} s cpu {wall:7.1f} s wall  {os.path.relpath(shown)}"
                + ("" if r.returncode == 0 else "  FAILED"),
                flush=True,
            )
            if r.returncode != 0:
                print(r.stderr[-2000:], file=sys.stderr)
            rows.append((cpu, wall, shown, r.returncode))
    print(f"slowest first (load average now {os.getloadavg()[0]:.2f}):")
    for cpu, wall, src, rc in sorted(rows, reverse=True):
        print(
            f"{cpu:7.1f} s cpu {wall:7.1f} s wall  {os.path.relpath(src)}"
            + ("" if rc == 0 else "  FAILED")
        )
    return 0 if all(rc == 0 for *_, rc in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
