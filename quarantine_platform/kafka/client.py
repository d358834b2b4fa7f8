"""Thin helpers over confluent-kafka: client settings, end offsets, and reading exact offset ranges."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

# Measured here: default fetch settings make the consumer latency-bound (~140k msg/s); these lift it ~4x.
# The prefetch queue is capped at 8 MiB (default 64): as fast here for a whole partition, and a reader of a
# slice of a partition (an ingestion worker) fetches and decompresses less of what lies past its slice (with
# 32 MiB, a worker reading half of each partition spent 1.2-1.4 µs/message in librdkafka's fetch thread, with
# 8 MiB 0.5, as much as a reader of the whole partition). When that queue is full, librdkafka >= 2.4 postpones
# the partition's next fetch by `fetch.queue.backoff.ms` (default 1 s): the consumer then starves for most of
# each second (consume alone: 5.0 wall µs/message; with 5 ms, 1.8, and ~0.5 µs less CPU from fewer waits).
FAST_CONSUMER = {
    "queued.min.messages": 1_000_000,
    "fetch.wait.max.ms": 5,
    "queued.max.messages.kbytes": 8192,
    "fetch.queue.backoff.ms": 5,
}
FAST_PRODUCER = {"linger.ms": 50, "batch.num.messages": 100_000, "compression.type": "lz4"}


class KafkaUnavailable(RuntimeError):
    """The cluster could not be reached or answered an error; the message names the bootstrap servers."""


@dataclass(frozen=True)
class Watermarks:
    low: int
    high: int


def consumer(bootstrap: str, group: str, extra: dict | None = None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "socket.connection.setup.timeout.ms": 5000,
            "session.timeout.ms": 6000,
            "logger": quiet_logger(),
            **FAST_CONSUMER,
            **(extra or {}),
        }
    )


def quiet_logger() -> logging.Logger:
    """librdkafka logs every refused connection; callers report unreachability themselves, once."""
    logger = logging.getLogger("quarantine_platform.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def watermarks(client: Consumer, bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, Watermarks]:
    """Per partition (low, high) offsets as the broker reports them now. A topic that does not exist yet has
    no partitions."""
    try:
        meta = client.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka at {bootstrap} unreachable: {exc.args[0]}") from None
    info = meta.topics.get(topic)
    if info is None or info.error is not None and info.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return {}
    if info.error is not None:
        raise KafkaUnavailable(f"Kafka at {bootstrap}: topic {topic!r}: {info.error}")
    result = {}
    for p in sorted(info.partitions):
        try:
            low, high = client.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
        except KafkaException as exc:
            raise KafkaUnavailable(f"Kafka at {bootstrap}: offsets of {topic}[{p}]: {exc.args[0]}") from None
        result[p] = Watermarks(low, high)
    return result


@dataclass
class RangeBatch:
    """Messages read in one poll, and how far each partition has been read (next offset to read). The
    partitions and offsets are int64 arrays (the parse takes them as they are: no second conversion)."""

    values: list[bytes | None]
    partitions: np.ndarray
    offsets: np.ndarray
    positions: dict[int, int] = field(default_factory=dict)


def read_ranges(
    client: Consumer,
    bootstrap: str,
    topic: str,
    ranges: dict[int, tuple[int, int]],
    max_batch: int = 100_000,
    stall_timeout: float = 30.0,
) -> Iterator[RangeBatch]:
    """Yield every message of each partition's [start, end) range, in order, then stop.

    A partition is done when a message at or past end-1 arrived, or the broker reports its end of partition
    at or past `end` (offsets of transaction markers never arrive as messages)."""
    todo = {p: (s, e) for p, (s, e) in ranges.items() if e > s}
    if not todo:
        return
    positions = {p: s for p, (s, _) in todo.items()}
    client.assign([TopicPartition(topic, p, s) for p, (s, _) in todo.items()])
    last_progress = time.monotonic()
    try:
        while todo:
            # consume() returns when it has the count asked for or the timeout passed: asking for no more than
            # the range still holds lets the last poll of a range return as soon as its messages are in (it
            # waited the whole timeout, ~0.1 s per reader and round, before). Offsets that never arrive as
            # messages (transaction markers) only make it wait the timeout, as before.
            remaining = sum(end - positions[p] for p, (_, end) in todo.items())
            messages = client.consume(max(1, min(max_batch, remaining)), 0.1)
            # Per-message Python work is the ceiling here: one list comprehension per attribute, no branches.
            errors = [m.error() for m in messages]
            failed = any(e is not None for e in errors)
            data = [m for m, e in zip(messages, errors, strict=True) if e is None] if failed else messages
            values = [m.value() for m in data]
            parts, offs = _NO_INTS, _NO_INTS
            if messages:
                last_progress = time.monotonic()
            if data:
                values, parts, offs = _within_ranges(
                    values, [m.partition() for m in data], [m.offset() for m in data], todo, positions
                )
            if failed:
                # After the data: an end-of-partition event follows the partition's messages of this batch.
                for m, err in zip(messages, errors, strict=True):
                    if err is not None:
                        _on_error(m, err, todo, positions, bootstrap, topic)
            if not messages and time.monotonic() - last_progress > stall_timeout:
                raise KafkaUnavailable(
                    f"Kafka at {bootstrap}: no data for {stall_timeout:.0f}s while reading {topic} "
                    f"(still waiting on partitions {sorted(todo)})"
                )
            if values or not todo:
                yield RangeBatch(values, parts, offs, dict(positions))
    finally:
        client.unassign()


def _on_error(m, err, todo: dict, positions: dict, bootstrap: str, topic: str) -> None:  # noqa: ANN001
    p = m.partition()
    if err.code() == KafkaError._PARTITION_EOF:
        # The broker's end of partition: past the range end, the partition is done (markers never arrive).
        if p in todo and m.offset() >= todo[p][1]:
            positions[p] = todo[p][1]
            del todo[p]
        return
    if err.fatal() or not err.retriable():
        raise KafkaUnavailable(f"Kafka at {bootstrap}: reading {topic}[{p}]: {err.str()}")


_NO_INTS = np.empty(0, dtype=np.int64)


def _within_ranges(
    values: list,
    parts: list[int],
    offs: list[int],
    todo: dict[int, tuple[int, int]],
    positions: dict[int, int],
) -> tuple[list, np.ndarray, np.ndarray]:
    """Drop messages at or past their partition's range end, advance positions, retire finished partitions.
    Returns the kept values with their partitions and offsets as int64 arrays."""
    part_arr = np.asarray(parts, dtype=np.int64)
    off_arr = np.asarray(offs, dtype=np.int64)
    ends = np.full(part_arr.max() + 1, -1, dtype=np.int64)
    for p, (_, e) in todo.items():
        if p < len(ends):
            ends[p] = e
    # Progress counts every message seen, also those past the end: a range that ends on an offset that never
    # arrives as a message (a transaction marker) inside a partition is done when a later message arrives.
    for p in np.unique(part_arr).tolist():
        if p in todo:
            positions[p] = min(int(off_arr[part_arr == p].max()) + 1, todo[p][1])
    keep = off_arr < ends[part_arr]
    if not keep.all():
        values = [values[i] for i in np.flatnonzero(keep).tolist()]
        part_arr, off_arr = part_arr[keep], off_arr[keep]
    for p in [p for p, (_, e) in todo.items() if positions[p] >= e]:
        positions[p] = todo[p][1]
        del todo[p]
    return values, part_arr, off_arr
