"""The project's default DAGSTER_HOME: a git-ignored folder holding the instance's dagster.yaml."""

from __future__ import annotations

import os
from pathlib import Path

# Warehouse writers share the pool `duckdb_warehouse`, ingestion the pool `notification_ingest`: one at a
# time each (DuckDB allows a single writer per file; bronze commits are serialized per topic anyway).
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def ensure_dagster_home() -> Path:
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home
