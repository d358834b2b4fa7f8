"""Writing an export table in the formats of design.md (`qp export ... --format --output`).

CSV: header row, `.` as the decimal separator, ISO dates. JSON: one object per line. xlsx: split into
sheets of at most Excel's 1,048,576 rows (header included). `output=None` writes to standard output.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import BinaryIO

import polars as pl

from quarantine_platform.errors import UserError

FORMATS = ("csv", "xlsx", "parquet", "json")
EXCEL_MAX_ROWS = 1_048_576


def format_for(fmt: str | None, output: str | None) -> str:
    """The format asked for, else the output file's extension, else csv."""
    if fmt is None and output:
        suffix = Path(output).suffix.lower().lstrip(".")
        fmt = {"jsonl": "json", "ndjson": "json"}.get(suffix, suffix) if suffix else None
    fmt = fmt or "csv"
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def write_table(frame: pl.DataFrame | pl.LazyFrame, fmt: str, output: str | None) -> int:
    """Write `frame` as `fmt` to the file `output` (or standard output); returns the rows written."""
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    if output is None:
        buffer = io.BytesIO()
        _write(df, fmt, buffer)
        stdout: BinaryIO = sys.stdout.buffer
        stdout.write(buffer.getvalue())
        stdout.flush()
        return df.height
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("wb") as handle:
        _write(df, fmt, handle)
    tmp.replace(path)  # a reader never sees a half-written export
    return df.height


def _write(df: pl.DataFrame, fmt: str, handle: BinaryIO) -> None:
    if fmt == "csv":
        df.write_csv(handle, date_format="%Y-%m-%d", datetime_format="%Y-%m-%dT%H:%M:%S")
    elif fmt == "json":
        df.write_ndjson(handle)
    elif fmt == "parquet":
        df.write_parquet(handle)
    else:
        write_xlsx(df, handle)


def write_xlsx(df: pl.DataFrame, handle: BinaryIO) -> None:
    import xlsxwriter

    per_sheet = EXCEL_MAX_ROWS - 1
    with xlsxwriter.Workbook(handle) as workbook:
        for number, start in enumerate(range(0, max(df.height, 1), per_sheet), start=1):
            df.slice(start, per_sheet).write_excel(
                workbook, worksheet=f"data{number}" if number > 1 else "data"
            )
