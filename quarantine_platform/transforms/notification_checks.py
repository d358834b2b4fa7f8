"""Independent recomputations that the asset checks compare the stored tables with."""

from __future__ import annotations

import datetime as dt

import polars as pl

from quarantine_platform.transforms.notifications import WHATSAPP, local_day_start


def duplicate_offsets(events: pl.LazyFrame) -> int:
    """How many (topic, partition, offset) appear more than once in bronze."""
    return int(
        events.group_by("topic", "partition", "offset")
        .len()
        .filter(pl.col("len") > 1)
        .select(pl.col("len").sum())
        .collect()
        .item()
        or 0
    )


def distinct_whatsapp_per_minute(
    events: pl.LazyFrame, start: dt.datetime, end: dt.datetime, timezone: str
) -> pl.DataFrame:
    """Per minute of [start, end): bronze's distinct WhatsApp notifications, a message_id counting in the
    minute of its first copy of the day. Written with sort + unique, not like the asset's transform."""
    day_start = local_day_start(start, timezone)
    firsts = (
        events.filter((pl.col("event_time") >= day_start) & (pl.col("event_time") < end))
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
