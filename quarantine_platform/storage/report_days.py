"""Report days: per topic and local day, the day's first copies in report order (transforms/report_days.py),
one Parquet file each, kept beside bronze so that `qp export notifications` (and the panel's download) reads
one customer's rows already deduplicated and sorted instead of the bronze files that mix every customer.

Layout under the lake root:
  notification_report_days/topic=T/date=YYYY-MM-DD.parquet

Bronze stays the source of truth. A report day's footer records the day's bounds (so a file made for another
QP_TIMEZONE is never used) and the highest bronze commit (`seq`) it saw; a bronze file committed later that
may hold events of that day (a late event) makes the report day stale, and readers then take that day from
bronze. Re-materializing the day rewrites it. Files are written whole (temporary name, fsync, rename), under a
per-topic lock, so a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from polars.io.plugins import register_io_source

from quarantine_platform.storage.bronze_window import BronzeFile, scan_window, scan_window_parts
from quarantine_platform.storage.durable import replace_durably
from quarantine_platform.storage.file_lock import exclusive_lock
from quarantine_platform.storage.frame_source import prefetched, source_frames
from quarantine_platform.transforms.billing import day_bounds
from quarantine_platform.transforms.notifications import later_copies, time_slices
from quarantine_platform.transforms.report_days import (
    REPORT_DAY_SCHEMA,
    minute_rows,
    sorted_chunk,
)

REPORT_DAYS_DIR = "notification_report_days"
CHUNK_ROWS = 1_000_000  # rows sorted at a time: 0.5M-4M measured, smaller used less CPU and memory
ROW_GROUP_ROWS = 65_536  # small groups: a customer's window skips the rest by their statistics
_META_KEY = "quarantine_platform.report_day"
# 1: time chunks in order, each sorted by (customer_id, event_time, partition, offset): transforms/report_days
LAYOUT = 1


@dataclass(frozen=True)
class ReportDayInfo:
    """What a report day's footer says."""

    topic: str
    day: str  # YYYY-MM-DD, a day of `timezone`
    timezone: str
    start_us: int  # the day's bounds in UTC, epoch microseconds
    end_us: int
    covered_seq: int  # the highest bronze commit seen when it was made
    rows: int
    layout: int = LAYOUT  # how the rows are ordered (LAYOUT); another value is not read

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        return _instant(self.start_us), _instant(self.end_us)

    def stale(self, files: list[BronzeFile]) -> list[BronzeFile]:
        """The bronze files committed after it that may hold events of its day."""
        start, end = self.bounds()
        return [f for f in files if f.seq > self.covered_seq and f.overlaps(start, end)]


def _instant(epoch_us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=epoch_us)


def _epoch_us(instant: dt.datetime) -> int:
    return (instant - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


class ReportDays:
    def __init__(self, root: str | Path) -> None:
        if "://" in str(root):
            raise ValueError(f"QP_LAKE_DIR={str(root)!r}: report days need a local or mounted path")
        self.root = Path(root)

    def folder(self, topic: str) -> Path:
        return self.root / REPORT_DAYS_DIR / f"topic={topic}"

    def path(self, topic: str, day: dt.date) -> Path:
        return self.folder(topic) / f"date={day.isoformat()}.parquet"

    def info(self, topic: str, day: dt.date) -> ReportDayInfo | None:
        """The footer of the topic's report day, None when there is none (or it cannot be read: then bronze
        serves the day)."""
        try:
            meta = pq.read_metadata(self.path(topic, day)).metadata or {}
            return ReportDayInfo(**json.loads(meta[_META_KEY.encode()]))
        except (OSError, KeyError, TypeError, ValueError):
            return None

    def days(self, topic: str) -> list[dt.date]:
        folder = self.folder(topic)
        if not folder.is_dir():
            return []
        names = (entry.name for entry in os.scandir(folder))
        return sorted(
            dt.date.fromisoformat(name[5:15])
            for name in names
            if name.startswith("date=") and name.endswith(".parquet")
        )

    def usable(self, topic: str, day: dt.date, timezone: str, files: list[BronzeFile]) -> Path | None:
        """The report day's path when it can stand for bronze: made for this day of `timezone` and no later
        bronze commit may touch the day; else None."""
        info = self.info(topic, day)
        if info is None:
            return None
        start, end = day_bounds(day, timezone)
        if info.layout != LAYOUT or info.bounds() != (start, end) or info.stale(files):
            return None
        return self.path(topic, day)

    def out_of_date(
        self, topic: str, timezone: str, files: list[BronzeFile], days: list[dt.date] | None = None
    ) -> dict[dt.date, int]:
        """The topic's report days (`days`, default all of them) that cannot stand for bronze (`usable`), each
        with the highest bronze commit that makes it stale (its own covered_seq when it is stale for another
        reason: another time zone or layout, an unreadable file)."""
        found = {}
        for day in self.days(topic) if days is None else days:
            if self.usable(topic, day, timezone, files) is None:
                info = self.info(topic, day)
                later = info.stale(files) if info else []
                found[day] = max([f.seq for f in later], default=info.covered_seq if info else 0)
        return found

    # --- making one ----------------------------------------------------------------------------------------

    def compact(
        self,
        topic: str,
        day: dt.date,
        timezone: str,
        files: list[BronzeFile],
        chunk_rows: int = CHUNK_ROWS,
    ) -> ReportDayInfo:
        """Write the report day of `day` from `files` (the topic's committed bronze files, as listed before
        this call) and return its footer. Memory follows `chunk_rows`, not the day."""
        start, end = day_bounds(day, timezone)
        rows = scan_window_parts(files, start, end).lazy()
        later = later_copies(rows, timezone)
        minutes = minute_rows(rows)
        info = ReportDayInfo(
            topic=topic,
            day=day.isoformat(),
            timezone=timezone,
            start_us=_epoch_us(start),
            end_us=_epoch_us(end),
            covered_seq=max((f.seq for f in files), default=0),
            rows=int(minutes["rows"].sum() or 0) - later.height,
        )
        chunks = time_slices(minutes, start, end, chunk_rows) if minutes.height else []
        source = partial(_sorted_chunks, files, chunks, later)
        with self._locked(topic):
            written = self.folder(topic) / f".{day.isoformat()}.{uuid.uuid4().hex}.tmp"
            try:
                register_io_source(source, schema=REPORT_DAY_SCHEMA).sink_parquet(
                    written,
                    # lz4: read back ~1 CPU-s faster than zstd per 30M exported rows (7.5-7.8 vs 8.5-9.4),
                    # at 1.9x the size (2.7 GiB for a 100M day against 1.5)
                    compression="lz4",
                    row_group_size=ROW_GROUP_ROWS,
                    metadata={_META_KEY: json.dumps(asdict(info))},
                )
                replace_durably(written, self.path(topic, day))
            finally:
                written.unlink(missing_ok=True)
        return info

    @contextmanager
    def _locked(self, topic: str) -> Iterator[None]:
        folder = self.folder(topic)
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(folder / ".lock"):
            # Files of writers that died: safe to delete, every writer holds this lock.
            for entry in os.scandir(folder):
                if entry.name.endswith(".tmp"):
                    os.unlink(entry.path)
            yield


def _sorted_chunks(
    files: list[BronzeFile],
    chunks: list[tuple[dt.datetime, dt.datetime]],
    later: pl.DataFrame,
    with_columns: list[str] | None,
    predicate: pl.Expr | None,
    n_rows: int | None,
    batch_size: int | None,
) -> Iterator[pl.DataFrame]:
    """The Python source behind the report day's LazyFrame: chunk by chunk, each sorted; the next chunk is
    read and sorted while this one is written, so at most two are held."""
    loads = [partial(sorted_chunk, scan_window(files, *chunk), later) for chunk in chunks]
    yield from source_frames(
        prefetched(loads, "qp-report-day"), with_columns, predicate, n_rows, ROW_GROUP_ROWS
    )
