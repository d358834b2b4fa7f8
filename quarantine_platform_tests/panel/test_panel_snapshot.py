"""The snapshot store: complete snapshots switched atomically, never moved back, old ones pruned, and a
reader that never sees half a snapshot while publications go on."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import polars as pl
import pytest

from quarantine_platform.panel.snapshots import SnapshotCache
from quarantine_platform.storage.panel_snapshot import SnapshotStore, panel_root


def tables(k: int) -> dict[str, pl.DataFrame]:
    """Tables whose every value is k: a reader can tell which publication each table came from."""
    return {
        "customers": pl.DataFrame({"customer_id": [1, 2], "whatsapp_today": [k, k]}),
        "minutes": pl.DataFrame({"customer_id": [1], "notifications": [k]}),
        "billing": pl.DataFrame({"customer_id": [1], "notifications": [k]}),
    }


def meta(k: int, read_at: dt.datetime | None = None) -> dict:
    at = read_at or dt.datetime(2020, 2, 3, tzinfo=dt.UTC) + dt.timedelta(seconds=k)
    return {"k": k, "read_at": at.isoformat()}


def test_publish_makes_a_complete_snapshot_current(tmp_path: Path):
    store = SnapshotStore(tmp_path / "panel")
    assert store.current_name() is None and store.load_current() is None
    name = store.publish(tables(1), meta(1))
    assert name == "000000000001" and store.current_name() == name
    snap = store.load_current()
    assert snap.meta["k"] == 1 and snap.meta["name"] == name
    assert snap.table("customers")["whatsapp_today"].to_list() == [1, 1]
    assert sorted(p.name for p in (tmp_path / "panel" / "snapshots" / name).iterdir()) == [
        "billing.parquet",
        "customers.parquet",
        "meta.json",
        "minutes.parquet",
    ]


def test_old_snapshots_are_pruned_and_leftovers_of_a_dead_publisher_removed(tmp_path: Path):
    store = SnapshotStore(tmp_path)
    store.publish(tables(1), meta(1))
    (store.snapshots / ".000000000002.dead.tmp").mkdir()  # a publisher killed mid-write
    (tmp_path / ".current.dead.tmp").write_text("x")
    for k in range(2, 7):
        store.publish(tables(k), meta(k))
    assert store.names() == ["000000000004", "000000000005", "000000000006"]
    assert store.load_current().meta["k"] == 6
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_snapshot_read_before_the_current_one_does_not_replace_it(tmp_path: Path):
    store = SnapshotStore(tmp_path)
    store.publish(tables(2), meta(2))
    assert store.publish(tables(1), meta(1)) is None  # a slower run that read the warehouse earlier
    assert store.load_current().meta["k"] == 2


def test_tables_missing_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="minutes"):
        SnapshotStore(tmp_path).publish({"customers": pl.DataFrame(), "billing": pl.DataFrame()}, meta(1))


def test_object_store_lakes_are_refused_with_the_variable_named():
    with pytest.raises(ValueError, match="QP_LAKE_DIR='s3://lake'"):
        panel_root("s3://lake")


def test_a_reader_never_sees_half_a_snapshot_while_publications_go_on(tmp_path: Path):
    store = SnapshotStore(tmp_path)
    store.publish(tables(0), meta(0))
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def read() -> None:
        cache = SnapshotCache(SnapshotStore(tmp_path))
        while not stop.is_set():
            snap = cache.get()
            k = snap.meta["k"]
            values = {
                *snap.table("customers")["whatsapp_today"].to_list(),
                *snap.table("minutes")["notifications"].to_list(),
                *snap.table("billing")["notifications"].to_list(),
            }
            if values != {k}:
                errors.append(f"snapshot {snap.name}: meta k={k}, tables {values}")
            if seen and k < seen[-1]:
                errors.append(f"went back from {seen[-1]} to {k}")
            seen.append(k)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(1, 40):
            store.publish(tables(k), meta(k), keep=2)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert len(set(seen)) > 1  # the reader did follow the publications


def test_the_cache_keeps_serving_the_last_good_snapshot_when_the_pointer_is_broken(tmp_path: Path):
    store = SnapshotStore(tmp_path)
    store.publish(tables(1), meta(1))
    cache = SnapshotCache(store)
    assert cache.get().meta["k"] == 1
    store.pointer.write_text("../../etc\n")
    assert cache.get().meta["k"] == 1
    store.pointer.write_text("000000000099\n")  # names a snapshot that is not there
    assert cache.get().meta["k"] == 1
