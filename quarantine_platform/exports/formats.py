"""Writing an export table in the formats of design.md (`qp export ... --format --output`).

CSV: header row, `.` as the decimal separator, ISO dates. JSON: one object per line. xlsx: split into
sheets of at most Excel's 1,048,576 rows (header included). `output=None` writes to standard output.

A DataFrame is written at once. A LazyFrame is streamed, so an export larger than memory takes bounded
memory: to a file with Polars' streaming sinks (sink_csv / sink_parquet / sink_ndjson), to standard output
batch by batch, to xlsx row batch by row batch through xlsxwriter's constant_memory mode. Files are written
to a temporary name and renamed, so a reader never sees half an export.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from quarantine_platform.errors import UserError

FORMATS = ("csv", "xlsx", "parquet", "json")
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CELL_CHARS = 32_767
BATCH_ROWS = 100_000
_CSV_OPTIONS: dict[str, Any] = {"date_format": "%Y-%m-%d", "datetime_format": "%Y-%m-%dT%H:%M:%S"}

# Called with the number of rows just written (like tqdm's `update`).
Progress = Callable[[int], object]


def format_for(fmt: str | None, output: str | None) -> str:
    """The format asked for, else the output file's extension, else csv."""
    if fmt is None and output:
        suffix = Path(output).suffix.lower().lstrip(".")
        fmt = {"jsonl": "json", "ndjson": "json"}.get(suffix, suffix) if suffix else None
    fmt = fmt or "csv"
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def write_table(
    frame: pl.DataFrame | pl.LazyFrame, fmt: str, output: str | None, progress: Progress | None = None
) -> int:
    """Write `frame` as `fmt` to the file `output` (or standard output); returns the rows written.
    A LazyFrame is streamed (bounded memory); `progress` is called as rows are written."""
    if isinstance(frame, pl.LazyFrame):
        return write_stream(frame, fmt, output, progress)
    if output is None:
        buffer = io.BytesIO()
        _write(frame, fmt, buffer)
        stdout: BinaryIO = sys.stdout.buffer
        stdout.write(buffer.getvalue())
        stdout.flush()
    else:
        with _atomic(output) as tmp, open(tmp, "wb") as handle:
            _write(frame, fmt, handle)
    if progress is not None:
        progress(frame.height)
    return frame.height


def _write(df: pl.DataFrame, fmt: str, handle: BinaryIO) -> None:
    if fmt == "csv":
        df.write_csv(handle, **_CSV_OPTIONS)
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
            df.slice(start, per_sheet).write_excel(workbook, worksheet=_sheet_name(number))


def _sheet_name(number: int) -> str:
    return f"data{number}" if number > 1 else "data"


# --- streaming ----------------------------------------------------------------------------------------------


class _Counter:
    """Counts the rows that pass through a streaming plan (its batches may run on several threads)."""

    def __init__(self, progress: Progress | None) -> None:
        self.rows = 0
        self._progress = progress
        self._lock = threading.Lock()

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        with self._lock:
            self.rows += batch.height
            if self._progress is not None and batch.height:
                self._progress(batch.height)
        return batch


def write_stream(lf: pl.LazyFrame, fmt: str, output: str | None, progress: Progress | None = None) -> int:
    """Stream `lf` to `output` (a file, or standard output when None) as `fmt`; returns the rows written."""
    if output is None:
        return _stream_to(lf, fmt, sys.stdout.buffer, progress)
    with _atomic(output) as tmp:
        if fmt == "xlsx":
            return _stream_xlsx(_batches(lf), lf.collect_schema(), tmp, progress)
        counter = _Counter(progress)
        counted = lf.map_batches(counter, schema=lf.collect_schema(), streamable=True)
        if fmt == "csv":
            counted.sink_csv(tmp, check_extension=False, **_CSV_OPTIONS)
        elif fmt == "json":
            counted.sink_ndjson(tmp, check_extension=False)
        else:  # zstd level 1: the size of the default level (3) here, ~30% less CPU
            counted.sink_parquet(tmp, compression="zstd", compression_level=1)
        return counter.rows


def _batches(lf: pl.LazyFrame) -> Iterator[pl.DataFrame]:
    for batch in lf.collect_batches(chunk_size=BATCH_ROWS):
        if batch.height:
            yield batch


def _stream_to(lf: pl.LazyFrame, fmt: str, handle: BinaryIO, progress: Progress | None) -> int:
    """Batch by batch to a stream that cannot seek (standard output)."""
    schema = lf.collect_schema()
    if fmt == "xlsx":  # a zip needs its central directory at the end: build the file, then copy it out
        with tempfile.TemporaryDirectory(prefix="qp-xlsx-") as folder:
            path = Path(folder) / "export.xlsx"
            rows = _stream_xlsx(_batches(lf), schema, path, progress)
            with path.open("rb") as source:
                shutil.copyfileobj(source, handle, 1 << 20)
            handle.flush()
            return rows
    rows = 0
    writer = None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer = pq.ParquetWriter(handle, pl.DataFrame(schema=schema).to_arrow().schema, compression="zstd")
    try:
        for batch in _batches(lf):
            if fmt == "csv":
                batch.write_csv(handle, include_header=rows == 0, **_CSV_OPTIONS)
            elif fmt == "json":
                batch.write_ndjson(handle)
            else:
                writer.write_table(batch.to_arrow())  # type: ignore[union-attr]
            rows += batch.height
            if progress is not None:
                progress(batch.height)
        if fmt == "csv" and rows == 0:
            pl.DataFrame(schema=schema).write_csv(handle, **_CSV_OPTIONS)
    finally:
        if writer is not None:
            writer.close()
    handle.flush()
    return rows


def _stream_xlsx(
    batches: Iterator[pl.DataFrame], schema: pl.Schema, path: str | Path, progress: Progress | None
) -> int:
    """xlsx in constant memory: xlsxwriter's constant_memory mode flushes each row as it is written, so rows
    must arrive in order; a new sheet starts every EXCEL_MAX_ROWS rows (header included)."""
    import xlsxwriter

    options = {
        "constant_memory": True,
        "tmpdir": str(Path(path).parent),
        "strings_to_formulas": False,  # a payload starting with '=' is text, not a formula
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
    names = list(schema.names())
    per_sheet = EXCEL_MAX_ROWS - 1
    workbook = xlsxwriter.Workbook(str(path), options)
    try:
        formats = {
            pl.Date: workbook.add_format({"num_format": "yyyy-mm-dd"}),
            pl.Datetime: workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"}),
        }
        cell_format = [formats.get(dtype.base_type()) for dtype in schema.dtypes()]
        sheet = None
        truncated = 0
        row_in_sheet = per_sheet
        sheets = 0
        rows = 0
        for batch in _excel_ready(batches, schema):
            for values in batch.iter_rows():
                if row_in_sheet == per_sheet:
                    sheets += 1
                    sheet = workbook.add_worksheet(_sheet_name(sheets))
                    sheet.write_row(0, 0, names)
                    row_in_sheet = 0
                row_in_sheet += 1
                for col, value in enumerate(values):
                    truncated += _write_cell(sheet, row_in_sheet, col, value, cell_format[col])
            rows += batch.height
            if progress is not None:
                progress(batch.height)
        if sheets == 0:
            workbook.add_worksheet(_sheet_name(1)).write_row(0, 0, names)
    finally:
        workbook.close()
    if truncated:
        print(
            f"qp: warning: {truncated} text cell(s) longer than Excel's {EXCEL_MAX_CELL_CHARS:,} characters "
            "were cut to fit; csv, json and parquet keep the full text",
            file=sys.stderr,
        )
    return rows


def _excel_ready(batches: Iterator[pl.DataFrame], schema: pl.Schema) -> Iterator[pl.DataFrame]:
    """Time zones dropped (Excel has none; the values stay in the zone they were in)."""
    zoned = [name for name, dtype in schema.items() if isinstance(dtype, pl.Datetime) and dtype.time_zone]
    for batch in batches:
        yield batch.with_columns(pl.col(zoned).dt.replace_time_zone(None)) if zoned else batch


def _write_cell(sheet: Any, row: int, col: int, value: object, cell_format: Any) -> bool:
    """Write one typed cell; True when a text had to be cut to Excel's cell limit."""
    if value is None:
        return False
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, int | float | Decimal):
        sheet.write_number(row, col, float(value))  # an Excel number is a double
    elif isinstance(value, dt.datetime | dt.date):
        sheet.write_datetime(row, col, value, cell_format)
    else:
        text = value if isinstance(value, str) else str(value)
        sheet.write_string(row, col, text[:EXCEL_MAX_CELL_CHARS])
        return len(text) > EXCEL_MAX_CELL_CHARS
    return False


class _atomic:
    """A temporary path beside `output`, renamed to `output` when the block succeeds, removed otherwise."""

    def __init__(self, output: str) -> None:
        self.path = Path(output)

    def __enter__(self) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        return str(self.tmp)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
