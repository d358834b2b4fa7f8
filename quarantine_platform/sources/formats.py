"""Bytes of a fetched file -> a raw frame, one row per record, before any validation.

Every raw frame carries `_row` (1-based record number, header excluded) and `_position` (where to look
in the file: "line 7", "sheet row 3"). Text formats come back all-String so that a bad value is a
rejected row later, never a failed file; Parquet keeps its types (they are checked per column later).
A file that cannot be read at all raises SourceFormatError with the reason (empty, not xlsx, line N...).
"""

from __future__ import annotations

import codecs
import csv
import io
import json

import polars as pl

from quarantine_platform.sources.base import SourceFormatError

# The raw-frame contract is the standardization's input (transforms.quarantine_sources).
from quarantine_platform.transforms.quarantine_sources import POSITION, RECORD, ROW, ROW_ERROR


def _text(data: bytes) -> str:
    if not data:
        raise SourceFormatError("empty file (0 bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceFormatError(f"not UTF-8 text: invalid byte at line {line} (byte {exc.start})") from None
    return text.removeprefix(codecs.BOM_UTF8.decode("utf-8"))


def _header_names(names: list[str]) -> list[str]:
    """Column names as the contract spells them: trimmed, lower-case; a repeated name is an error."""
    clean = [name.strip().lower() for name in names]
    repeated = sorted({name for name in clean if name and clean.count(name) > 1})
    if repeated:
        raise SourceFormatError(f"repeated column(s) in the header: {', '.join(repeated)}")
    return clean


def _with_positions(frame: pl.DataFrame, rows: list[int], positions: list[str]) -> pl.DataFrame:
    return frame.with_columns(
        pl.Series(ROW, rows, dtype=pl.Int64), pl.Series(POSITION, positions, dtype=pl.String)
    )


def read_delimited(data: bytes, separator: str = ";") -> pl.DataFrame:
    """A CSV with a header line; blank lines are skipped; a line with the wrong field count gets `_error`.

    A file without quotes is split natively by Polars (a million lines in well under a second); a file
    with quotes goes through Python's csv module, which knows quoted separators and line breaks."""
    text = _text(data)
    if '"' in text:
        return _read_quoted(text, separator)
    return _read_plain(text, separator)


def _wrong_field_count(names: list[str], separator: str) -> str:
    """The reason of a line with the wrong number of fields, up to the count found."""
    return f"expected {len(names)} fields separated by '{separator}', found "


def _read_plain(text: str, separator: str) -> pl.DataFrame:
    lines = (
        pl.Series("line", [text]).str.split("\n").explode().str.strip_suffix("\r").to_frame()
    ).with_row_index("line_number", offset=1)
    header = lines["line"][0]
    if not header.strip():
        raise SourceFormatError("no header line")
    names = _header_names(header.split(separator))
    fields = pl.col("line").str.split(separator)
    count = fields.list.len()
    body = lines.slice(1).filter(
        pl.col("line").str.replace_all(separator, "", literal=True).str.strip_chars() != ""
    )
    return body.select(
        *[fields.list.get(i, null_on_oob=True).alias(name) for i, name in enumerate(names) if name],
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW),
        pl.format("line {}", "line_number").alias(POSITION),
        pl.when(count != len(names))
        .then(pl.format(_wrong_field_count(names, separator) + "{}", count))
        .alias(ROW_ERROR),
    )


def _read_quoted(text: str, separator: str) -> pl.DataFrame:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    try:
        header = next(reader, None)
        if header is None or not any(field.strip() for field in header):
            raise SourceFormatError("no header line")
        names = _header_names(header)
        columns: list[list[str | None]] = [[] for _ in names]
        positions: list[str] = []
        errors: list[str | None] = []
        end_of_previous = reader.line_num
        for fields in reader:
            start = end_of_previous + 1  # a quoted field may span lines: the record starts here
            end_of_previous = reader.line_num
            if not any(field.strip() for field in fields):
                continue
            wrong = len(fields) != len(names)
            errors.append(f"{_wrong_field_count(names, separator)}{len(fields)}" if wrong else None)
            padded = (fields + [None] * len(names))[: len(names)]
            for column, value in zip(columns, padded, strict=True):
                column.append(value)
            positions.append(f"line {start}")
    except csv.Error as exc:
        raise SourceFormatError(f"line {reader.line_num}: {exc}") from None
    frame = pl.DataFrame(
        {name: column for name, column in zip(names, columns, strict=True) if name},
        schema={name: pl.String for name in names if name},
    )
    rows = list(range(1, len(positions) + 1))
    return _with_positions(frame, rows, positions).with_columns(pl.Series(ROW_ERROR, errors, dtype=pl.String))


def read_xlsx(data: bytes) -> pl.DataFrame:
    """The first sheet, header on its first row, every cell as text (date cells as `YYYY-MM-DD HH:MM:SS`)."""
    import fastexcel

    if not data:
        raise SourceFormatError("empty file (0 bytes)")
    try:
        sheet = fastexcel.read_excel(data).load_sheet(0, dtypes="string")
        frame = sheet.to_polars()
    except fastexcel.FastExcelError as exc:
        reason = str(exc).splitlines()[0]
        raise SourceFormatError(f"not a readable xlsx workbook ({reason})") from None
    frame.columns = _header_names(frame.columns)
    frame = _with_positions(
        frame, list(range(1, frame.height + 1)), [f"sheet row {i + 2}" for i in range(frame.height)]
    )
    data_columns = [name for name in frame.columns if name not in (ROW, POSITION)]
    if not data_columns:
        return frame.clear()
    # Rows left blank (formatting only) are not records.
    frame = frame.filter(pl.any_horizontal(pl.col(data_columns).str.strip_chars().str.len_chars() > 0))
    return frame.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW))


def read_parquet(data: bytes) -> pl.DataFrame:
    if not data:
        raise SourceFormatError("empty file (0 bytes)")
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceFormatError(f"not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    return typed_frame(frame)


def typed_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """A typed frame (Parquet, Delta) with lower-case names and `_row`/`_position` ("row N")."""
    frame = frame.rename(dict(zip(frame.columns, _header_names(frame.columns), strict=True)))
    return _with_positions(
        frame, list(range(1, frame.height + 1)), [f"row {i}" for i in range(1, frame.height + 1)]
    )


def read_json_records(data: bytes) -> pl.DataFrame:
    """A JSON array of records, or JSON lines (one record per line): `_row`, `_position`, `record` (JSON
    text of each record). A malformed array fails the file; a malformed JSON line is that line's error."""
    text = _text(data)
    stripped = text.lstrip()
    if not stripped:
        raise SourceFormatError("empty file (only blanks)")
    rows: list[int] = []
    positions: list[str] = []
    records: list[str | None] = []
    errors: list[str | None] = []
    if stripped.startswith("["):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceFormatError(
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if not isinstance(document, list):
            raise SourceFormatError("expected a JSON array of records")
        for number, record in enumerate(document, start=1):
            rows.append(number)
            positions.append(f"record {number}")
            records.append(json.dumps(record, ensure_ascii=False))
            errors.append(None)
    elif stripped.startswith("{"):
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            rows.append(len(rows) + 1)
            positions.append(f"line {line_number}")
            try:
                record = json.loads(line)
                records.append(json.dumps(record, ensure_ascii=False))
                errors.append(None)
            except json.JSONDecodeError as exc:
                records.append(line)
                errors.append(f"not valid JSON ({exc.msg} at column {exc.colno})")
    else:
        raise SourceFormatError("expected a JSON array of records or JSON lines (one object per line)")
    return pl.DataFrame(
        {ROW: rows, POSITION: positions, RECORD: records, ROW_ERROR: errors},
        schema={ROW: pl.Int64, POSITION: pl.String, RECORD: pl.String, ROW_ERROR: pl.String},
    )
