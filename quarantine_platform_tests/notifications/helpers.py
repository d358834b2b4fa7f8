"""A known notification stream for the Dagster and broker tests, and its independently computed counts."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from dataclasses import dataclass

from confluent_kafka import Producer


@dataclass(frozen=True)
class Sent:
    partition: int
    value: bytes | None
    valid: bool
    message_id: str | None = None
    customer_id: int | None = None
    channel: str | None = None
    minute: dt.datetime | None = None


def known_stream(start: dt.datetime, minutes: int, per_minute: int, seed: int = 7) -> list[Sent]:
    """Messages over `minutes` minutes from `start`, on 3 partitions, with re-sends (same and other
    partition), late messages (sent after later minutes) and malformed ones."""
    rnd = random.Random(seed)
    on_time: list[Sent] = []
    late: list[Sent] = []
    n = 0
    for m in range(minutes):
        for _ in range(per_minute):
            n += 1
            when = start + dt.timedelta(minutes=m, seconds=rnd.uniform(0, 59.9))
            cid = rnd.choice([11, 22, 33, 44])
            channel = rnd.choice(["Whatsapp", "WhatsApp", "SMS"])
            record = {
                "customer_id": cid,
                "message_id": f"M{n:06d}",
                "customer_name": f"Cliente {cid}",
                "channel": channel,
                "payload": f"mensagem {n}",
                "event_datetime": when.isoformat(timespec="milliseconds"),
            }
            sent = Sent(
                rnd.randrange(3),
                json.dumps(record).encode(),
                True,
                record["message_id"],
                cid,
                channel.lower(),
                when.replace(second=0, microsecond=0),
            )
            roll = rnd.random()
            if roll < 0.03:
                on_time.append(
                    Sent(rnd.randrange(3), rnd.choice([b"{not json", None, b'{"customer_id": "x"}']), False)
                )
            (late if roll > 0.97 else on_time).append(sent)
            if rnd.random() < 0.05:  # a re-send, maybe on another partition
                resend = Sent(
                    rnd.randrange(3), sent.value, True, sent.message_id, cid, sent.channel, sent.minute
                )
                (late if rnd.random() < 0.5 else on_time).append(resend)
    return on_time + late


def produce_all(bootstrap: str, topic: str, messages: list[Sent]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for s in messages:
        producer.produce(topic, value=s.value, partition=s.partition)
    assert producer.flush(30) == 0


def reference_counts(messages: list[Sent]) -> dict[tuple[dt.datetime, int, str], int]:
    """Distinct valid message_ids per (minute, customer, channel), computed without the platform's code."""
    seen: dict[str, Sent] = {}
    for s in messages:
        if s.valid and s.message_id not in seen:
            seen[s.message_id] = s
    return dict(Counter((s.minute, s.customer_id, s.channel) for s in seen.values()))
