"""Rows a quarantine source rejected (or dropped by a rule), kept so nothing is silently lost.

`{QP_LAKE_DIR}/quarantine/rejects/{asset}.parquet`, replaced atomically on each run of the source asset,
in transforms.quarantine_sources.REJECT_SCHEMA: row_number, position, reason, raw (the values as text).
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl


def rejects_path(lake_root: str | Path, asset: str) -> Path:
    return Path(lake_root) / "quarantine" / "rejects" / f"{asset}.parquet"


def write_rejects(lake_root: str | Path, asset: str, rejects: pl.DataFrame) -> Path:
    path = rejects_path(lake_root, asset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rejects.write_parquet(tmp)
    tmp.replace(path)
    return path


def read_rejects(lake_root: str | Path, asset: str) -> pl.DataFrame:
    return pl.read_parquet(rejects_path(lake_root, asset))
