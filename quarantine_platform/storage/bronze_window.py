"""The bronze files that hold events of a time window, chosen from the minutes each commit recorded in its
footer, so that billing a day or exporting a window reads that day's files and not the whole history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms.notifications import (
    EVENTS_SCHEMA,
    MESSAGE_KEY,
    message_key,
    message_key_recipe,
)

WINDOW_SCHEMA = pl.Schema({**EVENTS_SCHEMA, MESSAGE_KEY: pl.UInt64})


@dataclass(frozen=True)
class BronzeFile:
    path: str
    minutes: np.ndarray | None  # sorted epoch seconds of the event minutes present; None: not recorded
    key_recipe: str | None = None  # recipe of the file's message_key column; None: no such column
    # Whether its footer holds its rows per (customer, channel, name) (read with `read_customer_rows`; not
    # kept here: every file of the history is listed, and these totals are ~40 kB a file).
    has_customer_rows: bool = False
    seq: int = 0  # its commit's number (later commits have greater ones)

    def inside(self, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether every event of the file lies in [start, end) (a minute m holds events of [m, m + 60 s))."""
        if self.minutes is None or not len(self.minutes):
            return False
        return self.minutes[0] >= start.timestamp() and self.minutes[-1] + 60 <= end.timestamp()

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether the file may hold an event of [start, end)."""
        if self.minutes is None:
            return True
        first_minute = int(start.timestamp()) // 60 * 60
        i = int(np.searchsorted(self.minutes, first_minute, side="left"))
        return i < len(self.minutes) and self.minutes[i] < end.timestamp()


def bronze_files(lake: NotificationLake, topic: str | None) -> list[BronzeFile]:
    """Every committed events file (of one topic, or all), with its minutes read from the footer."""
    topics = [topic] if topic else lake.topics()
    found = []
    for name in topics:
        for committed in lake.committed(name):
            summary = lake.summary(committed)
            # No minutes recorded: no events, or a footer without the commit's metadata; scan it either way.
            minutes = np.sort(np.asarray(summary.minutes, dtype=np.int64)) if summary.minutes else None
            totals = summary.customer_rows is not None
            found.append(BronzeFile(str(committed.path), minutes, summary.key_recipe, totals, committed.seq))
    return found


@dataclass(frozen=True)
class WindowScan:
    """The events of [start, end) in two parts, so that a reader that needs no event time decodes none for
    most files: `inside`, the rows of the files wholly in the window (no filter needed); `edges`, the rows of
    the other files that may hold some, filtered on event_time. Both have WINDOW_SCHEMA. `inside_files` are
    the files behind `inside` (whose footer totals a reader may use instead of their rows)."""

    start: dt.datetime
    end: dt.datetime
    inside: pl.LazyFrame
    edges: pl.LazyFrame
    inside_files: tuple[BronzeFile, ...] = ()

    def parts(self) -> list[pl.LazyFrame]:
        return [self.inside, self.edges]

    def lazy(self) -> pl.LazyFrame:
        return pl.concat(self.parts(), how="vertical")


def scan_window_parts(files: list[BronzeFile], start: dt.datetime, end: dt.datetime) -> WindowScan:
    """`scan_window` split by whether a file lies wholly in [start, end) (from the minutes in its footer)."""
    inside = [f for f in files if f.inside(start, end)]
    edges = [f for f in files if not f.inside(start, end)]
    return WindowScan(start, end, _scan(inside), scan_window(edges, start, end), tuple(inside))


def scan_files(files: list[BronzeFile]) -> pl.LazyFrame:
    """All rows of `files` with their message_key (WINDOW_SCHEMA), no time filter."""
    return _scan(files)


def scan_window(files: list[BronzeFile], start: dt.datetime, end: dt.datetime) -> pl.LazyFrame:
    """The events of [start, end) from the files that may hold some (row groups are pruned further by the
    scan's statistics), with their `message_key` (WINDOW_SCHEMA): read from the files whose keys were made
    the way this process makes them, computed from message_id for the others (files written before the
    column existed, or by another Polars version), so that equal message_ids always have equal keys."""
    events = _scan([f for f in files if f.overlaps(start, end)])
    return events.filter((pl.col("event_time") >= start) & (pl.col("event_time") < end))


def _scan(paths: list[BronzeFile]) -> pl.LazyFrame:
    """All rows of `paths` with their message_key (WINDOW_SCHEMA), see `scan_window`."""
    if not paths:
        return pl.LazyFrame(schema=WINDOW_SCHEMA)
    recipe = message_key_recipe()
    keyed = [f.path for f in paths if f.key_recipe == recipe]
    unkeyed = [f.path for f in paths if f.key_recipe != recipe]
    scans = []
    if keyed:
        scans.append(pl.scan_parquet(keyed, schema=WINDOW_SCHEMA))
    if unkeyed:
        scans.append(
            pl.scan_parquet(unkeyed, schema=EVENTS_SCHEMA, extra_columns="ignore").with_columns(
                message_key(pl.col("message_id"))
            )
        )
    return scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical")
