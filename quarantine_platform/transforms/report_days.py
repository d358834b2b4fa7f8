"""A local day of one topic's notifications laid out for the detailed report: the day's first copies (the
rows the report and billing keep), only the report's columns, in time chunks of at most a given number of
rows (cut at minute boundaries), each chunk sorted by (customer_id, event_time, partition, offset). One
customer's rows are then a few contiguous runs, one per chunk, that follow each other in report order, so
exporting a window reads only that customer's row groups and streams them to the writer without sorting.

Chunks keep the work bounded: each is read from the bronze files that may hold its minutes, sorted and
written before the next; the day is never held whole.
"""

from __future__ import annotations

import polars as pl

from quarantine_platform.transforms.notifications import EVENTS_SCHEMA

REPORT_DAY_COLUMNS = ("customer_id", "customer_name", "message_id", "payload", "event_datetime", "event_time")
REPORT_DAY_SCHEMA = pl.Schema({name: EVENTS_SCHEMA[name] for name in REPORT_DAY_COLUMNS})
# What the sort needs besides REPORT_DAY_COLUMNS: a message's place in the topic, the last tie-breakers.
SORT_COLUMNS = ("partition", "offset")
REPORT_DAY_ORDER = ("customer_id", "event_time", *SORT_COLUMNS)


def minute_rows(day: pl.LazyFrame) -> pl.DataFrame:
    """(minute, rows) of `day`, sorted by minute: where to cut it into chunks (`time_slices`)."""
    minutes = day.group_by(minute=pl.col("event_time").dt.truncate("1m")).agg(rows=pl.len().cast(pl.Int64))
    return minutes.collect(engine="streaming").sort("minute")


def sorted_chunk(chunk: pl.LazyFrame, later_copies: pl.DataFrame) -> pl.DataFrame:
    """A chunk's first copies (its rows without `later_copies`, from `notifications.later_copies`) sorted by
    REPORT_DAY_ORDER, with REPORT_DAY_COLUMNS only."""
    if later_copies.height:
        chunk = chunk.join(later_copies.lazy(), on=list(SORT_COLUMNS), how="anti")
    rows = chunk.select(*REPORT_DAY_COLUMNS, *SORT_COLUMNS).collect(engine="streaming")
    return rows.sort(REPORT_DAY_ORDER).select(REPORT_DAY_COLUMNS)
