"""A large backlog read by several worker processes: equal shares, every offset stored once, and a worker
killed mid-run loses nothing that the next run does not recover."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter

import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from quarantine_platform.kafka import ingest as ingest_module
from quarantine_platform.kafka.ingest import ingest, split_rounds, worker_count
from quarantine_platform.kafka.worker_process import WORKER_ALLOCATOR
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms.notifications import minute_counts
from quarantine_platform_tests.notifications.helpers import known_stream, produce_all, reference_counts

START = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def small_shares(monkeypatch: pytest.MonkeyPatch):
    """Workers for backlogs of test size; the pool is shut down after the test."""
    monkeypatch.setattr(ingest_module, "MIN_MESSAGES_PER_WORKER", 50)
    yield
    ingest_module._drop_pool()


def test_every_range_is_cut_into_one_contiguous_slice_per_worker():
    rounds = [{0: (0, 300), 1: (100, 400)}, {0: (500, 560)}]
    assert split_rounds(rounds, workers=3, min_per_worker=100) == [
        [{0: (0, 100), 1: (100, 200)}, {0: (500, 520)}],
        [{0: (100, 200), 1: (200, 300)}, {0: (520, 540)}],
        [{0: (200, 300), 1: (300, 400)}, {0: (540, 560)}],
    ]


def test_a_backlog_too_small_for_two_workers_stays_in_one_share():
    rounds = [{0: (0, 300), 1: (100, 400)}]
    assert split_rounds(rounds, workers=4, min_per_worker=400) == [rounds]
    assert split_rounds(rounds, workers=4, min_per_worker=300) == [
        [{0: (0, 150), 1: (100, 250)}],
        [{0: (150, 300), 1: (250, 400)}],
    ]


def test_the_worker_setting_is_a_positive_number_or_auto():
    assert worker_count("3") == 3
    assert 1 <= worker_count("auto") <= 8
    for bad in ("0", "-2", "many"):
        with pytest.raises(ValueError, match="QP_INGEST_WORKERS"):
            worker_count(bad)


def stored_offsets(lake: NotificationLake, topic: str) -> Counter:
    events = lake.scan_events(topic).select("partition", "offset").collect()
    dead = lake.scan_dead_letters(topic).select("partition", "offset").collect()
    return Counter(pl.concat([events, dead]).iter_rows())


def broker_offsets(bootstrap: str, topic: str) -> tuple[Counter, dict[int, int]]:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        parts = probe.list_topics(topic, timeout=10).topics[topic].partitions
        marks = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
    finally:
        probe.close()
    every = Counter((p, o) for p, (low, high) in marks.items() for o in range(low, high))
    return every, {p: high for p, (_, high) in marks.items()}


def counted(lake: NotificationLake, topic: str, minutes: int) -> dict:
    counts = minute_counts(lake.scan_events(topic), START, START + dt.timedelta(minutes=minutes), "UTC")
    return {
        (m, c, ch): n
        for m, c, ch, n in counts.select("minute", "customer_id", "channel", "notifications").iter_rows()
    }


def committed_group_offsets(bootstrap: str, topic: str, group: str, partitions: list[int]) -> dict[int, int]:
    client = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = client.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    finally:
        client.close()
    return {tp.partition: tp.offset for tp in found}


def test_two_workers_store_every_offset_once_and_the_counts_equal_the_reference(
    broker, tmp_path, small_shares
):
    sent = known_stream(START, minutes=20, per_minute=40)
    produce_all(broker, "notifications", sent)
    lake = NotificationLake(tmp_path / "lake")

    report = ingest(lake, broker, "notifications", "qp", workers=2, log=lambda _: None)

    every, ends = broker_offsets(broker, "notifications")
    assert report.workers == 2
    assert len(report.worker_peak_rss_mib) == 2
    assert report.messages == sum(every.values()) == len(sent)
    assert stored_offsets(lake, "notifications") == every
    assert counted(lake, "notifications", 20) == reference_counts(sent)
    # The group's offsets mirror bronze once every share is stored (the 4th partition holds nothing).
    used = {p: end for p, end in ends.items() if end > 0}
    assert committed_group_offsets(broker, "notifications", "qp", list(used)) == used
    again = ingest(lake, broker, "notifications", "qp", workers=2, log=lambda _: None)
    assert again.messages == 0
    # The allocator options Polars loaded in each worker end with the workers' decay (later options win).
    settings = {ingest_module._pool.submit(os.getenv, "_RJEM_MALLOC_CONF").result() for _ in range(4)}
    assert settings and all(s.endswith("," + WORKER_ALLOCATOR) for s in settings), settings


def test_an_idle_worker_releases_its_free_memory_once_and_a_new_call_cancels_the_release(monkeypatch):
    released = threading.Event()
    calls: list[int] = []

    def release() -> None:
        calls.append(1)
        released.set()

    monkeypatch.setattr(ingest_module, "release_free_memory", release)
    idle = ingest_module._IdleRelease()
    idle.schedule(0.05)
    idle.cancel()  # a new call began
    time.sleep(0.3)
    assert calls == []
    idle.schedule(0.05)
    idle.schedule(0.05)  # a second call ended: one release, after the last
    assert released.wait(10)
    time.sleep(0.3)
    assert calls == [1]


def test_a_worker_killed_mid_run_fails_the_run_and_the_next_run_stores_the_rest_exactly_once(
    broker, tmp_path, small_shares
):
    sent = known_stream(START, minutes=60, per_minute=1000)
    produce_all(broker, "notifications", sent)
    lake = NotificationLake(tmp_path / "lake")
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            ingest(lake, broker, "notifications", "qp", workers=2, chunk_messages=1000, log=lambda _: None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 60
    while not lake.committed("notifications") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lake.committed("notifications"), "no worker committed a file within 60 s"
    victim = next(iter(ingest_module._pool._processes))  # the pool's worker pids
    os.kill(victim, signal.SIGKILL)
    runner.join(120)

    assert "error" in outcome, "the run finished before a worker could be killed"
    assert "worker process died" in str(outcome["error"])
    partial = stored_offsets(lake, "notifications")
    every, _ = broker_offsets(broker, "notifications")
    assert max(partial.values()) == 1 and sum(partial.values()) < sum(every.values())

    ingest(lake, broker, "notifications", "qp", workers=2, chunk_messages=1000, log=lambda _: None)
    assert stored_offsets(lake, "notifications") == every
    assert counted(lake, "notifications", 60) == reference_counts(sent)


def _ingest_in_a_child(bootstrap: str, root: str) -> None:
    ingest_module.MIN_MESSAGES_PER_WORKER = 50
    ingest(NotificationLake(root), bootstrap, "notifications", "qp", workers=2, log=lambda _: None)


def test_a_multiprocessing_child_that_ingested_with_workers_exits(broker, tmp_path):
    # Dagster's multiprocess executor runs each step in such a child; it must end when the step ends.
    produce_all(broker, "notifications", known_stream(START, minutes=5, per_minute=40))
    child = multiprocessing.get_context("spawn").Process(
        target=_ingest_in_a_child, args=(broker, str(tmp_path / "lake"))
    )
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the child kept waiting for its idle worker processes"
    assert child.exitcode == 0
    assert stored_offsets(NotificationLake(tmp_path / "lake"), "notifications")


def _hold_a_pool(pids) -> None:  # noqa: ANN001 - a multiprocessing queue
    pool = ingest_module._workers_pool(2)
    for _ in range(4):
        pool.submit(time.sleep, 0.2).result()
    pids.put(sorted(pool._processes))
    time.sleep(600)  # killed by the test


def test_the_workers_of_a_killed_run_end_with_it():
    context = multiprocessing.get_context("spawn")
    pids = context.Queue()
    owner = context.Process(target=_hold_a_pool, args=(pids,))
    owner.start()
    workers = pids.get(timeout=60)
    assert workers
    os.kill(owner.pid, signal.SIGKILL)
    owner.join(10)
    deadline = time.monotonic() + 20
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if _running(pid)]
    assert not alive, f"worker processes {alive} outlived the killed run"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
