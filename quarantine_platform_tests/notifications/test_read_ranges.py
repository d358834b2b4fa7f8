"""Reading exact offset ranges: what arrives in one poll, in Kafka's order, is never lost."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError

from quarantine_platform.kafka.client import read_ranges


@dataclass
class Msg:
    p: int
    o: int
    v: bytes | None = b"x"
    err: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self.err

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def value(self) -> bytes | None:
        return self.v


def eof(p: int, o: int) -> Msg:
    return Msg(p, o, None, KafkaError(KafkaError._PARTITION_EOF))


class FakeConsumer:
    def __init__(self, polls: list[list[Msg]]) -> None:
        self.polls = polls

    def assign(self, _tps) -> None: ...

    def unassign(self) -> None: ...

    def consume(self, _n: int, _timeout: float) -> list[Msg]:
        return self.polls.pop(0) if self.polls else []


def read(polls: list[list[Msg]], ranges: dict[int, tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for batch in read_ranges(FakeConsumer(polls), "b:1", "t", ranges):
        out += list(zip(batch.partitions, batch.offsets, strict=True))
    return out


def test_messages_followed_by_end_of_partition_in_the_same_poll_are_all_kept():
    polls = [[Msg(0, 0), Msg(1, 5), Msg(0, 1), eof(0, 2), Msg(1, 6), eof(1, 7)]]
    assert read(polls, {0: (0, 2), 1: (5, 7)}) == [(0, 0), (1, 5), (0, 1), (1, 6)]


def test_messages_past_the_range_end_are_left_for_the_next_run():
    polls = [[Msg(0, 3), Msg(0, 4), Msg(0, 5), Msg(0, 6)]]
    assert read(polls, {0: (3, 5)}) == [(0, 3), (0, 4)]


def test_a_range_ending_on_a_transaction_marker_ends_at_the_end_of_partition():
    polls = [[Msg(0, 0)], [eof(0, 2)]]  # offset 1 is a marker: it never arrives as a message
    assert read(polls, {0: (0, 2)}) == [(0, 0)]


def test_a_slice_ending_on_a_transaction_marker_inside_the_partition_ends_at_the_next_message():
    polls = [[Msg(0, 0), Msg(0, 2), Msg(0, 3)]]  # offset 1 is a marker; the slice [0, 2) ends before 2
    assert read(polls, {0: (0, 2)}) == [(0, 0)]
