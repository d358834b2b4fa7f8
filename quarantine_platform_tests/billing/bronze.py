"""Bronze files with known rows for the billing and export tests, committed the way ingestion commits them."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import polars as pl

from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms.notifications import DEAD_LETTERS_SCHEMA, EVENTS_SCHEMA

TOPIC = "notifications"


def event(
    customer_id: int,
    message_id: str,
    when: str,
    channel: str = "Whatsapp",
    name: str | None = None,
    payload: str | None = None,
) -> dict:
    """One valid message; `when` is ISO 8601 with an offset, kept as received in event_datetime."""
    instant = dt.datetime.fromisoformat(when)
    assert instant.tzinfo is not None, "event times carry an offset"
    return {
        "customer_id": customer_id,
        "message_id": message_id,
        "customer_name": name or f"Cliente {customer_id}",
        "channel": channel,
        "payload": payload if payload is not None else f"mensagem {message_id}",
        "event_datetime": when,
        "event_time": instant.astimezone(dt.UTC),
    }


def commit(
    root: str | Path, events: list[dict] | pl.DataFrame, partition: int = 0, topic: str = TOPIC
) -> None:
    """Store `events` (dicts from `event`, or a frame of their columns) as the next offset range of
    `partition`, in the given order."""
    lake = NotificationLake(root)
    taken = lake.coverage(topic).get(partition, [])
    start = taken[-1][1] if taken else 0
    rows = events if isinstance(events, pl.DataFrame) else pl.DataFrame(events)
    frame = rows.with_columns(
        topic=pl.lit(topic),
        partition=pl.lit(partition, dtype=pl.Int32),
        offset=pl.int_range(pl.len(), dtype=pl.Int64) + start,
        event_time=pl.col("event_time").cast(pl.Datetime("us", "UTC")),
    ).select(EVENTS_SCHEMA.names())
    lake.commit(
        topic,
        partition,
        start,
        start + frame.height,
        frame.match_to_schema(EVENTS_SCHEMA),
        pl.DataFrame(schema=DEAD_LETTERS_SCHEMA),
    )


def many(customer_id: int, count: int, start: str, step_us: int, prefix: str = "M") -> pl.DataFrame:
    """`count` distinct WhatsApp messages of one customer, `step_us` microseconds apart from `start`, with
    payloads of ~100 characters (built vectorized, for the large-export tests)."""
    first = dt.datetime.fromisoformat(start).astimezone(dt.UTC)
    offsets = pl.int_range(count, eager=True, dtype=pl.Int64)
    times = (pl.lit(first) + pl.duration(microseconds=offsets * step_us)).dt.truncate("1ms")
    return pl.select(
        customer_id=pl.lit(customer_id, dtype=pl.Int64),
        message_id=pl.lit(prefix) + offsets.cast(pl.String).str.zfill(10),
        customer_name=pl.lit(f"Cliente {customer_id}"),
        channel=pl.lit("Whatsapp"),
        payload=pl.lit("Olá cliente, seja muito bem-vindo! Precisa de alguma ajuda? Seu protocolo é ")
        + offsets.cast(pl.String).str.zfill(20),
        event_time=times,
    ).with_columns(event_datetime=pl.col("event_time").dt.to_string("%Y-%m-%dT%H:%M:%S%.3f+00:00"))


def rows_and_peak(script: str, *args: str) -> tuple[int, int]:
    """Run `script` (Python source that prints "<rows> <peak MiB>") in a fresh interpreter with `args`."""
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows, peak = map(int, done.stdout.split())
    return rows, peak
