"""The notification assets, checks and sensors through Dagster, on temporary paths."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import duckdb
import pytest

from quarantine_platform_tests.notifications.helpers import known_stream, produce_all, reference_counts

UTC = dt.UTC


@pytest.fixture
def platform(platform_env):
    from quarantine_platform import definitions

    return definitions


def recent_start(minutes_ago: int = 40) -> dt.datetime:
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    return now - dt.timedelta(minutes=minutes_ago)


def stored_counts(path: str) -> dict[tuple[dt.datetime, int, str], int]:
    con = duckdb.connect(path, read_only=True)
    try:
        rows = con.execute(
            "select minute, customer_id, channel, notifications from notification_counts_minutely"
        ).fetchall()
    finally:
        con.close()
    return {(m.replace(tzinfo=UTC), c, ch): n for m, c, ch, n in rows}


def test_definitions_load_with_the_contract_keys_groups_and_partitions(platform):
    defs = platform.defs
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"notification_events", "notification_dead_letters", "notification_counts_minutely"} <= keys
    counts = defs.resolve_assets_def("notification_counts_minutely")
    assert counts.partitions_def.fmt == "%Y-%m-%d-%H:%M"
    assert counts.backfill_policy == dg.BackfillPolicy.single_run()
    assert counts.group_names_by_key[dg.AssetKey("notification_counts_minutely")] == "notifications"
    assert {s.name for s in defs.sensors} == {
        "notification_ingest_sensor",
        "notification_minutes_sensor",
        "notification_report_days_sensor",  # issue 3's report days (assets/report_days.py)
    }


def test_stream_to_counts_through_sensors_and_runs_equals_the_reference(platform, broker, monkeypatch):
    import os
    import time

    from quarantine_platform.demo.run import drive

    monkeypatch.setenv("QP_ALLOWED_LATENESS_SECONDS", "1")
    start = recent_start(30)
    messages = known_stream(start, minutes=5, per_minute=200)
    produce_all(broker, "notifications", messages[: len(messages) // 2])
    instance = dg.DagsterInstance.get()
    cursors: dict[str, str | None] = {}
    first = drive(platform.defs, instance, cursors, log=lambda _: None)
    produce_all(broker, "notifications", messages[len(messages) // 2 :])  # includes the late ones
    second = drive(platform.defs, instance, cursors, log=lambda _: None)
    time.sleep(1.5)  # nothing new for the allowed lateness: the last minutes close
    drive(platform.defs, instance, cursors, log=lambda _: None)
    assert first["ingest_runs"] >= 1 and second["ingest_runs"] >= 1
    assert first["failed_checks"] == 0 and second["failed_checks"] == 0
    assert stored_counts(os.environ["QP_WAREHOUSE"]) == reference_counts(messages)


def test_ingest_sensor_requests_each_offset_range_once(platform, broker):
    from quarantine_platform.sensors import notification_ingest_sensor

    messages = known_stream(recent_start(), minutes=1, per_minute=30)
    produce_all(broker, "notifications", messages)
    resources = platform.defs.resources
    first = notification_ingest_sensor(dg.build_sensor_context(cursor=None, resources=resources))
    (request,) = first.run_requests
    ends = request.run_config["ops"]["notification_stream"]["config"]["ends"]
    assert sum(ends.values()) == len(messages)
    assert request.run_key == "notifications:" + ",".join(f"{p}:0-{e}" for p, e in sorted(ends.items()))
    # A replayed tick (same cursor) asks for the same run key, which Dagster launches only once.
    replay = notification_ingest_sensor(dg.build_sensor_context(cursor=None, resources=resources))
    assert [r.run_key for r in replay.run_requests] == [request.run_key]
    # The next tick, with nothing new, asks for nothing; new messages give a range starting at the old end.
    quiet = notification_ingest_sensor(dg.build_sensor_context(cursor=first.cursor, resources=resources))
    assert isinstance(quiet, dg.SkipReason)
    produce_all(broker, "notifications", messages[:3])
    more = notification_ingest_sensor(dg.build_sensor_context(cursor=first.cursor, resources=resources))
    (next_request,) = more.run_requests
    cursor = json.loads(first.cursor)
    for part in next_request.run_key.split(":", 1)[1].split(","):
        p, span = part.split(":")
        assert int(span.split("-")[0]) == cursor[p]


def test_ingest_sensor_skips_with_the_bootstrap_named_when_kafka_is_down(platform, monkeypatch):
    from quarantine_platform.sensors import notification_ingest_sensor

    monkeypatch.setenv("QP_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    result = notification_ingest_sensor(dg.build_sensor_context(resources=platform.defs.resources))
    assert isinstance(result, dg.SkipReason)
    assert "127.0.0.1:1" in result.skip_message


def test_ingestion_run_fails_fast_naming_the_bootstrap_and_a_later_run_resumes(platform, broker, monkeypatch):
    from quarantine_platform.assets.notifications import notification_stream
    from quarantine_platform.storage.notification_lake import NotificationLake

    messages = known_stream(recent_start(), minutes=1, per_minute=50)
    produce_all(broker, "notifications", messages)
    monkeypatch.setenv("QP_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    failed = dg.materialize([notification_stream], resources=platform.defs.resources, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert "127.0.0.1:1" in failure.event_specific_data.error.message
    monkeypatch.setenv("QP_KAFKA_BOOTSTRAP", broker)
    assert dg.materialize([notification_stream], resources=platform.defs.resources).success
    import os

    lake = NotificationLake(os.environ["QP_LAKE_DIR"])
    stored = lake.scan_events().collect().height + lake.scan_dead_letters().collect().height
    assert stored == len(messages)


def test_minutes_sensor_requests_closed_minutes_once_and_recounts_late_ones(platform):
    import os

    from quarantine_platform.sensors import notification_minutes_sensor
    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.transforms.notifications import parse_notifications

    lake = NotificationLake(os.environ["QP_LAKE_DIR"])
    start = recent_start(20)

    def commit(offsets: range, minute: int) -> None:
        values = [
            json.dumps(
                {
                    "customer_id": 1,
                    "message_id": f"m{o}",
                    "customer_name": "A",
                    "channel": "SMS",
                    "payload": "p",
                    "event_datetime": (start + dt.timedelta(minutes=minute)).isoformat(),
                }
            ).encode()
            for o in offsets
        ]
        batch = parse_notifications(values, [0] * len(values), list(offsets), "notifications")
        lake.commit("notifications", 0, offsets.start, offsets.stop, batch.events, batch.dead_letters)

    commit(range(0, 5), 0)
    commit(range(5, 10), 6)
    resources = platform.defs.resources
    first = notification_minutes_sensor(dg.build_sensor_context(resources=resources))
    key = start.strftime("%Y-%m-%d-%H:%M")
    (req,) = first.run_requests
    assert req.tags["dagster/asset_partition_range_start"] == key
    # watermark minute 6 minus 60 s lateness: minutes 0..4 are closed
    assert req.tags["dagster/asset_partition_range_end"] == (start + dt.timedelta(minutes=4)).strftime(
        "%Y-%m-%d-%H:%M"
    )
    replay = notification_minutes_sensor(dg.build_sensor_context(resources=resources))
    assert [r.run_key for r in replay.run_requests] == [req.run_key]
    commit(range(10, 12), 2)  # late: minute 2 was already requested
    late = notification_minutes_sensor(dg.build_sensor_context(cursor=first.cursor, resources=resources))
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in late.run_requests
    ] == [((start + dt.timedelta(minutes=2)).strftime("%Y-%m-%d-%H:%M"),) * 2]


def test_an_ingestion_run_reads_a_large_backlog_in_worker_processes(platform, broker, monkeypatch):
    import os

    from quarantine_platform.assets.notifications import notification_stream
    from quarantine_platform.kafka import ingest as ingest_module
    from quarantine_platform.storage.notification_lake import NotificationLake

    messages = known_stream(recent_start(), minutes=5, per_minute=60)
    produce_all(broker, "notifications", messages)
    monkeypatch.setattr(ingest_module, "MIN_MESSAGES_PER_WORKER", 50)  # a test-sized "large" backlog
    monkeypatch.setenv("QP_INGEST_WORKERS", "2")
    try:
        result = dg.materialize([notification_stream], resources=platform.defs.resources)
    finally:
        ingest_module._drop_pool()
    meta = result.asset_materializations_for_node("notification_stream")[0].metadata
    assert meta["worker_processes"].value == 2
    assert meta["messages_read"].value == len(messages)
    (check,) = result.get_asset_check_evaluations()  # bronze's, on the files both workers wrote
    assert check.check_name == "bronze_offsets_unique" and check.passed
    assert check.metadata["files_written_checked"].value == meta["files_committed"].value >= 2
    lake = NotificationLake(os.environ["QP_LAKE_DIR"])
    stored = lake.scan_events().collect().height + lake.scan_dead_letters().collect().height
    assert stored == len(messages)


def test_a_bad_worker_setting_fails_the_run_with_its_name(platform, monkeypatch):
    from quarantine_platform.assets.notifications import notification_stream

    monkeypatch.setenv("QP_INGEST_WORKERS", "zero")
    failed = dg.materialize([notification_stream], resources=platform.defs.resources, raise_on_error=False)
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert "QP_INGEST_WORKERS='zero'" in failure.event_specific_data.error.message
