#!/usr/bin/env bash
# Sets up and runs the test suite (see README). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/setup-venv.sh
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest "$@"
