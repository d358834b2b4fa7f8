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


def test_a_range_committed_by_another_run_while_ours_was_staged_is_not_stored_twice(tmp_path, monkeypatch):
    """Files are written before the lock: a run that committed [0, 5) meanwhile leaves ours only [5, 10)."""
    lake, other = NotificationLake(tmp_path), NotificationLake(tmp_path)
    b = batch(0, range(0, 10), bad={2, 7})
    stage = NotificationLake._stage
    calls = []

    def stage_then_race(self, topic, partition, s, e, events, dead_letters):
        staged = stage(self, topic, partition, s, e, events, dead_letters)
        calls.append((s, e))
        if len(calls) == 1:  # the other run commits the first half before ours takes the lock
            monkeypatch.setattr(NotificationLake, "_stage", stage)
            other.commit("t", 0, 0, 5, b.events, b.dead_letters)
            monkeypatch.setattr(NotificationLake, "_stage", stage_then_race)
        return staged

    monkeypatch.setattr(NotificationLake, "_stage", stage_then_race)
    done = lake.commit("t", 0, 0, 10, b.events, b.dead_letters)
    assert calls == [(0, 10), (5, 10)]
    assert [(c.seq, c.start, c.end) for c in done] == [(2, 5, 10)]
    assert [(c.start, c.end) for c in lake.committed("t")] == [(0, 5), (5, 10)]
    assert sorted(lake.scan_events("t").collect()["offset"].to_list()) == [0, 1, 3, 4, 5, 6, 8, 9]
    assert sorted(lake.scan_dead_letters("t").collect()["offset"].to_list()) == [2, 7]
    leftovers = [p.name for d in (lake.events_dir("t"), lake.dead_letters_dir("t")) for p in d.iterdir()]
    assert not [name for name in leftovers if name.endswith(".tmp")]


def test_a_live_writers_staged_file_is_kept_and_a_dead_writers_removed(tmp_path):
    import os
    import subprocess
    import sys

    lake = NotificationLake(tmp_path)
    folder = lake.events_dir("t")
    folder.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    live = folder / f".p00001_0-10.{os.getpid()}.aa.tmp"  # another worker of this run, still writing
    gone = folder / f".p00001_0-10.{int(dead.stdout)}.bb.tmp"  # a writer that was killed
    live.write_bytes(b"half")
    gone.write_bytes(b"half")
    b = batch(0, range(0, 3))
    lake.commit("t", 0, 0, 3, b.events, b.dead_letters)
    assert live.exists() and not gone.exists()
