"""Invoice averages: read ``invoices.csv`` and average each account's last 3 and 6 months.

Pure Polars (no Dagster). Money stays Decimal end to end; the averages are truncated to cents, as the
design's expected table requires (248500 / 6 -> 41416.66, not ...67).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl

__all__ = [
    "AVERAGE_COLUMNS",
    "INVOICE_COLUMNS",
    "INVOICE_SCHEMA",
    "MONEY",
    "REJECTED_SCHEMA",
    "InvoiceInputError",
    "InvoiceReadResult",
    "invoice_averages",
    "invoice_averages_lazy",
    "read_invoices",
]

INVOICE_COLUMNS: tuple[str, ...] = ("customer", "account", "month", "invoice")
# 38 digits leave room for sums of 10 million rows; 2 decimals because amounts are BRL cents.
MONEY = pl.Decimal(38, 2)
INVOICE_SCHEMA = pl.Schema({"customer": pl.String, "account": pl.String, "month": pl.Date, "invoice": MONEY})
REJECTED_SCHEMA = pl.Schema({"line": pl.Int64, "column": pl.String, "reason": pl.String})
AVERAGE_COLUMNS: tuple[str, ...] = (
    "customer",
    "account",
    "avg_invoices_last_3_months",
    "avg_invoices_last_6_months",
)
WINDOWS: tuple[int, ...] = (3, 6)

# A plain decimal number; more than 2 decimals is refused rather than silently cut to cents.
_NUMBER = r"^[+-]?[0-9]+(\.[0-9]+)?$"
_CENTS = r"^[+-]?[0-9]+(\.[0-9]{1,2})?$"
_CENT = Decimal("0.01")


class InvoiceInputError(ValueError):
    """The invoices file cannot be read at all (missing, empty, or a required column is missing)."""

    def __init__(self, file: str, line: int | None, column: str | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.problem = problem
        where = [file]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


@dataclass(frozen=True)
class InvoiceReadResult:
    """Valid invoices (``INVOICE_SCHEMA``) and the rows set aside (``REJECTED_SCHEMA``)."""

    invoices: pl.DataFrame
    rejected: pl.DataFrame


def read_invoices(source: str | bytes | Path, *, name: str | None = None) -> InvoiceReadResult:
    """Read ``customer,account,month,invoice`` CSV; a str or Path is a file, bytes are its content.

    File-level problems raise ``InvoiceInputError``; row-level problems become rejected rows
    (line, column, reason) with line 1 = the header, and the other rows are kept.
    """
    file = name or (f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source))
    data: bytes | Path = source if isinstance(source, bytes) else Path(source)
    if isinstance(data, Path) and not data.is_file():
        raise InvoiceInputError(file, None, None, "file not found")
    header = _read_header(data, file)
    raw = _read_raw(data, file, header)
    return _validate(raw, len(header))


def _read_header(data: bytes | Path, file: str) -> list[str]:
    try:
        with _open_text(data) as fh:
            first = fh.readline()
            rest_blank = not first.strip() and not fh.read(1 << 16).strip()
    except UnicodeDecodeError as exc:
        raise InvoiceInputError(file, 1, None, f"not valid UTF-8 ({exc.reason})") from exc
    if not first.strip() and rest_blank:
        expected = ",".join(INVOICE_COLUMNS)
        raise InvoiceInputError(file, 1, INVOICE_COLUMNS[0], f"file is empty (expected header {expected})")
    header = [h.strip() for h in next(csv.reader([first]), [])]
    for column in INVOICE_COLUMNS:
        if column not in header:
            raise InvoiceInputError(
                file, 1, column, f"missing column (header has: {', '.join(h for h in header if h)})"
            )
    return header


def _open_text(data: bytes | Path) -> io.TextIOBase:
    # utf-8-sig drops a BOM; newline="" lets the csv module see CRLF and quoted newlines as written.
    if isinstance(data, bytes):
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    return open(data, encoding="utf-8-sig", newline="")  # noqa: SIM115 - returned to a with block


def _read_raw(data: bytes | Path, file: str, header: list[str]) -> pl.DataFrame:
    """All rows as trimmed strings plus ``line`` and ``fields`` (None when the count is right)."""
    try:
        df = pl.read_csv(data, infer_schema=False, raise_if_empty=False)
    except pl.exceptions.ComputeError as exc:
        if "more fields" not in str(exc):
            raise InvoiceInputError(file, None, None, f"unreadable CSV ({exc})") from exc
        # Polars stops at a row with too many fields (e.g. an unquoted "1,000"); the csv module
        # reads it row by row so that only those rows are rejected.
        return _read_raw_python(data, file, header)
    # Polars gives one row per physical line (blank lines included), so line = index + 2, unless a
    # quoted field spans lines; then the csv module counts lines exactly.
    stripped = {h.strip(): h for h in df.columns}
    df = df.select(pl.col(stripped[c]).alias(c) for c in INVOICE_COLUMNS)
    if df.select(pl.any_horizontal(pl.col(INVOICE_COLUMNS).str.contains("\n", literal=True)).any()).item():
        return _read_raw_python(data, file, header)
    return df.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("line"),
        *(pl.col(c).fill_null("").str.strip_chars() for c in INVOICE_COLUMNS),
        pl.lit(None, dtype=pl.Int64).alias("fields"),
    )


def _read_raw_python(data: bytes | Path, file: str, header: list[str]) -> pl.DataFrame:
    index = [header.index(c) for c in INVOICE_COLUMNS]
    columns: dict[str, list[str]] = {c: [] for c in INVOICE_COLUMNS}
    lines: list[int] = []
    fields: list[int | None] = []
    try:
        with _open_text(data) as fh:
            reader = csv.reader(fh)
            next(reader, None)
            start = reader.line_num + 1
            for row in reader:
                if row:
                    lines.append(start)
                    fields.append(len(row) if len(row) > len(header) else None)
                    for c, i in zip(INVOICE_COLUMNS, index, strict=True):
                        columns[c].append(row[i].strip() if i < len(row) else "")
                start = reader.line_num + 1
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvoiceInputError(file, None, None, f"unreadable CSV ({exc})") from exc
    return pl.DataFrame(
        {"line": lines, **columns, "fields": fields},
        schema={"line": pl.Int64, **dict.fromkeys(INVOICE_COLUMNS, pl.String), "fields": pl.Int64},
    )


def _validate(raw: pl.DataFrame, header_fields: int) -> InvoiceReadResult:
    # A blank line carries no invoice: skip it instead of reporting four empty fields.
    raw = raw.filter(pl.any_horizontal(pl.col(INVOICE_COLUMNS) != "") | pl.col("fields").is_not_null())
    number = pl.col("invoice").str.contains(_NUMBER)
    # (column, problem, reason) in the order the rejections are listed within one line.
    checks: list[tuple[str | None, pl.Expr, pl.Expr]] = [
        (
            None,
            pl.col("fields").is_not_null(),
            pl.format("row has {} fields, the header has {}", "fields", pl.lit(header_fields)),
        ),
        ("customer", pl.col("customer") == "", pl.lit("empty customer")),
        ("account", pl.col("account") == "", pl.lit("empty account")),
        ("month", pl.col("month") == "", pl.lit("empty month")),
        (
            "month",
            (pl.col("month") != "") & pl.col("_month").is_null(),
            pl.format("not a date (expected YYYY-MM-DD): {}", "month"),
        ),
        ("month", pl.col("_month").dt.day() != 1, pl.format("not the first day of a month: {}", "month")),
        ("invoice", pl.col("invoice") == "", pl.lit("empty invoice")),
        (
            "invoice",
            (pl.col("invoice") != "") & (~number | pl.col("_invoice").is_null()),
            pl.format("not a number: {}", "invoice"),
        ),
        (
            "invoice",
            number & ~pl.col("invoice").str.contains(_CENTS),
            pl.format("more than 2 decimal places: {}", "invoice"),
        ),
    ]
    # Parse once, flag once; reasons are only formatted for the (normally few) flagged rows.
    parsed = raw.with_columns(
        pl.col("month").str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("_month"),
        pl.col("invoice").cast(MONEY, strict=False).alias("_invoice"),
    ).with_columns(
        # The same rows as any_horizontal(checks), in fewer passes (one regex instead of two): a row is bad
        # when a field is missing or unparsed, or the amount is not a number of at most 2 decimals.
        (
            pl.col("fields").is_not_null()
            | (pl.col("customer") == "")
            | (pl.col("account") == "")
            | pl.col("_month").is_null()
            | (pl.col("_month").dt.day() != 1)
            | ~pl.col("invoice").str.contains(_CENTS)
            | pl.col("_invoice").is_null()
        )
        .fill_null(True)
        .alias("_bad"),
    )
    bad = parsed.filter(pl.col("_bad"))
    problems = [
        bad.filter(problem.fill_null(False)).select(
            "line", pl.lit(column, pl.String).alias("column"), reason.alias("reason"), pl.lit(i).alias("o")
        )
        for i, (column, problem, reason) in enumerate(checks)
    ]
    keys = list(INVOICE_COLUMNS)
    valid = parsed.filter(~pl.col("_bad")).with_columns(pl.struct(keys).is_first_distinct().alias("_first"))
    # An exact copy of an earlier valid row is rejected: only the first one counts.
    copies = valid.filter(~pl.col("_first"))
    if copies.height:
        # Narrow the originals to the copies' accounts before joining: copies are normally rare.
        firsts = valid.filter(
            pl.col("_first") & pl.col("account").is_in(copies["account"].unique().implode())
        ).select(*keys, pl.col("line").alias("_first_line"))
        problems.append(
            copies.join(firsts, on=keys, how="left", nulls_equal=True).select(
                "line",
                pl.lit(None, pl.String).alias("column"),
                pl.format("duplicate of line {}", "_first_line").alias("reason"),
                pl.lit(len(checks)).alias("o"),
            )
        )
        valid = valid.filter(pl.col("_first"))
    rejected = pl.concat(problems).sort("line", "o").drop("o")
    invoices = valid.select(
        "customer", "account", pl.col("_month").alias("month"), pl.col("_invoice").alias("invoice")
    )
    return InvoiceReadResult(invoices=invoices, rejected=rejected.cast(dict(REJECTED_SCHEMA)))


def invoice_averages_lazy(invoices: pl.DataFrame | pl.LazyFrame, reference_month: date) -> pl.LazyFrame:
    """The lazy query behind ``invoice_averages`` (also runs in Polars' streaming engine)."""
    ref = reference_month.year * 12 + reference_month.month - 1
    month = pl.col("month")
    # Months counted back from the reference: 1 = the month before it; the reference itself is 0.
    months_back = pl.lit(ref, pl.Int32) - (
        month.dt.year().cast(pl.Int32) * 12 + month.dt.month().cast(pl.Int32) - 1
    )
    back = pl.col("back")
    # One pass over the rows: which months have an invoice, and each window's sum. Summing the
    # window's rows equals summing each month first, and a month is present whatever its count.
    present = [(back == k).any().alias(f"_m{k}") for k in range(1, max(WINDOWS) + 1)]
    sums = [pl.col("invoice").filter(back <= n).sum().alias(f"_s{n}") for n in WINDOWS]
    averages: list[pl.Expr] = []
    for n in WINDOWS:
        # Whole cents as an integer so that the division truncates instead of rounding.
        cents = (pl.col(f"_s{n}") * 100).cast(pl.Int128)
        truncated = (cents.abs() // n) * cents.sign()
        average = (truncated.cast(MONEY) * pl.lit(_CENT, MONEY)).cast(MONEY)
        complete = pl.all_horizontal(pl.col(f"_m{k}") for k in range(1, n + 1))
        averages.append(pl.when(complete).then(average).alias(f"avg_invoices_last_{n}_months"))
    return (
        invoices.lazy()
        .select("customer", "account", months_back.alias("back"), pl.col("invoice").cast(MONEY))
        .filter(back >= 1)
        .group_by("customer", "account")
        .agg(*present, *sums)
        .select("customer", "account", *averages)
        .sort("customer", "account")
    )


def invoice_averages(invoices: pl.DataFrame | pl.LazyFrame, reference_month: date) -> pl.DataFrame:
    """Per account with any invoice before ``reference_month``: 3- and 6-month averages, truncated to cents.

    A window is the N calendar months before the reference month; its average is null unless every
    one of those months has an invoice.
    """
    return invoice_averages_lazy(invoices, reference_month).collect()
