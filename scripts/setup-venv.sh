#!/usr/bin/env bash
# Creates .venv with the locked dependencies and the project (editable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3.11 || command -v python3)
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "quarantine_platform needs Python 3.11 ($PY is $("$PY" --version))" >&2; exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! cmp -s requirements.lock .venv/.installed-lock 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
  cp requirements.lock .venv/.installed-lock
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null \
  || .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
