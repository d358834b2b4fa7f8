"""Minute counts: deduplication by message_id, channels, late events, the day of the deduplication."""

from __future__ import annotations

import datetime as dt

import polars as pl
from polars.testing import assert_frame_equal

from quarantine_platform.transforms import notifications
from quarantine_platform.transforms.notifications import EVENTS_SCHEMA, minute_counts, time_slices

UTC = dt.UTC


def events(rows: list[tuple[int, int, str, int, str, str]]) -> pl.LazyFrame:
    """(partition, offset, message_id, customer_id, channel, "HH:MM:SS" on 2020-02-03 UTC)."""
    return (
        pl.DataFrame(
            {
                "topic": ["n"] * len(rows),
                "partition": [r[0] for r in rows],
                "offset": [r[1] for r in rows],
                "customer_id": [r[3] for r in rows],
                "message_id": [r[2] for r in rows],
                "customer_name": [f"C{r[3]}" for r in rows],
                "channel": [r[4] for r in rows],
                "payload": ["p"] * len(rows),
                "event_datetime": [f"2020-02-03T{r[5]}+00:00" for r in rows],
                "event_time": [dt.datetime.fromisoformat(f"2020-02-03T{r[5]}+00:00") for r in rows],
            }
        )
        .cast({"partition": pl.Int32, "event_time": pl.Datetime("us", "UTC")})
        .select(EVENTS_SCHEMA.names())
        .lazy()
    )


def counts(rows: list[tuple[str, int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "minute": pl.Series(
                [dt.datetime.fromisoformat(f"2020-02-03T{r[0]}:00+00:00") for r in rows],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "customer_id": [r[1] for r in rows],
            "customer_name": [f"C{r[1]}" for r in rows],
            "channel": [r[2] for r in rows],
            "notifications": [r[3] for r in rows],
        },
        schema={
            "minute": pl.Datetime("us", "UTC"),
            "customer_id": pl.Int64,
            "customer_name": pl.String,
            "channel": pl.String,
            "notifications": pl.Int64,
        },
    )


T0 = dt.datetime(2020, 2, 3, 14, 0, tzinfo=UTC)


def test_counts_per_minute_customer_and_channel_with_channels_case_insensitive():
    ev = events(
        [
            (0, 0, "a", 1, "Whatsapp", "14:00:01"),
            (0, 1, "b", 1, "WhatsApp", "14:00:59"),
            (1, 0, "c", 2, "SMS", "14:00:30"),
            (1, 1, "d", 1, "Whatsapp", "14:01:00"),
        ]
    )
    out = minute_counts(ev, T0, T0 + dt.timedelta(minutes=2), "UTC")
    assert_frame_equal(
        out, counts([("14:00", 1, "whatsapp", 2), ("14:00", 2, "sms", 1), ("14:01", 1, "whatsapp", 1)])
    )


def test_a_message_id_resent_on_another_partition_or_later_that_day_counts_once_in_its_first_minute():
    ev = events(
        [
            (0, 0, "a", 1, "Whatsapp", "14:00:01"),
            (3, 9, "a", 1, "Whatsapp", "14:00:01"),  # producer retry on another partition
            (0, 5, "a", 1, "Whatsapp", "14:07:00"),  # re-sent minutes later
            (0, 6, "b", 1, "Whatsapp", "14:07:10"),
        ]
    )
    out = minute_counts(ev, T0, T0 + dt.timedelta(minutes=10), "UTC")
    assert_frame_equal(out, counts([("14:00", 1, "whatsapp", 1), ("14:07", 1, "whatsapp", 1)]))
    # Counting only the later minute still knows the copy from earlier in the day.
    later = minute_counts(ev, T0 + dt.timedelta(minutes=7), T0 + dt.timedelta(minutes=8), "UTC")
    assert_frame_equal(later, counts([("14:07", 1, "whatsapp", 1)]))


def test_a_late_event_changes_its_minute_when_counted_again():
    before = events([(0, 0, "a", 1, "Whatsapp", "14:00:01")])
    after = events([(0, 0, "a", 1, "Whatsapp", "14:00:01"), (0, 1, "late", 1, "Whatsapp", "14:00:40")])
    window = (T0, T0 + dt.timedelta(minutes=1))
    assert minute_counts(before, *window, "UTC")["notifications"].to_list() == [1]
    assert minute_counts(after, *window, "UTC")["notifications"].to_list() == [2]


def test_the_deduplication_day_follows_the_time_zone():
    # 02:30 and 03:30 UTC are the same day in UTC (the re-send is a duplicate), but in São Paulo 02:30 UTC is
    # 23:30 of the day before: there the 03:30 copy is the first of its day and counts.
    ev = events([(0, 0, "a", 1, "Whatsapp", "02:30:00"), (0, 1, "a", 1, "Whatsapp", "03:30:00")])
    start, end = dt.datetime(2020, 2, 3, 3, 30, tzinfo=UTC), dt.datetime(2020, 2, 3, 3, 31, tzinfo=UTC)
    assert minute_counts(ev, start, end, "UTC").is_empty()
    assert minute_counts(ev, start, end, "America/Sao_Paulo")["notifications"].to_list() == [1]


def test_an_empty_window_gives_an_empty_table():
    out = minute_counts(events([]), T0, T0 + dt.timedelta(minutes=1), "UTC")
    assert out.is_empty() and out.columns == [
        "minute",
        "customer_id",
        "customer_name",
        "channel",
        "notifications",
    ]


def test_two_message_ids_that_share_a_stored_key_both_count():
    # A 64-bit hash collision: the stored key says "same message", the message_ids say otherwise.
    ev = events(
        [
            (0, 0, "a", 1, "Whatsapp", "14:00:01"),
            (0, 1, "b", 1, "Whatsapp", "14:00:02"),
            (0, 2, "a", 1, "Whatsapp", "14:00:03"),  # a real re-send of "a"
        ]
    ).with_columns(message_key=pl.lit(42, dtype=pl.UInt64))
    out = minute_counts(ev, T0, T0 + dt.timedelta(minutes=1), "UTC")
    assert_frame_equal(out, counts([("14:00", 1, "whatsapp", 2)]))


def test_a_later_copy_in_one_topic_does_not_hide_the_same_offset_of_another_topic():
    first = events([(0, 0, "a", 1, "Whatsapp", "14:00:01"), (0, 1, "a", 1, "Whatsapp", "14:00:05")])
    other = events([(0, 1, "z", 2, "Whatsapp", "14:00:09")]).with_columns(topic=pl.lit("other"))
    out = minute_counts(pl.concat([first, other]), T0, T0 + dt.timedelta(minutes=1), "UTC")
    assert_frame_equal(out, counts([("14:00", 1, "whatsapp", 1), ("14:00", 2, "whatsapp", 1)]))


def test_a_long_window_counted_in_slices_gives_the_same_table(monkeypatch):
    # A day's backfill is grouped a few rows at a time (memory follows the slice): a re-send whose first
    # copy is in an earlier slice still counts once, and the latest name of a minute is kept.
    monkeypatch.setattr(notifications, "COUNT_SLICE_ROWS", 2)
    ev = events(
        [
            (0, 0, "a", 1, "Whatsapp", "14:00:01"),
            (0, 1, "b", 1, "Whatsapp", "14:00:02"),
            (0, 2, "c", 2, "SMS", "14:01:00"),
            (0, 3, "a", 1, "Whatsapp", "14:02:00"),  # re-send of the 14:00 message, two slices later
            (0, 4, "d", 1, "Whatsapp", "14:02:30"),
            (0, 5, "e", 1, "Whatsapp", "14:03:00"),
        ]
    )
    out = minute_counts(ev, T0, T0 + dt.timedelta(minutes=5), "UTC")
    assert_frame_equal(
        out,
        counts(
            [
                ("14:00", 1, "whatsapp", 2),
                ("14:01", 2, "sms", 1),
                ("14:02", 1, "whatsapp", 1),
                ("14:03", 1, "whatsapp", 1),
            ]
        ),
    )


def test_a_groups_name_is_that_of_its_latest_counted_event_when_a_customer_is_renamed(monkeypatch):
    # Customer 1 is renamed: each group takes the name of its latest counted row by event time, ties broken
    # by (topic, partition, offset); a later copy of a re-sent message is not counted and names nothing.
    # Customer 2 keeps one name. The same table whether the rows are grouped in one slice or one by one.
    rows = [
        (0, 0, "a", 1, "Whatsapp", "14:00:10", "Old"),
        (1, 0, "b", 1, "WhatsApp", "14:00:20", "New"),  # ties with the next row: partition 1 is later
        (0, 1, "c", 1, "whatsapp", "14:00:20", "Old"),
        (0, 2, "d", 2, "SMS", "14:00:30", "Two"),
        (0, 3, "e", 1, "Whatsapp", "14:01:05", "New"),
        (0, 4, "f", 1, "SMS", "14:01:06", "Old"),
        (2, 0, "e", 1, "Whatsapp", "14:01:50", "Newest"),  # a later copy of "e"
        (0, 5, "g", 1, "Whatsapp", "14:01:40", "Old"),
    ]
    ev = events([r[:6] for r in rows]).with_columns(customer_name=pl.Series([r[6] for r in rows]))
    expected = pl.DataFrame(
        {
            "minute": [T0, T0, T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=1)],
            "customer_id": [1, 2, 1, 1],
            "customer_name": ["New", "Two", "Old", "Old"],
            "channel": ["whatsapp", "sms", "sms", "whatsapp"],
            "notifications": [3, 1, 1, 2],
        },
        schema=notifications.COUNTS_SCHEMA,
    )
    window = (T0, T0 + dt.timedelta(minutes=2))
    assert_frame_equal(minute_counts(ev, *window, "UTC"), expected)
    monkeypatch.setattr(notifications, "COUNT_SLICE_ROWS", 1)  # one minute a slice
    assert_frame_equal(minute_counts(ev, *window, "UTC"), expected)
    monkeypatch.undo()
    # Other topics sort after "n": the tie at 14:00:20 then goes to topic "o" whatever its partition.
    other = ev.with_columns(
        topic=pl.when(pl.col("customer_name") == "Old").then(pl.lit("o")).otherwise(pl.col("topic"))
    )
    renamed = expected.with_columns(
        customer_name=pl.when(pl.col("customer_id") == 1).then(pl.lit("Old")).otherwise("customer_name")
    )
    assert_frame_equal(minute_counts(other, *window, "UTC"), renamed)


def test_time_slices_cut_at_minutes_so_that_each_slice_holds_at_most_the_rows_asked():
    minute = [T0 + dt.timedelta(minutes=m) for m in (0, 1, 2, 4)]
    per_minute = pl.DataFrame({"minute": minute, "rows": [3, 2, 5, 1]})
    end = T0 + dt.timedelta(minutes=10)
    assert time_slices(per_minute, T0, end, 5) == [
        (T0, minute[2]),  # 3 + 2 rows
        (minute[2], minute[3]),  # 5 rows
        (minute[3], end),
    ]
    # A minute alone above the limit is a slice of its own; a window without rows is one slice.
    assert time_slices(per_minute, T0, end, 2) == [
        (T0, minute[1]),
        (minute[1], minute[2]),
        (minute[2], minute[3]),
        (minute[3], end),
    ]
    assert time_slices(per_minute.clear(), T0, end, 5) == [(T0, end)]
