"""Independent recomputations that the asset checks compare the stored tables with."""

from __future__ import annotations

import datetime as dt

import polars as pl

from quarantine_platform.transforms.notifications import MESSAGE_KEY, WHATSAPP, local_day_start, message_key


def duplicate_offsets(events: pl.LazyFrame) -> int:
    """How many (topic, partition, offset) appear more than once among `events`."""
    return int(
        events.group_by("topic", "partition", "offset")
        .len()
        .filter(pl.col("len") > 1)
        .select(pl.col("len").sum())
        .collect()
        .item()
        or 0
    )


def overlapping_files(ranges: pl.DataFrame) -> pl.DataFrame:
    """The files (topic, partition, file, first, last: the offsets each really holds) whose offsets reach
    into those of another file of the same partition: two files that could hold the same offset. Files are
    disjoint when, in order of their first offset, each starts past the highest offset before it."""
    reached = pl.col("last").cum_max().shift(1).over("topic", "partition", order_by="first")
    return ranges.filter(pl.col("first") <= reached).sort("topic", "partition", "first")


def distinct_whatsapp_per_minute(
    events: pl.LazyFrame, start: dt.datetime, end: dt.datetime, timezone: str
) -> pl.DataFrame:
    """Per minute of [start, end): bronze's distinct WhatsApp notifications, a message_id counting in the
    minute of its first copy of the day. Written with sort + unique on message_id, not like the asset's
    transform. Of the day before the window, only the rows whose message key is one of the window's are read
    in full (equal message_ids have equal keys, so no earlier copy is missed): a minute's check reads the
    day's 8-byte keys, not its message_ids."""
    day_start = local_day_start(start, timezone)
    day = events.filter((pl.col("event_time") >= day_start) & (pl.col("event_time") < end))
    if MESSAGE_KEY not in day.collect_schema():
        day = day.with_columns(message_key(pl.col("message_id")))
    window_keys = day.filter(pl.col("event_time") >= start).select(MESSAGE_KEY).unique()
    firsts = (
        day.join(window_keys.collect(engine="streaming").lazy(), on=MESSAGE_KEY, how="semi")
        .with_columns(day=pl.col("event_time").dt.convert_time_zone(timezone).dt.date())
        .sort("event_time", "partition", "offset")
        .unique(subset=["day", "message_id"], keep="first", maintain_order=True)
    )
    return (
        firsts.filter((pl.col("event_time") >= start) & (pl.col("channel").str.to_lowercase() == WHATSAPP))
        .group_by(minute=pl.col("event_time").dt.truncate("1m").dt.replace_time_zone(None))
        .agg(expected=pl.col("message_id").n_unique().cast(pl.Int64))
        .collect()
    )
