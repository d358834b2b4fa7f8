"""Checking a campaign against the quarantine table: `qp check` (one customer) and `qp filter-audience`
(a whole audience file). Both read a load date as Dagster materialized it, read-only.

On channel C a customer is blocked by their row of C and by any row of a channel whose rule has
`blocks_all_channels` (Restritos, Fraude). `qp check` exits 3 when blocked, 0 when they may be contacted.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import write_xlsx
from quarantine_platform.exports.quarantine import channel_or_user_error, rules_or_user_error
from quarantine_platform.storage.quarantine_warehouse import blocked_ids, customer_rows, open_load_date
from quarantine_platform.transforms.quarantine import blocking_channels
from quarantine_platform.transforms.quarantine_rules import ChannelRule

IN_QUARANTINE = 3
ID_COLUMN = "id_cliente"
CSV_SEPARATORS = (",", ";", "\t", "|")
MAX_BAD_ROWS_SHOWN = 5

# --- qp check ------------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    rules = rules_or_user_error()
    channel = channel_or_user_error(rules, args.channel) if args.channel else None
    with open_load_date(settings.get("QP_WAREHOUSE"), args.date) as (con, load_date):
        rows = customer_rows(con, load_date, args.customer_id)
    lines, blocked = check_report(rules, rows, channel)
    print(f"customer {args.customer_id}, load date {load_date}")
    for line in lines:
        print(line)
    return IN_QUARANTINE if blocked else 0


def check_report(
    rules: Sequence[ChannelRule], rows: pl.DataFrame, channel: str | None
) -> tuple[list[str], bool]:
    """One line per channel that matters (all of them, or `channel` and the blocks-all channels), the verdict
    last; and whether the customer is blocked."""
    by_channel = {row["canal"]: row for row in rows.iter_rows(named=True)}
    shown = [rule for rule in rules if channel is None or rule.canal in blocking_channels(rules, channel)]
    lines = [f"{rule.canal}: {_status(rule, by_channel.get(rule.canal))}" for rule in shown]
    blockers = [rule.canal for rule in shown if rule.canal in by_channel]
    # A row of a channel the rules no longer have still says the customer was contacted: shown, and it blocks
    # when no channel is asked for.
    known = {rule.canal for rule in rules}
    for canal, row in by_channel.items():
        if canal not in known and channel is None:
            lines.append(f"{canal}: {_status(None, row)} (channel not in the rules)")
            blockers.append(canal)
    where = f"on {channel}" if channel else "on any channel"
    if blockers:
        lines.append(f"=> in quarantine {where} (blocked by {', '.join(blockers)})")
    else:
        lines.append(f"=> may be contacted {where}")
    return lines, bool(blockers)


def _status(rule: ChannelRule | None, row: dict | None) -> str:
    if row is None:
        return "may be contacted"
    reach = ", blocks every channel" if rule is not None and rule.blocks_all_channels else ""
    if row["saida_prevista"] is None:
        return f"in quarantine until removed at the source (since {row['data_envio']}{reach})"
    return f"in quarantine through {row['saida_prevista']} (sent {row['data_envio']}{reach})"


# --- qp filter-audience ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudienceFilterReport:
    rows: int
    kept: int
    removed: int
    removed_by_channel: dict[str, int]  # a row blocked by several channels counts under each


@dataclass(frozen=True)
class AudienceFile:
    """An audience file opened lazily: every column as it is, plus where `id_cliente` is."""

    path: Path
    frame: pl.LazyFrame
    id_column: str
    separator: str | None  # None: not a CSV
    first_line: int  # line (or sheet row) of the first data row, for error messages


def run_filter_audience(args: argparse.Namespace) -> int:
    rules = rules_or_user_error()
    channel = channel_or_user_error(rules, args.channel)
    audience = open_audience(Path(args.input))
    output = Path(args.output)
    output_kind = _output_kind(output)
    with open_load_date(settings.get("QP_WAREHOUSE"), args.date) as (con, load_date):
        blocked = blocked_ids(con, load_date, blocking_channels(rules, channel))
    report = filter_audience(audience, blocked, output, output_kind)
    print(f"{audience.path} -> {output}: channel {channel}, load date {load_date}")
    counts = [("rows", report.rows), ("kept", report.kept), ("removed", report.removed)]
    counts += [
        (f"  by {canal}", report.removed_by_channel.get(canal, 0))
        for canal in blocking_channels(rules, channel)
    ]
    width = max(len(label) for label, _ in counts) + 2
    for label, count in counts:
        print(f"{label:<{width}}{count:>12,}")
    if sum(report.removed_by_channel.values()) > report.removed:
        print("  (a customer blocked by several channels is counted under each)")
    return 0


def open_audience(path: Path) -> AudienceFile:
    if not path.is_file():
        raise UserError(f"audience file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _open_xlsx(path)
    if suffix in (".csv", ".txt", ".tsv", ""):
        return _open_csv(path)
    raise UserError(f"{path}: an audience file is CSV or xlsx, not {suffix!r}")


def _open_csv(path: Path) -> AudienceFile:
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = handle.readline().rstrip("\r\n")
    if not header.strip():
        raise UserError(f"{path} line 1: the header is empty (expected a column {ID_COLUMN})")
    for separator in CSV_SEPARATORS:
        names = [name.strip().strip('"') for name in header.split(separator)]
        column = _id_column(names)
        if column is not None:
            # Every column read as text: what is written back is exactly what was read.
            frame = pl.scan_csv(path, separator=separator, infer_schema=False, encoding="utf8-lossy")
            real = _id_column(frame.collect_schema().names())
            if real is None:
                break
            return AudienceFile(path, frame, real, separator, first_line=2)
    raise UserError(f"{path} line 1: no {ID_COLUMN} column in the header {header[:200]!r}")


def _open_xlsx(path: Path) -> AudienceFile:
    try:
        frame = pl.read_excel(path, sheet_id=1, infer_schema_length=None)
    except Exception as exc:  # fastexcel raises its own types for damaged workbooks
        raise UserError(f"{path}: not a readable xlsx workbook ({exc})") from None
    column = _id_column(frame.columns)
    if column is None:
        raise UserError(f"{path} (first sheet) row 1: no {ID_COLUMN} column in {frame.columns}")
    return AudienceFile(path, frame.lazy(), column, None, first_line=2)


def _id_column(names: Sequence[str]) -> str | None:
    for name in names:
        if name.strip().lower() == ID_COLUMN:
            return name
    return None


def parsed_ids(frame: pl.LazyFrame, column: str) -> pl.Expr:
    """id_cliente as Int64; null where the value is not a whole number (a spreadsheet's 12.0 is 12)."""
    dtype = frame.collect_schema()[column]
    value = pl.col(column)
    if dtype.is_integer():
        return value.cast(pl.Int64)
    if dtype.is_float():
        return pl.when(value == value.round(0)).then(value.cast(pl.Int64, strict=False))
    return value.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)


_ID = "__qp_id_cliente"  # working columns, dropped before writing
_REMOVED = "__qp_removed"


def filter_audience(
    audience: AudienceFile, blocked: pl.DataFrame, output: Path, output_kind: str
) -> AudienceFilterReport:
    """Write the audience rows whose id_cliente is not blocked, every column as read and in order, to
    `output` (atomically); count what was kept and removed. One streaming pass over a CSV (bounded memory):
    the counts and the written rows share the scan. A file with bad ids leaves no output."""
    ids = parsed_ids(audience.frame, audience.id_column)
    every_blocked = blocked.get_column("id_cliente").unique().implode()
    per_channel = {
        canal: group.get_column("id_cliente").unique().implode()
        for (canal,), group in blocked.group_by("canal", maintain_order=True)
    }
    marked = audience.frame.with_columns(ids.alias(_ID), ids.is_in(every_blocked).alias(_REMOVED))
    kept = marked.filter(~pl.col(_REMOVED)).drop(_ID, _REMOVED)
    # (`.filter` inside this select would take the streaming engine off its fast path: 6 times slower.)
    counting = marked.select(
        pl.len().alias("rows"),
        pl.col(_ID).is_null().sum().alias("bad"),
        pl.col(_REMOVED).sum().alias("removed"),
        *[pl.col(_ID).is_in(members).sum().alias(f"by:{canal}") for canal, members in per_channel.items()],
    )
    with _atomic_output(output) as tmp:
        counts = _write_audience(kept, counting, audience, tmp, output_kind).row(0, named=True)
        if counts["bad"]:
            raise UserError(_bad_ids_message(audience, ids, counts["bad"]))
    return AudienceFilterReport(
        rows=counts["rows"],
        kept=counts["rows"] - counts["removed"],
        removed=counts["removed"],
        removed_by_channel={canal: counts[f"by:{canal}"] for canal in per_channel},
    )


def _bad_ids_message(audience: AudienceFile, ids: pl.Expr, bad: int) -> str:
    where = "line" if audience.separator is not None else "row"
    first = (
        audience.frame.select(pl.col(audience.id_column).alias("value"), ids.alias("id"))
        .with_row_index("index")
        .filter(pl.col("id").is_null())
        .head(MAX_BAD_ROWS_SHOWN)
        .collect()
    )
    shown = "; ".join(
        f"{where} {index + audience.first_line}: "
        + ("empty" if value is None or str(value).strip() == "" else f"{str(value)[:40]!r} is not an integer")
        for index, value in zip(first["index"], first["value"], strict=True)
    )
    more = f" (and {bad - first.height} more)" if bad > first.height else ""
    return f"{audience.path}: {bad} rows without a whole-number {audience.id_column}: {shown}{more}"


def _output_kind(output: Path) -> str:
    suffix = output.suffix.lower()
    kinds = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".parquet": "parquet"}
    if suffix not in kinds:
        raise UserError(f"{output}: write the allowed audience as .csv, .xlsx or .parquet, not {suffix!r}")
    return kinds[suffix]


@contextmanager
def _atomic_output(output: Path) -> Iterator[Path]:
    """A temporary file beside `output`, renamed onto it if the block succeeds, removed if it fails: a reader
    never sees half a file, and a rejected input leaves nothing."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        yield tmp
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)


def _write_audience(
    kept: pl.LazyFrame, counting: pl.LazyFrame, audience: AudienceFile, path: Path, kind: str
) -> pl.DataFrame:
    """Write `kept` to `path` and return the `counting` row, from one scan of the input."""
    if kind == "xlsx":  # a workbook is written whole
        rows, counts = pl.collect_all([kept, counting])
        with path.open("wb") as handle:
            write_xlsx(rows, handle)
        return counts
    if kind == "csv":
        sink = kept.sink_csv(path, separator=audience.separator or ",", date_format="%Y-%m-%d", lazy=True)
    else:
        sink = kept.sink_parquet(path, lazy=True)
    return pl.collect_all([sink, counting])[1]
