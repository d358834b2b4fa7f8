"""The stream through Dagster's own command line: runs killed with SIGKILL, and a partition range."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from quarantine_platform_tests.notifications.helpers import known_stream, produce_all, reference_counts
from quarantine_platform_tests.notifications.test_notification_dagster import recent_start, stored_counts

DAGSTER = str(Path(sys.executable).with_name("dagster"))
INGEST = [
    "asset",
    "materialize",
    "-m",
    "quarantine_platform.definitions",
    "--select",
    "notification_events,notification_dead_letters",
]


def launch_ingestion(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [DAGSTER, *INGEST], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> bool:
    """SIGKILL the run's whole process group as soon as `ready()` holds. False if the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("the condition to kill the run never held")


def test_ingestion_killed_at_several_points_loses_nothing_and_doubles_nothing(
    platform_env, broker, monkeypatch
):
    from quarantine_platform import definitions
    from quarantine_platform.demo.run import drive
    from quarantine_platform.storage.notification_lake import NotificationLake

    monkeypatch.setenv("QP_ALLOWED_LATENESS_SECONDS", "1")
    messages = known_stream(recent_start(30), minutes=4, per_minute=4000, seed=11)
    produce_all(broker, "notifications", messages)
    env = {**os.environ, "QP_INGEST_CHUNK_MESSAGES": "1500"}
    lake = NotificationLake(os.environ["QP_LAKE_DIR"])
    events_dir = lake.events_dir("notifications")

    def committed() -> int:
        return len(lake.committed("notifications"))

    def writing() -> bool:
        return events_dir.is_dir() and any(p.name.endswith(".tmp") for p in os.scandir(events_dir))

    kills = 0
    # Killed right after the first commit, in the middle of writing a file, and after several more commits.
    for condition in (lambda: committed() >= 1, writing, lambda: committed() >= 6):
        kills += kill_when(launch_ingestion(env), condition)
    assert kills >= 2, "the runs finished before they could be killed: the stream is too small"
    assert committed() > 0
    final = launch_ingestion(env)
    assert final.wait(120) == 0, final.stderr.read().decode()[-2000:] if final.stderr else ""

    stored = [
        *lake.scan_events().select("partition", "offset").collect().rows(),
        *lake.scan_dead_letters().select("partition", "offset").collect().rows(),
    ]
    assert len(stored) == len(set(stored)) == len(messages)
    cursors: dict[str, str | None] = {}
    drive(definitions.defs, dg.DagsterInstance.get(), cursors, log=lambda _: None)
    time.sleep(1.5)  # the allowed lateness passes with nothing new: the last minutes close
    drive(definitions.defs, dg.DagsterInstance.get(), cursors, log=lambda _: None)
    assert stored_counts(os.environ["QP_WAREHOUSE"]) == reference_counts(messages)


def test_minute_counts_materialize_from_the_command_line_with_a_partition_range(platform_env):
    import json

    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.transforms.notifications import parse_notifications

    start = recent_start(90)
    values = [
        json.dumps(
            {
                "customer_id": 5,
                "message_id": f"m{i}",
                "customer_name": "A",
                "channel": "Whatsapp",
                "payload": "p",
                "event_datetime": (start + dt.timedelta(seconds=20 * i)).isoformat(),
            }
        ).encode()
        for i in range(9)
    ]  # 3 per minute over 3 minutes
    batch = parse_notifications(values, [0] * 9, list(range(9)), "notifications")
    NotificationLake(os.environ["QP_LAKE_DIR"]).commit(
        "notifications", 0, 0, 9, batch.events, batch.dead_letters
    )
    first, last = start, start + dt.timedelta(minutes=59)
    fmt = "%Y-%m-%d-%H:%M"
    result = subprocess.run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "quarantine_platform.definitions",
            "--select",
            "notification_counts_minutely",
            "--partition-range",
            f"{first.strftime(fmt)}...{last.strftime(fmt)}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert stored_counts(os.environ["QP_WAREHOUSE"]) == {
        (start + dt.timedelta(minutes=m), 5, "whatsapp"): 3 for m in range(3)
    }
