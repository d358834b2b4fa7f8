"""Kafka offset ranges into bronze, exactly once. No Dagster here: the asset calls `ingest` and reports.

Every run stores all offsets that no committed bronze file covers, from each partition's low watermark up to
its target end: so a later run also picks up the range of a run that failed or was killed, and offsets that
are already stored are never read twice. Consumer-group offsets are committed only after the bronze files
that cover them are durable; they mirror bronze for lag monitoring, bronze itself is the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl
from confluent_kafka import TopicPartition

from quarantine_platform.kafka.client import KafkaUnavailable, consumer, read_ranges, watermarks
from quarantine_platform.storage.notification_lake import NotificationLake, subtract_ranges
from quarantine_platform.transforms.notifications import ParsedBatch, parse_notifications

EMPTY = parse_notifications([], [], [], "")

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
) -> IngestReport:
    """Store every uncovered offset below `targets` (default: the end offsets the broker reports now)."""
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
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-writer") as writer:
            for ranges in rounds:
                log(f"{topic}: reading {_describe_ranges(ranges)}")
                _ingest_round(lake, client, bootstrap, topic, ranges, chunk_messages, report, writer, log)
        return report
    finally:
        client.close()


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
                pending = writer.submit(_store_chunk, lake, client, topic, job, report, log)
                parsed, chunk_size = [], 0
                chunk_start = {p: positions[p] for p in chunk_start}
            if final and pending is not None:
                pending.result()

        for batch in read_ranges(client, bootstrap, topic, ranges, max_batch=min(100_000, chunk_messages)):
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
) -> None:
    batches, messages, spans = job
    results = [f.result() for f in batches]
    events = pl.concat([r.events for r in results]) if results else EMPTY.events
    dead = pl.concat([r.dead_letters for r in results]) if results else EMPTY.dead_letters
    commits = []
    for p, (s, e) in sorted(spans.items()):
        ev = events.filter(events["partition"] == p)
        dl = dead.filter(dead["partition"] == p)
        for c in lake.commit(topic, p, s, e, ev, dl):
            summary = lake.summary(c)
            report.events += summary.events
            report.dead_letters += summary.dead_letters
            report.minutes.update(summary.minutes)
            if summary.max_event_time is not None:
                report.max_event_time_us = max(report.max_event_time_us or 0, summary.max_event_time)
            report.files.append(c.name)
        commits.append(TopicPartition(topic, p, e))
    report.messages += messages
    # After the files are durable: the group's offsets follow bronze (advisory, for lag dashboards).
    try:
        client.commit(offsets=commits, asynchronous=False)
    except Exception as exc:  # noqa: BLE001 - bronze is the ledger; a failed mirror commit loses nothing
        log(f"{topic}: consumer-group offset commit failed (bronze is unaffected): {exc}")
    log(f"{topic}: stored {_describe_ranges(spans)}: {events.height} events, {dead.height} dead letters")


def _describe(targets: dict[int, int]) -> str:
    return ", ".join(f"[{p}] < {e}" for p, e in sorted(targets.items())) or "no partitions"


def _describe_ranges(ranges: dict[int, tuple[int, int]]) -> str:
    return ", ".join(f"[{p}] {s}-{e}" for p, (s, e) in sorted(ranges.items()))


__all__ = ["IngestReport", "KafkaUnavailable", "ingest", "plan"]
