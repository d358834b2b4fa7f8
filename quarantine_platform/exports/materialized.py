"""Reading what Dagster materialized for an export: exports never recompute, they say what to run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import duckdb

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.resources.warehouse import open_warehouse

T = TypeVar("T")


def read_partition(asset: str, key: str, read: Callable[[duckdb.DuckDBPyConnection], T | None]) -> T:
    """`read(con)` on the warehouse opened read-only; no warehouse or a None result -> a UserError naming
    the dagster command that materializes the partition."""
    not_materialized = UserError(
        f"{asset} for {key} has not been materialized; run: dagster asset materialize "
        f"-m quarantine_platform.definitions --select {asset} --partition {key}"
    )
    try:
        con = open_warehouse(settings.get("QP_WAREHOUSE"), read_only=True)
    except FileNotFoundError:
        raise not_materialized from None
    try:
        result = read(con)
    finally:
        con.close()
    if result is None:
        raise not_materialized
    return result
