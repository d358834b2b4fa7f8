"""Helpers of the panel tests: bronze commits of known messages, Dagster runs as the daemon would execute the
sensors' requests, and the expected figures computed without the platform's code."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg

UTC = dt.UTC


@dataclass(frozen=True)
class Message:
    customer_id: int
    customer_name: str
    message_id: str
    channel: str
    at: dt.datetime  # aware
    payload: str = "Olá, seja muito bem-vindo!"

    def value(self) -> bytes:
        return json.dumps(
            {
                "customer_id": self.customer_id,
                "message_id": self.message_id,
                "customer_name": self.customer_name,
                "channel": self.channel,
                "payload": self.payload,
                "event_datetime": self.at.isoformat(timespec="milliseconds"),
            }
        ).encode()


def commit_to_bronze(messages: list[Message], topic: str = "notifications") -> None:
    """Store messages in bronze as one committed offset range after whatever is there (what an ingestion run
    does, without Kafka)."""
    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.transforms.notifications import parse_notifications

    lake = NotificationLake(os.environ["QP_LAKE_DIR"])
    start = max((e for _, e in lake.coverage(topic).get(0, [])), default=0)
    offsets = list(range(start, start + len(messages)))
    batch = parse_notifications([m.value() for m in messages], [0] * len(messages), offsets, topic)
    lake.commit(topic, 0, start, start + len(messages), batch.events, batch.dead_letters)


def minute_key(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d-%H:%M")


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    """Execute a sensor's run request as the daemon does: its asset selection, config and tags."""
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        run_config=request.run_config or {},
        instance=instance,
        asset_selection=list(request.asset_selection or []),
        tags=request.tags,
        raise_on_error=True,
    )
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert not failed, failed


def drive(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cursors: dict[str, str | None],
    kafka: bool = True,
) -> list[set[str]]:
    """Tick the notification sensors (the ingest one only with `kafka`) and execute their requests until they
    are quiet. Returns each executed run's asset selection."""
    from quarantine_platform.sensors import notification_ingest_sensor, notification_minutes_sensor

    sensors = [("minutes", notification_minutes_sensor)]
    if kafka:
        sensors.insert(0, ("ingest", notification_ingest_sensor))
    executed: list[set[str]] = []
    for _ in range(20):
        launched = 0
        for name, sensor in sensors:
            context = dg.build_sensor_context(
                instance=instance, cursor=cursors.get(name), resources=defs.resources
            )
            result = sensor(context)
            if isinstance(result, dg.SensorResult):
                cursors[name] = result.cursor
                for request in result.run_requests or []:
                    execute(defs, instance, request)
                    executed.append({k.to_user_string() for k in request.asset_selection or []})
                    launched += 1
        if not launched:
            return executed
    raise AssertionError("the sensors kept requesting runs")


def materialize_minutes(defs: dg.Definitions, first: dt.datetime, last: dt.datetime) -> None:
    """Count the minutes first..last (inclusive) and publish the panel, in one run (what the minutes sensor
    asks for)."""
    from quarantine_platform.assets.keys import COUNTS
    from quarantine_platform.assets.panel import PANEL

    execute(
        defs,
        dg.DagsterInstance.ephemeral(),
        dg.RunRequest(
            asset_selection=[COUNTS, PANEL],
            tags={
                "dagster/asset_partition_range_start": minute_key(first),
                "dagster/asset_partition_range_end": minute_key(last),
            },
        ),
    )


def expected_whatsapp(messages: list[Message], timezone: str, day: dt.date) -> dict[int, tuple[int, int]]:
    """Per customer: (WhatsApp notifications of `day`, of its month), each message_id once."""
    zone = ZoneInfo(timezone)
    first: dict[str, Message] = {}
    for m in messages:
        first.setdefault(m.message_id, m)
    today: Counter[int] = Counter()
    month: Counter[int] = Counter()
    for m in first.values():
        if m.channel.lower() != "whatsapp":
            continue
        local = m.at.astimezone(zone).date()
        if local == day:
            today[m.customer_id] += 1
        if (local.year, local.month) == (day.year, day.month) and local <= day:
            month[m.customer_id] += 1
    return {c: (today[c], month[c]) for c in set(today) | set(month)}
