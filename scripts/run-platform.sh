#!/usr/bin/env bash
# Sets up and runs the whole platform end to end on its embedded defaults (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/qp demo "$@"
