"""The DuckDB warehouse of gold tables. DuckDB allows one writer per file: writers share the Dagster pool
`duckdb_warehouse` (limit 1, in $DAGSTER_HOME/dagster.yaml), and a connection waits out a lock held by
another process (a reader such as `qp export`) instead of failing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(dg.ConfigurableResource):
    path: str
    lock_timeout_seconds: float = 120.0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = open_warehouse(self.path, read_only=read_only, timeout=self.lock_timeout_seconds)
        try:
            yield con
        finally:
            con.close()


def open_warehouse(path: str, read_only: bool = False, timeout: float = 120.0) -> duckdb.DuckDBPyConnection:
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    elif not Path(path).exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet: materialize the assets first")
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
