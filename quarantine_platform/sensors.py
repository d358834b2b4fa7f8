"""Sensors of the notification stream.

`notification_ingest_sensor` reads only the topic's end offsets (a tick stays far inside Dagster's 60 s) and
asks for one ingestion run per new offset range; the run key is the range, so a replayed tick asks nothing
twice. `notification_minutes_sensor` reads the bronze commits since its cursor and asks for counts of the
minutes that closed and recounts of minutes that received late events.
"""

import datetime as dt
import json
import time

import dagster as dg

from quarantine_platform import settings
from quarantine_platform.assets.keys import COUNTS, DEAD_LETTERS, EVENTS
from quarantine_platform.assets.panel import PANEL
from quarantine_platform.kafka.client import KafkaUnavailable, consumer, watermarks
from quarantine_platform.partitions import minute_key, minute_partitions
from quarantine_platform.resources.kafka import KafkaResource
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.transforms.minute_scheduling import MinuteState, plan_minutes

INGEST_OP = "notification_stream"


@dg.sensor(
    name="notification_ingest_sensor",
    minimum_interval_seconds=5,
    asset_selection=[EVENTS, DEAD_LETTERS],
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def notification_ingest_sensor(
    context: dg.SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    client = consumer(kafka.bootstrap_servers, kafka.group_id, kafka.client_settings())
    try:
        marks = watermarks(client, kafka.bootstrap_servers, kafka.topic, timeout=5)
    except KafkaUnavailable as exc:
        return dg.SkipReason(str(exc))
    finally:
        client.close()
    if not cursor:
        # First tick: start after what bronze already holds.
        coverage = lake.notifications().coverage(kafka.topic)
        cursor = {str(p): max((e for _, e in coverage.get(p, [])), default=w.low) for p, w in marks.items()}
    ranges = {
        p: (cursor.get(str(p), w.low), w.high) for p, w in marks.items() if w.high > cursor.get(str(p), w.low)
    }
    if not ranges:
        return dg.SkipReason(f"{kafka.topic}: no new offsets")
    run_key = f"{kafka.topic}:" + ",".join(f"{p}:{s}-{e}" for p, (s, e) in sorted(ranges.items()))
    new_cursor = {**cursor, **{str(p): e for p, (_, e) in ranges.items()}}
    request = dg.RunRequest(
        run_key=run_key,
        asset_selection=[EVENTS, DEAD_LETTERS],
        run_config={"ops": {INGEST_OP: {"config": {"ends": {str(p): e for p, (_, e) in ranges.items()}}}}},
        tags={"quarantine_platform/offsets": run_key[:250]},
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(new_cursor, sort_keys=True))


@dg.sensor(
    name="notification_minutes_sensor",
    minimum_interval_seconds=10,
    asset_selection=[COUNTS, PANEL],
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def notification_minutes_sensor(
    context: dg.SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    state = MinuteState.from_json(json.loads(context.cursor) if context.cursor else None)
    summaries = lake.notifications().summaries_since(kafka.topic, state.seq)
    if not summaries and state.watermark is None:
        return dg.SkipReason("no bronze commits yet")
    touched = {m for s in summaries for m in s.minutes}
    times = [s.max_event_time for s in summaries if s.max_event_time is not None]
    plan = plan_minutes(
        state,
        new_seq=max((s.committed.seq for s in summaries), default=state.seq),
        touched=touched,
        max_event_time=max(times) // 1_000_000 if times else None,
        now=int(time.time()),
        lateness=int(settings.get("QP_ALLOWED_LATENESS_SECONDS")),
        earliest=int(minute_partitions.start.timestamp()),
    )
    requests = [
        dg.RunRequest(
            run_key=f"minutes:{_key(first)}...{_key(last)}@{plan.state.seq}",
            # The panel's snapshot is republished in the same run, right after the counts it shows.
            asset_selection=[COUNTS, PANEL],
            tags={
                "dagster/asset_partition_range_start": _key(first),
                "dagster/asset_partition_range_end": _key(last),
            },
        )
        for first, last in plan.ranges
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(plan.state.to_json()))


def _key(epoch: int) -> str:
    return minute_key(dt.datetime.fromtimestamp(epoch, dt.UTC))


notification_sensors = [notification_ingest_sensor, notification_minutes_sensor]
