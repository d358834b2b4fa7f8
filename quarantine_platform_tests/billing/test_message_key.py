"""The `message_key` column of bronze files: written by every commit, read by billing and the export when its
recipe is this process's, recomputed from message_id otherwise; equal keys never merge different ids."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.exports.notifications import notifications_report
from quarantine_platform.storage import notification_lake
from quarantine_platform.storage.bronze_window import WINDOW_SCHEMA, bronze_files, scan_window
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms.billing import DAY_COUNTS_SCHEMA, day_bounds, whatsapp_day_counts
from quarantine_platform.transforms.notifications import EVENTS_SCHEMA, message_key, message_key_recipe
from quarantine_platform_tests.billing.bronze import TOPIC, commit, event

DAY = dt.date(2020, 2, 3)
PARTITION_0 = [
    event(11, "A1", "2020-02-03T10:00:00.000+00:00", name="Acme"),
    event(11, "A2", "2020-02-03T10:01:00.000+00:00", name="Acme"),
    event(11, "A3", "2020-02-03T10:02:00.000+00:00", channel="SMS", name="Acme"),
    event(22, "B1", "2020-02-03T10:03:00.000+00:00", name="Beta"),
]
PARTITION_1 = [
    event(11, "A1", "2020-02-03T10:05:00.000+00:00", name="Acme"),  # re-send across files
    event(11, "A3", "2020-02-03T10:06:00.000+00:00", name="Acme"),  # first copy SMS: not billed
    event(22, "B2", "2020-02-03T10:07:00.000+00:00", name="Beta"),
    event(22, "B2", "2020-02-03T10:08:00.000+00:00", name="Beta"),  # re-send in the same file
]
EXPECTED = pl.DataFrame([(11, "Acme", 2), (22, "Beta", 2)], schema=DAY_COUNTS_SCHEMA, orient="row")


def _events_files(root: Path) -> list[Path]:
    return sorted(NotificationLake(root).events_dir(TOPIC).glob("*.parquet"))


def _rewrite(path: Path, frame: pl.DataFrame, recipe: str | None) -> None:
    """Rewrite a committed file with `frame`, keeping its footer but for the key recipe (None: removed)."""
    info = json.loads(pq.read_metadata(path).metadata[b"quarantine_platform"])
    info.pop("message_key")
    if recipe is not None:
        info["message_key"] = recipe
    frame.write_parquet(path, metadata={"quarantine_platform": json.dumps(info)})


def _day_counts(root: Path) -> pl.DataFrame:
    return whatsapp_day_counts(
        scan_window(bronze_files(NotificationLake(root), TOPIC), *day_bounds(DAY, "UTC")), DAY, "UTC"
    )


def test_a_commit_stores_the_key_of_each_message_id_and_its_recipe(tmp_path):
    commit(tmp_path, PARTITION_0)
    (path,) = _events_files(tmp_path)
    stored = pl.read_parquet(path)
    assert stored.columns == [*EVENTS_SCHEMA.names(), "message_key"]
    assert (
        stored["message_key"].to_list()
        == stored.select(message_key(pl.col("message_id")))["message_key"].to_list()
    )
    assert bronze_files(NotificationLake(tmp_path), TOPIC)[0].key_recipe == message_key_recipe()
    # readers of events see the event columns only
    assert NotificationLake(tmp_path).scan_events().collect_schema() == EVENTS_SCHEMA
    assert_frame_equal(NotificationLake(tmp_path).scan_events().collect(), stored.drop("message_key"))


def test_billing_counts_the_same_with_stored_keys_old_files_and_another_recipe(tmp_path):
    commit(tmp_path, PARTITION_0, partition=0)
    commit(tmp_path, PARTITION_1, partition=1)
    assert_frame_equal(_day_counts(tmp_path), EXPECTED)
    old, other = _events_files(tmp_path)
    # A file written before the column existed: no key, no recipe.
    _rewrite(old, pl.read_parquet(old).drop("message_key"), None)
    # A file whose keys were made another way (another Polars version): trusting them would miss its
    # re-sends (B2 twice under two keys) and the one across files (A1 keyed differently in each file).
    other_keys = pl.int_range(pl.len(), dtype=pl.UInt64) + 1000
    _rewrite(other, pl.read_parquet(other).with_columns(message_key=other_keys), "another recipe")
    files = bronze_files(NotificationLake(tmp_path), TOPIC)
    assert [f.key_recipe for f in files] == [None, "another recipe"]
    window = scan_window(files, *day_bounds(DAY, "UTC"))
    assert window.collect_schema() == WINDOW_SCHEMA
    keys = window.select("message_id", "message_key").collect()
    assert_frame_equal(keys, keys.with_columns(message_key(pl.col("message_id"))))
    assert_frame_equal(_day_counts(tmp_path), EXPECTED)
    assert NotificationLake(tmp_path).scan_events().collect().height == len(PARTITION_0) + len(PARTITION_1)


def test_different_message_ids_with_the_same_key_both_count(tmp_path, monkeypatch):
    """Every message gets the same 64-bit key (a collision for every pair): billing and the export settle
    equal keys on message_id, so the figures do not change."""
    monkeypatch.setattr(
        notification_lake, "message_key", lambda _: pl.lit(42, pl.UInt64).alias("message_key")
    )
    commit(tmp_path, PARTITION_0, partition=0)
    commit(tmp_path, PARTITION_1, partition=1)
    assert set(pl.read_parquet(_events_files(tmp_path)).get_column("message_key")) == {42}
    assert bronze_files(NotificationLake(tmp_path), TOPIC)[0].key_recipe == message_key_recipe()
    assert_frame_equal(_day_counts(tmp_path), EXPECTED)

    start, end = day_bounds(DAY, "UTC")
    report = notifications_report(str(tmp_path), TOPIC, 22, start, end, "UTC").collect()
    assert report["message_id"].to_list() == ["B1", "B2"]


@pytest.mark.parametrize("zone", ["UTC", "America/Sao_Paulo"])
def test_the_keys_of_a_window_are_computed_when_the_events_lack_them(tmp_path, zone):
    """whatsapp_day_counts also takes plain events (no message_key column), computing the keys."""
    commit(tmp_path, PARTITION_0, partition=0)
    commit(tmp_path, PARTITION_1, partition=1)
    plain = NotificationLake(tmp_path).scan_events()
    assert "message_key" not in plain.collect_schema()
    keyed = scan_window(bronze_files(NotificationLake(tmp_path), TOPIC), *day_bounds(DAY, zone))
    assert_frame_equal(whatsapp_day_counts(plain, DAY, zone), whatsapp_day_counts(keyed, DAY, zone))
