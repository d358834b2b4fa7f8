"""The events of a window, from files inside it, straddling its bounds and outside it: exactly its own."""

from __future__ import annotations

import datetime as dt

import polars as pl

from quarantine_platform.storage.bronze_window import bronze_files, scan_window
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform_tests.billing.bronze import commit, event

START = dt.datetime(2020, 2, 3, 10, 0, tzinfo=dt.UTC)
END = dt.datetime(2020, 2, 3, 11, 0, tzinfo=dt.UTC)


def test_a_window_holds_exactly_its_events_from_inner_and_straddling_files(tmp_path):
    commit(
        tmp_path,
        [event(1, "in-1", "2020-02-03T10:00:00+00:00"), event(1, "in-2", "2020-02-03T10:59:59+00:00")],
    )
    commit(
        tmp_path,
        [event(1, "before", "2020-02-03T09:59:59+00:00"), event(1, "in-3", "2020-02-03T10:30:00+00:00")],
    )
    commit(
        tmp_path,
        [event(1, "in-4", "2020-02-03T10:59:00+00:00"), event(1, "at-end", "2020-02-03T11:00:00+00:00")],
    )
    commit(tmp_path, [event(1, "later", "2020-02-03T12:00:00+00:00")])
    files = bronze_files(NotificationLake(tmp_path), None)
    ids = scan_window(files, START, END).select("message_id").collect()["message_id"].sort().to_list()
    assert ids == ["in-1", "in-2", "in-3", "in-4"]
    assert pl.Series(ids).is_unique().all()
