"""The notification checks: their independent recomputations, and each check failing on bad stored data."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from quarantine_platform.assets.keys import COUNTS
from quarantine_platform.assets.notification_checks import (
    bronze_offsets_unique,
    counts_key_unique,
    counts_match_bronze,
)
from quarantine_platform.assets.notifications import notification_counts_minutely
from quarantine_platform.partitions import minute_key
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.warehouse import WarehouseResource, open_warehouse
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.storage.notification_warehouse import COUNTS_TABLE
from quarantine_platform.transforms.notification_checks import distinct_whatsapp_per_minute, overlapping_files
from quarantine_platform.transforms.notifications import DEAD_LETTERS_SCHEMA
from quarantine_platform_tests.notifications.test_minute_counts import T0, events

UTC = dt.UTC


def expected(rows: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "minute": [dt.datetime.fromisoformat(f"2020-02-03T{m}:00") for m, _ in rows],
            "expected": [n for _, n in rows],
        },
        schema={"minute": pl.Datetime("us"), "expected": pl.Int64},
    )


STREAM = [
    (0, 0, "a", 1, "Whatsapp", "13:58:00"),  # before the window: its re-send below is not counted
    (0, 1, "b", 1, "WhatsApp", "14:00:10"),
    (0, 2, "a", 1, "Whatsapp", "14:00:20"),
    (1, 0, "c", 2, "SMS", "14:00:30"),  # not WhatsApp
    (1, 1, "d", 2, "Whatsapp", "14:01:05"),
    (1, 2, "b", 1, "Whatsapp", "14:01:30"),  # re-send within the window: counted in 14:00 only
]


def test_distinct_whatsapp_per_minute_counts_each_message_id_in_the_minute_of_its_first_copy():
    out = distinct_whatsapp_per_minute(events(STREAM), T0, T0 + dt.timedelta(minutes=2), "UTC")
    assert_frame_equal(out.sort("minute"), expected([("14:00", 1), ("14:01", 1)]))


def test_distinct_whatsapp_per_minute_keeps_two_ids_that_share_a_key_apart():
    collided = events(STREAM).with_columns(message_key=pl.lit(7, dtype=pl.UInt64))
    out = distinct_whatsapp_per_minute(collided, T0, T0 + dt.timedelta(minutes=2), "UTC")
    assert_frame_equal(out.sort("minute"), expected([("14:00", 1), ("14:01", 1)]))


def lake_with(root: Path, rows: list[tuple[int, int, str, int, str, str]], shift: dt.timedelta) -> None:
    """A lake holding `rows`, moved by `shift` (minute partitions exist for recent minutes only)."""
    lake = NotificationLake(str(root))
    frame = events(rows).with_columns(pl.col("event_time") + shift).collect()
    for partition in sorted(set(frame["partition"])):
        part = frame.filter(pl.col("partition") == partition)
        lake.commit(
            "n",
            partition,
            int(part["offset"].min()),
            int(part["offset"].max()) + 1,
            part,
            pl.DataFrame(schema=DEAD_LETTERS_SCHEMA),
        )


def test_the_counts_checks_pass_on_the_counted_minutes_and_fail_once_the_stored_counts_are_wrong(
    platform_env, tmp_path
):
    shift = (dt.datetime.now(UTC) - dt.timedelta(hours=1)).replace(second=0, microsecond=0) - T0
    lake_with(tmp_path / "lake", STREAM, shift)
    lake = LakeResource(root=str(tmp_path / "lake"))
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    result = dg.materialize(
        [notification_counts_minutely],
        resources={"lake": lake, "warehouse": warehouse},
        partition_key=minute_key(T0 + shift),
        instance=dg.DagsterInstance.ephemeral(),
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"counts_key_unique": True, "counts_match_bronze": True}
    assert all(e.asset_key == COUNTS for e in result.get_asset_check_evaluations())

    con = open_warehouse(warehouse.path)
    try:  # one notification more than bronze holds, then one (minute, customer, channel) twice
        con.execute(f"update {COUNTS_TABLE} set notifications = notifications + 1 where customer_id = 1")
        con.execute(f"insert into {COUNTS_TABLE} select * from {COUNTS_TABLE} where customer_id = 1")
    finally:
        con.close()
    wrong = counts_match_bronze(lake, warehouse)
    assert not wrong.passed and wrong.metadata["minutes_wrong"].value == 1
    duplicated = counts_key_unique(warehouse)
    assert not duplicated.passed and duplicated.metadata["duplicate_keys"].value == 1


def test_overlapping_files_are_those_reaching_into_an_earlier_file_of_their_partition():
    ranges = pl.DataFrame(
        {
            "topic": ["n", "n", "n", "n", "other"],
            "partition": [0, 0, 0, 1, 0],
            "file": ["a", "b", "c", "d", "e"],
            "first": [0, 10, 15, 5, 5],
            "last": [9, 19, 25, 100, 12],
        }
    )
    assert overlapping_files(ranges)["file"].to_list() == ["c"]  # 15..25 reaches into b's 10..19
    assert overlapping_files(ranges.filter(pl.col("file") != "c")).is_empty()


def test_the_bronze_check_fails_on_an_offset_twice_in_a_written_file_or_in_two_files(tmp_path):
    store = NotificationLake(str(tmp_path / "lake"))
    rows = [(0, o, f"m{o}", 1, "Whatsapp", "14:00:01") for o in range(4)]
    first = store.commit("n", 0, 0, 4, events(rows).collect(), pl.DataFrame(schema=DEAD_LETTERS_SCHEMA))
    written = [c.name for c in first]
    passed = bronze_offsets_unique(store, "n", written)
    assert passed.passed and passed.metadata["files_written_checked"].value == 1

    twice = events([(0, 4, "x", 1, "Whatsapp", "14:00:02"), (0, 4, "x", 1, "Whatsapp", "14:00:02")])
    again = store.commit("n", 0, 4, 5, twice.collect(), pl.DataFrame(schema=DEAD_LETTERS_SCHEMA))
    within = bronze_offsets_unique(store, "n", [c.name for c in again])
    assert not within.passed and within.metadata["duplicate_offsets_in_files_written"].value == 2

    # A file whose name claims offsets 10..20 but that holds 0..3 again: caught by its own statistics.
    copy = store.events_dir("n") / "000000000009_p00000_00000000000000000010-00000000000000000020.parquet"
    shutil.copy(first[0].path, copy)
    across = bronze_offsets_unique(store, "n", [])
    assert not across.passed and across.metadata["overlapping_files"].value == 1
