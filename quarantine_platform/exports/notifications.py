"""The detailed notifications report (`qp export notifications`, and the panel's download): every message of
one customer in a window [start, end) of event time, first copies only (deduplicated as billed), sorted by
event time, streamed so that a customer's day of millions of rows takes bounded memory.

How it stays bounded, in three passes over that customer's rows of the bronze files of the window:
1. per-minute counts of the customer's rows (two narrow columns): the total for the progress bar, and the
   cut of the window into time slices of at most SLICE_ROWS rows;
2. the re-sent message ids: per local day, the message keys (64-bit hashes of message_id, stored in bronze)
   seen more than once (sorted 8-byte keys, in buckets of at most DUP_BUCKET_ROWS rows); their rows are then
   deduplicated exactly (`first_copies`), which gives the few (partition, offset) that are not first copies;
3. slice by slice, in time order: the slice's rows minus those copies, sorted (unless they already come out
   of the files in order), handed to the writer.
Pass 2 reads the files wholly inside a day without an event_time filter (`scan_window_parts`).
The report is a LazyFrame backed by a Python source that yields the slices, so the sinks pull one slice at a
time. A message_id is deduplicated within its customer's rows (re-sends carry the customer of the original).

A local day that has an up-to-date report day (storage/report_days.py: the day's first copies, laid out so
that a customer's rows are contiguous runs in report order) is read from it instead: a plain filtered Parquet
scan, which reads only that customer's row groups and needs neither the passes above nor a sort. A day whose
report day is missing or stale (a bronze file committed since may hold a late event of it) is read from bronze
as above; the rows and their order are the same either way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from zoneinfo import ZoneInfo

import polars as pl
from polars.io.plugins import register_io_source

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import Progress, format_for, write_table
from quarantine_platform.storage.bronze_window import BronzeFile, bronze_files, scan_window, scan_window_parts
from quarantine_platform.storage.frame_source import prefetched, source_frames
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.storage.report_days import ReportDays
from quarantine_platform.transforms.billing import day_bounds
from quarantine_platform.transforms.notifications import later_copies, time_slices

EXPORT_COLUMNS = ("customer_id", "customer_name", "message_id", "payload", "event_datetime")
EXPORT_SCHEMA = pl.Schema(
    {
        "customer_id": pl.Int64,
        "customer_name": pl.String,
        "message_id": pl.String,
        "payload": pl.String,
        "event_datetime": pl.String,
    }
)
SLICE_ROWS = 500_000
DUP_BUCKET_ROWS = 16_000_000
_ORDER = ("event_time", "partition", "offset")


@dataclass(frozen=True)
class BronzeRange:
    """Part of the window read from bronze (passes 1-3 of the module docstring)."""

    start: dt.datetime
    end: dt.datetime
    rows: int  # rows this part gives
    slices: list[tuple[dt.datetime, dt.datetime]]
    later_copies: pl.DataFrame  # partition, offset, event_time of the rows that are not first copies


@dataclass(frozen=True)
class ReportDayRange:
    """Part of one local day read from its report day."""

    path: str
    start: dt.datetime
    end: dt.datetime
    rows: int
    whole_day: bool  # the part is the file's whole day: no time filter needed


@dataclass(frozen=True)
class ReportPlan:
    customer_id: int
    start: dt.datetime
    end: dt.datetime
    rows: int  # rows the report will hold
    files: list[BronzeFile]
    parts: list[BronzeRange | ReportDayRange]  # consecutive, covering [start, end)


def plan_report(
    lake_root: str, topic: str, customer_id: int, start: dt.datetime, end: dt.datetime, timezone: str
) -> ReportPlan:
    """What the report reads, day by day: a report day where one is up to date, else bronze (passes 1 and 2
    of the module docstring). Raises UserError for an empty window, an unknown customer, or a window whose
    start is not before its end."""
    if start.tzinfo is None or end.tzinfo is None:
        raise UserError("--from and --to need a time zone (or are read in QP_TIMEZONE by qp)")
    if start >= end:
        raise UserError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    try:
        lake = NotificationLake(lake_root)
        report_days = ReportDays(lake_root)
    except ValueError as exc:  # an object-store lake: named in the message
        raise UserError(str(exc)) from None
    files = bronze_files(lake, topic)
    parts: list[BronzeRange | ReportDayRange] = []
    from_bronze: list[tuple[dt.datetime, dt.datetime]] = []  # consecutive days without a usable report day
    for day, day_start, day_end in _window_days(start, end, timezone):
        path = report_days.usable(topic, day, timezone, files)
        if path is None:
            from_bronze.append((day_start, day_end))
            continue
        if from_bronze:
            parts.append(_bronze_range(files, customer_id, from_bronze[0][0], from_bronze[-1][1], timezone))
            from_bronze = []
        whole_day = (day_start, day_end) == day_bounds(day, timezone)
        parts.append(_report_day_range(str(path), customer_id, day_start, day_end, whole_day))
    if from_bronze:
        parts.append(_bronze_range(files, customer_id, from_bronze[0][0], from_bronze[-1][1], timezone))
    rows = sum(part.rows for part in parts)
    if rows == 0:
        if not _customer_known(lake, topic, customer_id):
            raise UserError(f"unknown customer {customer_id}: bronze has no message of that customer")
        raise UserError(
            f"no messages for customer {customer_id} between {start.isoformat()} and {end.isoformat()}"
        )
    return ReportPlan(customer_id, start, end, rows, files, parts)


def _window_days(
    start: dt.datetime, end: dt.datetime, timezone: str
) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    """Each local day touching [start, end), with the part of the window it holds."""
    day = dt.datetime.fromtimestamp(start.timestamp(), ZoneInfo(timezone)).date()
    found: list[tuple[dt.date, dt.datetime, dt.datetime]] = []
    while True:
        day_start, day_end = day_bounds(day, timezone)
        if day_start >= end:
            return found
        found.append((day, max(day_start, start), min(day_end, end)))
        day += dt.timedelta(days=1)


def _report_day_rows(part: ReportDayRange, customer_id: int) -> pl.LazyFrame:
    """The customer's rows of the part in its report day: in report order as stored (row groups of other
    customers and times are skipped by their statistics)."""
    wanted = pl.col("customer_id") == customer_id
    if not part.whole_day:  # the event times are decoded only when the window cuts the day
        wanted = wanted & (pl.col("event_time") >= part.start) & (pl.col("event_time") < part.end)
    return pl.scan_parquet(part.path).filter(wanted).select(EXPORT_COLUMNS)


def _report_day_range(
    path: str, customer_id: int, start: dt.datetime, end: dt.datetime, whole_day: bool
) -> ReportDayRange:
    part = ReportDayRange(path, start, end, 0, whole_day)
    return replace(part, rows=int(_report_day_rows(part, customer_id).select(pl.len()).collect().item()))


def _bronze_range(
    files: list[BronzeFile], customer_id: int, start: dt.datetime, end: dt.datetime, timezone: str
) -> BronzeRange:
    """Passes 1 and 2 (module docstring) over [start, end)."""
    day_start = _dedup_days(start, end, timezone)[0][0]  # earlier copies that day decide the first copy
    minutes = (
        scan_window(files, day_start, end)
        .filter(pl.col("customer_id") == customer_id)
        .group_by(minute=pl.col("event_time").dt.truncate("1m"), in_window=pl.col("event_time") >= start)
        .agg(rows=pl.len().cast(pl.Int64))
        .sort("minute")
        .collect(engine="streaming")
    )
    later = _later_copies(files, customer_id, minutes, start, end, timezone)
    in_window = minutes.filter("in_window").drop("in_window")
    rows = int(in_window["rows"].sum() or 0) - later.filter(pl.col("event_time") >= start).height
    return BronzeRange(start, end, rows, time_slices(in_window, start, end, SLICE_ROWS), later)


def _dedup_days(start: dt.datetime, end: dt.datetime, timezone: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """The ranges within which copies are compared: each local day touching [start, end), from its midnight
    (copies before `start` still decide) up to `end` at most."""
    return [(day_bounds(day, timezone)[0], last) for day, _, last in _window_days(start, end, timezone)]


def _later_copies(
    files: list[BronzeFile],
    customer_id: int,
    minutes: pl.DataFrame,
    start: dt.datetime,
    end: dt.datetime,
    timezone: str,
) -> pl.DataFrame:
    """(partition, offset, event_time) of the customer's rows that are re-sent copies: `later_copies` of each
    local day touching the window, from its midnight, its message keys sorted in buckets of at most
    DUP_BUCKET_ROWS rows."""
    found: list[pl.DataFrame] = []
    for day_start, day_end in _dedup_days(start, end, timezone):  # at least one: start is before end
        # The files wholly inside the range need no event_time filter: most of a day's files.
        parts = scan_window_parts(files, day_start, day_end).parts()
        day = pl.concat([part.filter(pl.col("customer_id") == customer_id) for part in parts])
        rows = int(
            minutes.filter(pl.col("minute").is_between(day_start, day_end, closed="left"))["rows"].sum()
        )
        found.append(later_copies(day, timezone, key_buckets=max(1, -(-rows // DUP_BUCKET_ROWS))))
    return pl.concat(found)


def _customer_known(lake: NotificationLake, topic: str, customer_id: int) -> bool:
    found = lake.scan_events(topic).filter(pl.col("customer_id") == customer_id).select("offset").head(1)
    return found.collect().height > 0


def _slice_rows(plan: ReportPlan, part: BronzeRange, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The slice's rows, first copies only, in report order. Rows often come out of the files already in
    that order (a file's rows follow its offsets): then sorting, which moves every string of the slice, is
    skipped."""
    rows = scan_window(plan.files, start, end).filter(pl.col("customer_id") == plan.customer_id)
    later = part.later_copies.filter((pl.col("event_time") >= start) & (pl.col("event_time") < end))
    if later.height:
        rows = rows.join(
            later.lazy().drop("event_time"), on=["partition", "offset"], how="anti", maintain_order="left"
        )
    frame = rows.select(*_ORDER, *EXPORT_COLUMNS).collect(engine="streaming")
    if not in_report_order(frame):
        frame = frame.sort(_ORDER)
    return frame.select(EXPORT_COLUMNS)


def in_report_order(frame: pl.DataFrame) -> bool:
    """Whether the rows are sorted by (event_time, partition, offset)."""
    time, partition, offset = (pl.col(name) for name in _ORDER)
    after = [column.shift(-1) for column in (time, partition, offset)]
    ordered = (after[0] > time) | (
        (after[0] == time) & ((after[1] > partition) | ((after[1] == partition) & (after[2] >= offset)))
    )
    return bool(frame.select(ordered.fill_null(True).all()).item())


def _source(
    plan: ReportPlan,
    part: BronzeRange,
    with_columns: list[str] | None,
    predicate: pl.Expr | None,
    n_rows: int | None,
    batch_size: int | None,
) -> Iterator[pl.DataFrame]:
    """The Python source behind a bronze part's LazyFrame: one slice at a time, in order; the next slice is
    read while the current one is written, so at most two are held."""
    loads = [partial(_slice_rows, plan, part, start, end) for start, end in part.slices]
    slices = prefetched(loads, "qp-report")
    yield from source_frames(slices, with_columns, predicate, n_rows, batch_size or 100_000)


def report_frame(plan: ReportPlan) -> pl.LazyFrame:
    """The report's rows: its parts one after the other."""
    frames = [
        _report_day_rows(part, plan.customer_id)
        if isinstance(part, ReportDayRange)
        else register_io_source(
            partial(_source, plan, part), schema=EXPORT_SCHEMA, explain_name="notifications_report"
        )
        for part in plan.parts
    ]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def notifications_report(
    lake_root: str, topic: str, customer_id: int, start: dt.datetime, end: dt.datetime, timezone: str
) -> pl.LazyFrame:
    """The report's rows (EXPORT_COLUMNS), sorted by event time, as a LazyFrame that streams. Raises
    UserError (one line, for people) for an unknown customer, an empty window or start >= end."""
    return report_frame(plan_report(lake_root, topic, customer_id, start, end, timezone))


def write_notifications_report(
    lf: pl.LazyFrame, fmt: str, output_path: str | None, progress: Progress | None = None
) -> int:
    """Stream the report to `output_path` (None: standard output) as csv, xlsx, parquet or json (lines);
    returns the rows written. `progress(n)` is called as rows are written."""
    return write_table(lf, format_for(fmt, output_path), output_path, progress)


def run(args: argparse.Namespace) -> int:
    """`qp export notifications --customer ID --from ISO --to ISO [--format] [--output] [--progress]`."""
    fmt = format_for(args.format, args.output)
    plan = plan_report(
        settings.get("QP_LAKE_DIR"),
        settings.get("QP_KAFKA_TOPIC"),
        args.customer,
        args.start,
        args.end,
        settings.get("QP_TIMEZONE"),
    )
    show = sys.stderr.isatty() if args.progress is None else args.progress
    if show:
        from tqdm import tqdm

        with tqdm(total=plan.rows, unit=" rows", unit_scale=True, file=sys.stderr, desc="export") as bar:
            rows = write_notifications_report(report_frame(plan), fmt, args.output, progress=bar.update)
    else:
        rows = write_notifications_report(report_frame(plan), fmt, args.output)
    if args.output is not None:
        print(f"{rows} messages of customer {args.customer} written to {args.output}", file=sys.stderr)
    return 0
