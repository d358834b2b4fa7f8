"""A deterministic demo notification stream: a few hundred customers over one day of event time, with the
re-sent, late and malformed messages a real stream has. The same seed always gives the same messages."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

CHANNELS = [("Whatsapp", 0.80), ("WhatsApp", 0.05), ("SMS", 0.10), ("Email", 0.05)]
PAYLOADS = [
    "Olá {n}, seja muito bem-vindo! Precisa de alguma ajuda?",
    "Não identificamos a sua última mensagem. Por favor, entre em contato",
    "Seu pedido {k} saiu para entrega",
    "Seu código de verificação é {k}",
    "Lembrete: sua fatura vence amanhã",
]
NAMES = ["Acme", "Boa Vista", "Cantareira", "Delta Sul", "Estrela", "Farol", "Guarani", "Horizonte", "Ipê"]
SUFFIX = ["Ltda", "S.A.", "Comércio", "Serviços", "Digital", "Varejo"]


@dataclass(frozen=True)
class DemoMessage:
    partition: int | None  # None: the producer's partitioner decides (by key)
    key: bytes
    value: bytes | None
    kind: str  # "ok", "resend", "late", or the kind of malformation


@dataclass(frozen=True)
class DemoSpec:
    day: dt.date
    messages: int = 1_200_000
    customers: int = 300
    seed: int = 20200203
    partitions: int = 4
    resend_rate: float = 0.01
    late_rate: float = 0.005
    malformed_rate: float = 0.001


def customers(spec: DemoSpec) -> list[tuple[int, str]]:
    rnd = random.Random(spec.seed)
    ids = rnd.sample(range(1_000_000, 9_999_999), spec.customers)
    return [(cid, f"{rnd.choice(NAMES)} {rnd.choice(SUFFIX)} {i:03d}") for i, cid in enumerate(ids)]


def _malformed(rnd: random.Random, base: dict) -> tuple[bytes | None, str]:
    kind = rnd.choice(["not_json", "missing_field", "mistyped", "bad_timestamp", "oversized", "null_value"])
    if kind == "not_json":
        return json.dumps(base).encode()[: rnd.randint(5, 40)], kind
    if kind == "missing_field":
        broken = dict(base)
        broken.pop(rnd.choice(list(broken)))
        return json.dumps(broken).encode(), kind
    if kind == "mistyped":
        return json.dumps({**base, "customer_id": str(base["customer_id"])}).encode(), kind
    if kind == "bad_timestamp":
        return json.dumps({**base, "event_datetime": base["event_datetime"][:19]}).encode(), kind
    if kind == "oversized":
        return json.dumps({**base, "payload": "x" * (64 * 1024 + 1)}).encode(), kind
    return None, kind


def generate(spec: DemoSpec) -> Iterator[DemoMessage]:
    """Messages in production order: event time rising through the day, re-sends shortly after the first
    copy (sometimes on another partition), late messages held back several minutes past their minute."""
    rnd = random.Random(spec.seed + 1)
    people = customers(spec)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(people))]  # a few big customers, a long tail
    start = dt.datetime.combine(spec.day, dt.time(), dt.UTC)
    step_us = 86_400_000_000 / spec.messages
    held: list[tuple[int, DemoMessage]] = []  # (release index, message)
    chosen = rnd.choices(range(len(people)), weights=weights, k=spec.messages)
    channel_names = [c for c, _ in CHANNELS]
    channel_weights = [w for _, w in CHANNELS]
    for i in range(spec.messages):
        while held and held[0][0] <= i:
            yield held.pop(0)[1]
        cid, name = people[chosen[i]]
        when = start + dt.timedelta(microseconds=int(i * step_us + rnd.random() * step_us))
        record = {
            "customer_id": cid,
            "message_id": f"{spec.seed % 9973:04X}{i:08X}",
            "customer_name": name,
            "channel": rnd.choices(channel_names, channel_weights)[0],
            "payload": rnd.choice(PAYLOADS).format(n=name.split()[0], k=rnd.randint(1000, 9999)),
            "event_datetime": when.isoformat(timespec="milliseconds"),
        }
        key = str(cid).encode()
        roll = rnd.random()
        if roll < spec.malformed_rate:
            value, kind = _malformed(rnd, record)
            yield DemoMessage(None, key, value, kind)
            continue
        value = json.dumps(record, ensure_ascii=False).encode()
        if roll < spec.malformed_rate + spec.late_rate:
            # Released 5 to 30 minutes of event time later.
            delay = int(rnd.uniform(5, 30) * 60_000_000 / step_us)
            held.append((i + delay, DemoMessage(None, key, value, "late")))
            held.sort(key=lambda h: h[0])
            continue
        yield DemoMessage(None, key, value, "ok")
        if rnd.random() < spec.resend_rate:
            other = rnd.randrange(spec.partitions) if rnd.random() < 0.5 else None
            delay = rnd.randint(1, 2000)
            held.append((i + delay, DemoMessage(other, key, value, "resend")))
            held.sort(key=lambda h: h[0])
    for _, message in held:
        yield message


def produce(bootstrap: str, topic: str, messages: Iterator[DemoMessage]) -> dict[str, int]:
    """Send the messages; returns how many of each kind were delivered. Fails loudly on any delivery error."""
    from confluent_kafka import Producer

    from quarantine_platform.kafka.client import FAST_PRODUCER

    producer = Producer({"bootstrap.servers": bootstrap, **FAST_PRODUCER, "enable.idempotence": False})
    errors: list[str] = []

    def on_delivery(err, _msg) -> None:  # noqa: ANN001
        if err is not None:
            errors.append(str(err))

    kinds: dict[str, int] = {}
    for m in messages:
        kwargs = {"key": m.key, "value": m.value, "on_delivery": on_delivery}
        if m.partition is not None:
            kwargs["partition"] = m.partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(f"demo stream: {remaining} undelivered, {len(errors)} errors ({errors[:3]})")
    return kinds
