"""The bronze commit protocol: no offset stored twice, interrupted commits leave no trace."""

from __future__ import annotations

import json

import polars as pl

from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms.notifications import parse_notifications


def batch(partition: int, offsets: range, bad: set[int] = frozenset()):
    values = []
    for o in offsets:
        if o in bad:
            values.append(b"oops")
        else:
            values.append(
                json.dumps(
                    {
                        "customer_id": 1,
                        "message_id": f"{partition}-{o}",
                        "customer_name": "A",
                        "channel": "Whatsapp",
                        "payload": "p",
                        "event_datetime": f"2020-02-03T14:{o % 60:02d}:00+00:00",
                    }
                ).encode()
            )
    return parse_notifications(values, [partition] * len(values), list(offsets), "t")


def test_overlapping_commits_store_each_offset_once(tmp_path):
    lake = NotificationLake(tmp_path)
    first = batch(0, range(0, 100), bad={5})
    second = batch(0, range(50, 150), bad={120})
    assert [(c.start, c.end) for c in lake.commit("t", 0, 0, 100, first.events, first.dead_letters)] == [
        (0, 100)
    ]
    assert [(c.start, c.end) for c in lake.commit("t", 0, 50, 150, second.events, second.dead_letters)] == [
        (100, 150)
    ]
    assert lake.commit("t", 0, 0, 150, second.events, second.dead_letters) == []  # a re-run is a no-op
    stored = lake.scan_events("t").collect()
    assert stored["offset"].sort().to_list() == [o for o in range(150) if o not in (5, 120)]
    assert lake.scan_dead_letters("t").collect()["offset"].to_list() == [5, 120]
    assert lake.coverage("t") == {0: [(0, 150)]}


def test_commit_summaries_tell_the_minutes_and_latest_event_time(tmp_path):
    lake = NotificationLake(tmp_path)
    b = batch(2, range(0, 3))
    (c,) = lake.commit("t", 2, 0, 3, b.events, b.dead_letters)
    (s,) = lake.summaries_since("t", 0)
    assert (s.events, s.dead_letters, len(s.minutes)) == (3, 0, 3)
    assert lake.summaries_since("t", c.seq) == []


def test_a_commit_interrupted_before_its_events_file_leaves_no_trace(tmp_path):
    lake = NotificationLake(tmp_path)
    b = batch(0, range(0, 10), bad={3})
    dead_dir = lake.dead_letters_dir("t")
    dead_dir.mkdir(parents=True)
    # What a run killed mid-commit leaves: a temporary file and a dead-letter file without its events twin.
    b.dead_letters.write_parquet(
        dead_dir / "000000000001_p00000_00000000000000000000-00000000000000000010.parquet"
    )
    (lake.events_dir("t")).mkdir(parents=True)
    (lake.events_dir("t") / ".x.parquet.123.tmp").write_bytes(b"partial")
    assert lake.scan_dead_letters("t").collect().is_empty()
    lake.commit("t", 0, 0, 10, b.events, b.dead_letters)
    assert lake.scan_dead_letters("t").collect()["offset"].to_list() == [3]
    assert not list(lake.events_dir("t").glob("*.tmp"))
    assert pl.scan_parquet(str(lake.events_dir("t") / "*.parquet")).collect().height == 9
