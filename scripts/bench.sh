#!/usr/bin/env bash
# Runs one benchmark beside its peers: bash scripts/bench.sh NAME [options]
#   NAME: notification_stream | billing_export | invoices_chatbot | quarantine   (see benchmarks/README.md)
# Sets up .venv like the other commands, adds the peers (pandas, PySpark) from benchmarks/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bash scripts/bench.sh NAME [options]  (NAME: notification_stream billing_export invoices_chatbot quarantine)}
shift
[ -f "benchmarks/$name.py" ] || { echo "no benchmark named $name in benchmarks/" >&2; exit 2; }
bash scripts/setup-venv.sh
if ! cmp -s benchmarks/requirements.txt .venv/.installed-bench 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
  cp benchmarks/requirements.txt .venv/.installed-bench
fi
if [ "$name" = notification_stream ]; then
  # The peer (quixstreams) needs an older confluent-kafka than the platform: its own environment.
  [ -x .venv-peer/bin/python ] || "$(command -v python3.11 || command -v python3)" -m venv .venv-peer
  if ! cmp -s benchmarks/requirements-peer-stream.txt .venv-peer/.installed 2>/dev/null; then
    .venv-peer/bin/python -m pip install -q --disable-pip-version-check -r benchmarks/requirements-peer-stream.txt
    cp benchmarks/requirements-peer-stream.txt .venv-peer/.installed
  fi
  export QP_BENCH_PEER_PYTHON="$PWD/.venv-peer/bin/python"
fi
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python "benchmarks/$name.py" "$@"
