#!/usr/bin/env bash
# tools/lint.sh — the style checks CI runs: ruff (lint + format, pyproject.toml) on the Python and
# clang-format (.clang-format) on csrc/; lines <= 100 characters everywhere.
#
#   bash tools/lint.sh          check; exits non-zero and names the files when anything is off
#   bash tools/lint.sh --fix    apply ruff's fixes, ruff format and clang-format in place
#
# Needs ruff and clang-format: `DLLM_EXTRAS=lint bash tools/dev.sh setup` (or
# `pip install .[lint]`) installs the pinned versions into the project's environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=${DLLM_VENV:-.venv}
bin=$venv/bin
[ "$venv" = none ] && bin=$(dirname "$(command -v python)")
ruff=$bin/ruff
clang_format=$bin/clang-format
for t in "$ruff" "$clang_format"; do
  if [ ! -x "$t" ]; then
    echo "lint: $t not found; DLLM_EXTRAS=lint bash tools/dev.sh setup" >&2
    exit 2
  fi
done
mapfile -t cfiles < <(git ls-files 'csrc/*.h' 'csrc/*.cuh' 'csrc/*.cpp' 'csrc/*.cu')
if [ "${1:-}" = --fix ]; then
  "$ruff" check --fix .
  "$ruff" format .
  "$clang_format" -i "${cfiles[@]}"
  exit 0
fi
status=0
"$ruff" check . || status=1
"$ruff" format --check . || status=1
"$clang_format" --dry-run --Werror "${cfiles[@]}" || status=1
long=$("$bin/python" -c '
import sys
for p in sys.argv[1:]:
    for n, line in enumerate(open(p, encoding="utf-8"), 1):
        if len(line.rstrip("\n")) > 100:
            print(f"{p}:{n}")
' "${cfiles[@]}")
[ -z "$long" ] || { echo "lines over 100 characters:"; echo "$long"; status=1; }
[ $status = 0 ] && echo "lint: ruff and clang-format clean (${#cfiles[@]} C++/CUDA files)"
exit $status
