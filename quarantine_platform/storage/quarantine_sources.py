"""Standardized quarantine sources in the lake: what each source asset wrote on its last good run.

Each source asset (crm_sends, marketing_sends, ...) writes its standardized rows to
`{QP_LAKE_DIR}/quarantine/sources/{asset}.parquet` atomically (temporary file, then rename), so a failed
read of a source leaves the last good snapshot in place and `quarantine_global` never reads half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

# design.md, "Sources, each a Dagster asset standardized to one schema"
STANDARD_SCHEMA = pl.Schema(
    {
        "id_cliente": pl.Int64,
        "canal": pl.String,
        "email": pl.String,
        "telefone": pl.String,
        "assunto": pl.String,
        "data_envio": pl.Date,
        "data_exclus": pl.Date,  # fraud only: the day the row was removed at the source
        "data_base": pl.Date,  # CRM only: the day of the workbook snapshot
    }
)


def source_path(lake_root: str | Path, asset: str) -> Path:
    return Path(lake_root) / "quarantine" / "sources" / f"{asset}.parquet"


def write_source(lake_root: str | Path, asset: str, rows: pl.DataFrame) -> Path:
    """Replace the asset's snapshot with `rows` (cast to STANDARD_SCHEMA, missing columns null)."""
    frame = rows.select(
        [
            (pl.col(name) if name in rows.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in STANDARD_SCHEMA.items()
        ]
    )
    path = source_path(lake_root, asset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def read_source(lake_root: str | Path, asset: str) -> pl.LazyFrame:
    path = source_path(lake_root, asset)
    if not path.exists():
        raise FileNotFoundError(f"source {asset} has no snapshot at {path}: materialize {asset} first")
    return pl.scan_parquet(path, schema=STANDARD_SCHEMA)
