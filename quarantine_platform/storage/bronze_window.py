"""The bronze files that hold events of a time window, chosen from the minutes each commit recorded in its
footer, so that billing a day or exporting a window reads that day's files and not the whole history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms.notifications import EVENTS_SCHEMA


@dataclass(frozen=True)
class BronzeFile:
    path: str
    minutes: np.ndarray | None  # sorted epoch seconds of the event minutes present; None: not recorded

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
            found.append(BronzeFile(str(committed.path), minutes))
    return found


def scan_window(files: list[BronzeFile], start: dt.datetime, end: dt.datetime) -> pl.LazyFrame:
    """The events of [start, end) from the files that may hold some (row groups are pruned further by the
    scan's statistics)."""
    paths = [f.path for f in files if f.overlaps(start, end)]
    if not paths:
        return pl.LazyFrame(schema=EVENTS_SCHEMA)
    return pl.scan_parquet(paths, schema=EVENTS_SCHEMA).filter(
        (pl.col("event_time") >= start) & (pl.col("event_time") < end)
    )
