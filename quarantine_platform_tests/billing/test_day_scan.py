"""A day read in two parts (files wholly inside it, unfiltered; the others, filtered), the parallel key sort,
and the export's skipped sort: each gives exactly what the plain path gives."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.exports import notifications as report_module
from quarantine_platform.exports.notifications import in_report_order, notifications_report
from quarantine_platform.storage.bronze_window import bronze_files, scan_window, scan_window_parts
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms import notifications
from quarantine_platform.transforms.billing import day_bounds, whatsapp_day_counts
from quarantine_platform.transforms.notifications import repeated_values
from quarantine_platform_tests.billing.bronze import TOPIC, commit, event

DAY = dt.date(2020, 2, 3)


def _days_of_bronze(root: Path, seed: int) -> None:
    """Three days of messages committed in time order, 150 per file and partition: most files lie inside a
    day, some straddle midnight (in UTC and in the other zones); re-sends later the same day, in another
    partition, sometimes with another channel or customer."""
    rnd = random.Random(seed)
    base = dt.datetime(2020, 2, 2, 0, tzinfo=dt.UTC)
    parts: dict[int, list[dict]] = {0: [], 1: []}
    for n in range(2400):
        when = base + dt.timedelta(seconds=n * 108 + rnd.randrange(100))
        cid = rnd.choice([1, 2, 3])
        record = event(
            cid,
            f"R{n}",
            when.isoformat(timespec="milliseconds"),
            channel=rnd.choice(["Whatsapp", "WhatsApp", "SMS"]),
            name=f"Nome {cid}-{rnd.randrange(2)}",
        )
        parts[rnd.randrange(2)].append(record)
        if rnd.random() < 0.1:
            later = when + dt.timedelta(seconds=rnd.choice([0, 60, 3600]))
            other = rnd.choice([{}, {"channel": "SMS"}, {"customer_id": 9}])
            parts[rnd.randrange(2)].append({**record, **other, "event_time": later})
    for partition, rows in parts.items():
        rows.sort(key=lambda r: r["event_time"])
        for start in range(0, len(rows), 150):
            commit(root, rows[start : start + 150], partition=partition)


def test_a_window_scan_holds_exactly_the_window_with_inner_files_unfiltered(tmp_path):
    _days_of_bronze(tmp_path, seed=1)
    files = bronze_files(NotificationLake(tmp_path), TOPIC)
    start, end = day_bounds(DAY, "America/Sao_Paulo")
    scan = scan_window_parts(files, start, end)
    inside = [f for f in files if f.inside(start, end)]
    assert 0 < len(inside) < len([f for f in files if f.overlaps(start, end)])
    order = ["partition", "offset"]
    plain = scan_window(files, start, end).collect()
    assert_frame_equal(scan.lazy().collect().sort(order), plain.sort(order))
    inner = scan.inside.collect()
    assert inner["event_time"].min() >= start and inner["event_time"].max() < end
    assert inner.height == sum(pl.read_parquet(f.path).height for f in inside)


def test_a_file_ending_in_the_last_minute_of_the_window_is_not_inside_it(tmp_path):
    commit(tmp_path, [event(1, "a", "2020-02-03T10:00:00+00:00"), event(1, "b", "2020-02-03T10:59:30+00:00")])
    commit(tmp_path, [event(1, "c", "2020-02-03T10:10:00+00:00"), event(1, "d", "2020-02-03T11:00:00+00:00")])
    first, second = bronze_files(NotificationLake(tmp_path), TOPIC)
    start, end = dt.datetime(2020, 2, 3, 10, tzinfo=dt.UTC), dt.datetime(2020, 2, 3, 11, tzinfo=dt.UTC)
    assert first.inside(start, end) and not second.inside(start, end)
    assert not first.inside(start + dt.timedelta(seconds=1), end)  # 10:00:00 is before the window
    ids = scan_window_parts([first, second], start, end).lazy().collect()["message_id"].sort().to_list()
    assert ids == ["a", "b", "c"]


@pytest.mark.parametrize("zone", ["UTC", "America/Sao_Paulo", "Asia/Kolkata"])
def test_billing_a_window_scan_equals_billing_the_filtered_events(tmp_path, zone):
    _days_of_bronze(tmp_path, seed=2)
    lake = NotificationLake(tmp_path)
    files = bronze_files(lake, TOPIC)
    for day in (dt.date(2020, 2, 2), DAY, dt.date(2020, 2, 4)):
        expected = whatsapp_day_counts(lake.scan_events(), day, zone)
        assert expected.height > 0
        window = scan_window_parts(files, *day_bounds(day, zone))
        assert_frame_equal(whatsapp_day_counts(window, day, zone), expected)


def test_a_window_scan_of_another_window_is_refused(tmp_path):
    _days_of_bronze(tmp_path, seed=3)
    files = bronze_files(NotificationLake(tmp_path), TOPIC)
    start, end = day_bounds(DAY, "UTC")
    with pytest.raises(ValueError, match="not the day 2020-02-03"):
        whatsapp_day_counts(scan_window_parts(files, start, end), DAY, "America/Sao_Paulo")


def test_keys_sorted_in_two_threads_give_the_same_repeated_values(monkeypatch):
    rng = np.random.default_rng(4)
    keys = rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64)
    edges = np.array([0, 0, 2**64 - 1, 2**64 - 1], dtype=np.uint64)
    values = np.concatenate([keys, keys[:300], keys[:5], edges])
    rng.shuffle(values)
    series = pl.Series("message_key", values, dtype=pl.UInt64)
    expected = pl.Series("message_key", np.unique(np.concatenate([keys[:300], edges])))
    single = repeated_values(series)
    monkeypatch.setattr(notifications, "PARALLEL_SORT_MIN", 1)
    assert_frame_equal(single.to_frame(), expected.to_frame())
    assert_frame_equal(repeated_values(series).to_frame(), expected.to_frame())
    same = pl.Series("message_key", [7] * 10, dtype=pl.UInt64)  # a run of equal values across the middle
    assert repeated_values(same).to_list() == [7]
    assert repeated_values(pl.Series("message_key", [3, 1, 2], dtype=pl.UInt64)).to_list() == []
    # one copy on each side of the middle: found across the two halves
    assert repeated_values(pl.Series("message_key", [5, 3, 1, 4, 3, 2], dtype=pl.UInt64)).to_list() == [3]
    assert repeated_values(pl.Series("message_key", [9], dtype=pl.UInt64)).to_list() == []


def test_report_order_is_event_time_then_partition_then_offset():
    at = dt.datetime(2020, 2, 3, 10, tzinfo=dt.UTC)
    later = at + dt.timedelta(microseconds=1)

    def rows(*values: tuple[dt.datetime, int, int]) -> pl.DataFrame:
        return pl.DataFrame(
            values,
            schema={"event_time": pl.Datetime("us", "UTC"), "partition": pl.Int32, "offset": pl.Int64},
            orient="row",
        )

    assert in_report_order(rows())
    assert in_report_order(rows((at, 1, 5), (at, 1, 6), (at, 2, 0), (later, 0, 0)))
    assert not in_report_order(rows((later, 0, 0), (at, 1, 5)))
    assert not in_report_order(rows((at, 2, 0), (at, 1, 9)))
    assert not in_report_order(rows((at, 1, 6), (at, 1, 5)))


def test_the_export_is_the_same_whether_a_slice_is_sorted_or_found_in_order(tmp_path, monkeypatch):
    _days_of_bronze(tmp_path, seed=5)
    start, end = day_bounds(DAY, "UTC")
    monkeypatch.setattr(report_module, "SLICE_ROWS", 100)

    def export() -> pl.DataFrame:
        return notifications_report(str(tmp_path), TOPIC, 1, start, end, "UTC").collect()

    found = export()
    monkeypatch.setattr(report_module, "in_report_order", lambda frame: False)
    assert_frame_equal(found, export())
    events = NotificationLake(tmp_path).scan_events().filter(pl.col("customer_id") == 1)
    times = pl.col("event_time")
    firsts = (
        events.filter(times.is_between(start, end, closed="left"))
        .sort("event_time", "partition", "offset")
        .unique("message_id", keep="first", maintain_order=True)
        .select(found.columns)
        .collect()
    )
    assert_frame_equal(found, firsts)
