"""Kafka offset ranges into bronze, exactly once. No Dagster here: the asset calls `ingest` and reports.

Every run stores all offsets that no committed bronze file covers, from each partition's low watermark up to
its target end: so a later run also picks up the range of a run that failed or was killed, and offsets that
are already stored are never read twice. Consumer-group offsets are committed only after the bronze files
that cover them are durable; they mirror bronze for lag monitoring, bronze itself is the ledger.

A large backlog is shared out between worker processes: each reads a contiguous slice of every partition's
range with its own consumer and commits its own bronze files. A message costs ~5 µs of CPU in all (measured
2026-11-23: ~1.5 in confluent-kafka and librdkafka, ~0.4 of Python glue, ~2.4 the batch parse, ~0.8 the
bronze commit), much of it single-threaded Python, so one process tops out near 200k messages/s; processes
(not threads: the GIL) scale it with the cores. The lake's commit lock keeps the files disjoint whatever the
workers do, so exactly-once does not depend on how the work was split.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import multiprocessing.util
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field

import polars as pl
from confluent_kafka import TopicPartition

from quarantine_platform.kafka.client import KafkaUnavailable, consumer, read_ranges, watermarks
from quarantine_platform.kafka.worker_process import start_worker
from quarantine_platform.process_memory import peak_rss_mib
from quarantine_platform.storage.notification_lake import NotificationLake, subtract_ranges
from quarantine_platform.transforms.notifications import ParsedBatch, parse_notifications

EMPTY = parse_notifications([], [], [], "")
# Below this many messages per worker, a process's start (~0.6 s of imports, once per pool) and its consumer's
# connection are not worth it: the backlog is read in this process.
MIN_MESSAGES_PER_WORKER = 100_000
# Messages per poll, each parsed as one batch: larger polls were no faster here and held more memory.
POLL_MESSAGES = 25_000
# A worker process gives its freed heap back to the OS once it has been idle this long (see _ingest_share).
WORKER_IDLE_RELEASE_S = 30.0

Log = Callable[[str], None]


@dataclass
class IngestReport:
    topic: str
    targets: dict[int, int]
    messages: int = 0
    events: int = 0
    dead_letters: int = 0
    files: list[str] = field(default_factory=list)
    minutes: set[int] = field(default_factory=set)
    max_event_time_us: int | None = None
    expired: dict[int, int] = field(default_factory=dict)  # offsets gone at the broker before we read them
    workers: int = 1  # processes that read the backlog
    worker_peak_rss_mib: list[float] = field(default_factory=list)  # each worker's peak RSS (VmHWM)

    def add(self, other: IngestReport) -> None:
        """Fold a worker's report of the same run into this one."""
        self.messages += other.messages
        self.events += other.events
        self.dead_letters += other.dead_letters
        self.files += other.files
        self.minutes |= other.minutes
        self.worker_peak_rss_mib += other.worker_peak_rss_mib
        if other.max_event_time_us is not None:
            self.max_event_time_us = max(self.max_event_time_us or 0, other.max_event_time_us)


def plan(
    lake: NotificationLake, topic: str, marks: dict[int, tuple[int, int]], targets: dict[int, int]
) -> list[dict[int, tuple[int, int]]]:
    """Rounds of {partition: (start, end)} to read: the uncovered parts of [low, target) per partition."""
    coverage = lake.coverage(topic)
    per_partition: dict[int, list[tuple[int, int]]] = {}
    for p, target in targets.items():
        low = marks.get(p, (0, target))[0]
        taken = coverage.get(p, [])
        free = subtract_ranges(low, target, taken) if target > low else []
        if free:
            per_partition[p] = free
    rounds: list[dict[int, tuple[int, int]]] = []
    depth = max((len(v) for v in per_partition.values()), default=0)
    for k in range(depth):
        rounds.append({p: v[k] for p, v in per_partition.items() if k < len(v)})
    return rounds


def ingest(
    lake: NotificationLake,
    bootstrap: str,
    topic: str,
    group: str,
    targets: dict[int, int] | None = None,
    chunk_messages: int = 400_000,
    log: Log = print,
    consumer_extra: dict | None = None,
    workers: int = 1,
) -> IngestReport:
    """Store every uncovered offset below `targets` (default: the end offsets the broker reports now), in up
    to `workers` processes (a backlog under MIN_MESSAGES_PER_WORKER per worker is read in this one)."""
    client = consumer(bootstrap, group, consumer_extra)
    try:
        marks = {p: (w.low, w.high) for p, w in watermarks(client, bootstrap, topic).items()}
        if targets is None:
            targets = {p: high for p, (_, high) in marks.items()}
        report = IngestReport(topic=topic, targets=dict(targets))
        coverage = lake.coverage(topic)
        for p, (low, _) in marks.items():
            # Before the first read of a partition, its low watermark is where the platform starts; after it,
            # offsets that expired at the broker before being read are a loss to report.
            first = min((s for s, _ in coverage.get(p, [])), default=low)
            lost = sum(e - s for s, e in subtract_ranges(first, low, coverage.get(p, [])))
            if lost:
                report.expired[p] = lost
                log(
                    f"WARNING {topic}[{p}]: {lost} offsets below {low} expired at the broker (retention) "
                    "before they were ingested"
                )
        rounds = plan(lake, topic, marks, targets)
        if not rounds:
            log(f"{topic}: nothing to ingest, bronze already covers {_describe(targets)}")
            return report
        shares = split_rounds(rounds, workers, MIN_MESSAGES_PER_WORKER)
        if len(shares) == 1:
            _ingest_rounds(
                lake, client, bootstrap, topic, rounds, chunk_messages, report, log, in_worker=False
            )
        else:
            _ingest_in_workers(
                lake, bootstrap, topic, group, shares, chunk_messages, consumer_extra, report, log
            )
            _commit_group_offsets(client, lake, topic, list(targets), log)
        return report
    finally:
        client.close()


def worker_count(setting: str) -> int:
    """QP_INGEST_WORKERS: a positive number, or `auto` (one per CPU core this process may use, at most 8)."""
    if setting.strip().lower() == "auto":
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(8, usable))
    try:
        count = int(setting)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"QP_INGEST_WORKERS={setting!r}: expected a positive number or 'auto'")
    return count


def split_rounds(
    rounds: list[dict[int, tuple[int, int]]], workers: int, min_per_worker: int
) -> list[list[dict[int, tuple[int, int]]]]:
    """Share the rounds out between at most `workers` readers, at least `min_per_worker` messages each: every
    range is cut into one contiguous slice per reader, so each reader reads every partition (the broker
    serves them in parallel) and the shares are equal whatever the partitions hold. One share: unchanged."""
    total = sum(e - s for ranges in rounds for s, e in ranges.values())
    count = max(1, min(workers, total // max(1, min_per_worker)))
    if count == 1:
        return [rounds]
    shares: list[list[dict[int, tuple[int, int]]]] = [[] for _ in range(count)]
    for ranges in rounds:
        sliced: list[dict[int, tuple[int, int]]] = [{} for _ in range(count)]
        for p, (s, e) in ranges.items():
            cuts = [s + (e - s) * k // count for k in range(count + 1)]
            for k in range(count):
                if cuts[k + 1] > cuts[k]:
                    sliced[k][p] = (cuts[k], cuts[k + 1])
        for k in range(count):
            if sliced[k]:
                shares[k].append(sliced[k])
    return shares


def _ingest_rounds(
    lake: NotificationLake,
    client,  # noqa: ANN001 - confluent_kafka.Consumer
    bootstrap: str,
    topic: str,
    rounds: list[dict[int, tuple[int, int]]],
    chunk_messages: int,
    report: IngestReport,
    log: Log,
    in_worker: bool,
) -> None:
    with _collector_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-writer") as writer:
        for ranges in rounds:
            log(f"{topic}: reading {_describe_ranges(ranges)}")
            _ingest_round(
                lake, client, bootstrap, topic, ranges, chunk_messages, report, writer, log, in_worker
            )
            # Young objects only (those of this round): a cycle made by chance is freed round by round, and a
            # run's long-lived objects (Dagster's) are not walked again.
            gc.collect(0)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while messages are read. confluent-kafka's Message objects are
    GC-tracked, so each 25,000-message poll set off ~35 collections, and the older generations' passes
    walked every batch held in flight: ~1 µs of CPU per message (of ~6.5), measured with gc callbacks. The
    loop makes no reference cycles worth collecting (messages, batches and frames are freed by their
    reference counts); the youngest generation is still collected after each round, and the collector runs
    again as before once the rounds are read."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- worker processes ------------------------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _workers_pool(size: int) -> ProcessPoolExecutor:
    """One pool per process, kept between calls: a long-lived ingester (or a benchmark) pays the workers'
    start once. Spawned, not forked: this process holds librdkafka and Polars threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = ProcessPoolExecutor(
                max_workers=size,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=start_worker,  # before the first task: see worker_process
                initargs=(os.getpid(),),
            )
            _pool_size = size
            # A multiprocessing child (Dagster's multiprocess executor runs steps in one) joins its children
            # when it ends, before the interpreter's own exit hooks would stop the pool: idle workers would
            # keep it waiting forever. A finalizer of priority >= 0 runs before that join; above 10, before
            # the pool's own queues are closed by theirs.
            multiprocessing.util.Finalize(None, _drop_pool, exitpriority=100)
        return _pool


def _drop_pool(wait: bool = True) -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=wait, cancel_futures=True)
        _pool = None


def _ingest_in_workers(
    lake: NotificationLake,
    bootstrap: str,
    topic: str,
    group: str,
    shares: list[list[dict[int, tuple[int, int]]]],
    chunk_messages: int,
    consumer_extra: dict | None,
    report: IngestReport,
    log: Log,
) -> None:
    pool = _workers_pool(len(shares))
    report.workers = len(shares)
    # The run's memory bound is shared out too: each worker commits every chunk_messages / workers.
    chunk_messages = max(MIN_MESSAGES_PER_WORKER // 2, chunk_messages // len(shares))
    for k, share in enumerate(shares):
        log(f"{topic}: worker {k + 1}/{len(shares)} reads " + "; ".join(_describe_ranges(r) for r in share))
    futures = [
        pool.submit(
            _ingest_share, str(lake.root), bootstrap, topic, group, share, chunk_messages, consumer_extra
        )
        for share in shares
    ]
    failure: BaseException | None = None
    for future in futures:  # wait for every worker: what the others commit is kept even when one fails
        try:
            part, lines = future.result()
        except BrokenProcessPool:
            _drop_pool(wait=False)
            failure = failure or RuntimeError(
                f"{topic}: an ingestion worker process died; the files it committed are kept and the next "
                "run reads what is missing"
            )
            continue
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the other workers finished
            failure = failure or exc
            continue
        for line in lines:
            log(line)
        report.add(part)
    if failure is not None:
        raise failure


def _ingest_share(
    root: str,
    bootstrap: str,
    topic: str,
    group: str,
    rounds: list[dict[int, tuple[int, int]]],
    chunk_messages: int,
    consumer_extra: dict | None,
) -> tuple[IngestReport, list[str]]:
    """In a worker process: store `rounds` in bronze. The group's offsets are left to the parent, which
    commits them once every share is stored (a share's end is not the partition's read position)."""
    # Freed memory is kept while the worker has work: handed back after each chunk, it was faulted in anew
    # by the next one (first touch is slow on VMs). It goes back once the worker is idle (see WORKER_ALLOCATOR
    # in worker_process for Polars' own heap): ~0.04 fewer page faults a message, measured over 1M.
    _idle_release.cancel()
    lines: list[str] = []
    lake = NotificationLake(root)
    report = IngestReport(topic=topic, targets={})
    client = consumer(bootstrap, group, consumer_extra)
    try:
        _ingest_rounds(
            lake, client, bootstrap, topic, rounds, chunk_messages, report, lines.append, in_worker=True
        )
    finally:
        client.close()
        _idle_release.schedule(WORKER_IDLE_RELEASE_S)
    report.worker_peak_rss_mib = [peak_rss_mib()]
    return report, lines


def _commit_group_offsets(
    client,  # noqa: ANN001 - confluent_kafka.Consumer
    lake: NotificationLake,
    topic: str,
    partitions: list[int],
    log: Log,
) -> None:
    """Mirror bronze in the consumer group: per partition, the end of the first stored stretch (the next
    offset a plain consumer would read)."""
    coverage = lake.coverage(topic)
    commits = [TopicPartition(topic, p, coverage[p][0][1]) for p in sorted(partitions) if coverage.get(p)]
    if commits:
        _mirror_in_group(client, topic, commits, log)


def _mirror_in_group(client, topic: str, commits: list[TopicPartition], log: Log) -> None:  # noqa: ANN001
    """Commit the group's offsets after the files that cover them are durable: they follow bronze (advisory,
    for lag dashboards); bronze is the ledger, so a failed commit loses nothing."""
    try:
        client.commit(offsets=commits, asynchronous=False)
    except Exception as exc:  # noqa: BLE001 - see above
        log(f"{topic}: consumer-group offset commit failed (bronze is unaffected): {exc}")


def _ingest_round(
    lake: NotificationLake,
    client,  # noqa: ANN001 - confluent_kafka.Consumer
    bootstrap: str,
    topic: str,
    ranges: dict[int, tuple[int, int]],
    chunk_messages: int,
    report: IngestReport,
    writer: ThreadPoolExecutor,
    log: Log,
    in_worker: bool = False,
) -> None:
    """Read the ranges; each polled batch is parsed on a worker thread while the next one is read (Polars
    releases the GIL), and every `chunk_messages` the parsed batches are committed as one bronze file per
    partition, by the writer thread. At most one chunk waits to be committed: memory stays bounded."""
    chunk_start = {p: s for p, (s, _) in ranges.items()}
    positions = dict(chunk_start)
    parsed: list[Future[ParsedBatch]] = []
    chunk_size = 0
    pending: Future | None = None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parser") as parser:

        def flush(final: bool) -> None:
            nonlocal parsed, chunk_size, pending, chunk_start
            spans = {p: (chunk_start[p], positions[p]) for p in chunk_start if positions[p] > chunk_start[p]}
            if spans:
                if pending is not None:
                    pending.result()  # one chunk in flight: bounded memory, errors surface here
                job = (parsed, chunk_size, spans)
                pending = writer.submit(_store_chunk, lake, client, topic, job, report, log, in_worker)
                parsed, chunk_size = [], 0
                chunk_start = {p: positions[p] for p in chunk_start}
            if final and pending is not None:
                pending.result()

        polls = read_ranges(client, bootstrap, topic, ranges, max_batch=min(POLL_MESSAGES, chunk_messages))
        for batch in polls:
            if batch.values:
                parsed.append(
                    parser.submit(parse_notifications, batch.values, batch.partitions, batch.offsets, topic)
                )
                chunk_size += len(batch.values)
            positions.update(batch.positions)
            if chunk_size >= chunk_messages:
                flush(final=False)
        flush(final=True)


def _store_chunk(
    lake: NotificationLake,
    client,  # noqa: ANN001
    topic: str,
    job: tuple[list[Future[ParsedBatch]], int, dict[int, tuple[int, int]]],
    report: IngestReport,
    log: Log,
    in_worker: bool = False,
) -> None:
    """Commit a chunk's parsed batches to bronze. Outside a worker process the consumer group's offsets follow
    each chunk and freed memory goes back to the OS at once; in a worker (`_ingest_share`) the parent commits
    the group's offsets, and the memory is kept for the next chunk and given back once the worker is idle."""
    batches, messages, spans = job
    results = [f.result() for f in batches]
    del batches
    commits = []
    stored_events = stored_dead = 0
    for p, (s, e) in sorted(spans.items()):
        # One partition's rows at a time: the chunk is never copied whole.
        ev = _rows_of(p, [r.events for r in results], EMPTY.events)
        dl = _rows_of(p, [r.dead_letters for r in results], EMPTY.dead_letters)
        stored_events, stored_dead = stored_events + ev.height, stored_dead + dl.height
        for c in lake.commit(topic, p, s, e, ev, dl):
            summary = lake.summary(c)
            report.events += summary.events
            report.dead_letters += summary.dead_letters
            report.minutes.update(summary.minutes)
            if summary.max_event_time is not None:
                report.max_event_time_us = max(report.max_event_time_us or 0, summary.max_event_time)
            report.files.append(c.name)
        commits.append(TopicPartition(topic, p, e))
        del ev, dl
    del results
    if not in_worker:
        release_free_memory()
    report.messages += messages
    log(f"{topic}: stored {_describe_ranges(spans)}: {stored_events} events, {stored_dead} dead letters")
    if not in_worker:
        _mirror_in_group(client, topic, commits, log)


def _rows_of(partition: int, frames: list[pl.DataFrame], empty: pl.DataFrame) -> pl.DataFrame:
    parts = [f.filter(f["partition"] == partition) for f in frames]
    return pl.concat(parts) if parts else empty


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise): a long-lived ingester's resident
    memory then follows its chunk size, not the history of its chunks. No-op off glibc."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


class _IdleRelease:
    """`release_free_memory` once, a given time after `schedule`, unless `cancel`led (a new call began)."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def schedule(self, seconds: float) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(seconds, release_free_memory)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


_idle_release = _IdleRelease()


def _describe(targets: dict[int, int]) -> str:
    return ", ".join(f"[{p}] < {e}" for p, e in sorted(targets.items())) or "no partitions"


def _describe_ranges(ranges: dict[int, tuple[int, int]]) -> str:
    return ", ".join(f"[{p}] {s}-{e}" for p, (s, e) in sorted(ranges.items()))


__all__ = ["IngestReport", "KafkaUnavailable", "ingest", "plan", "split_rounds", "worker_count"]
