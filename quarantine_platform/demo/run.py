"""`qp demo`: the whole notification platform end to end on embedded defaults.

Starts the embedded broker, produces the deterministic demo stream, then lets Dagster do the work: the real
sensors are evaluated and the runs they request are executed on the project's Dagster instance (so the UI
shows them afterwards), until everything produced is ingested and every minute is counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import socket
import subprocess
import sys
import time

import dagster as dg

from quarantine_platform import settings
from quarantine_platform.dagster_home import ensure_dagster_home
from quarantine_platform.demo.batch import batch_summary, run_batch_domains
from quarantine_platform.demo.stream import DemoSpec, generate, produce

# Runs log to the instance (the UI shows everything); the terminal gets warnings only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def start_broker(bootstrap: str) -> tuple[subprocess.Popen, str]:
    """Start `qp broker` on `bootstrap`, or on a free port if it is taken. Returns (process, address)."""
    host, port = bootstrap.rsplit(":", 1)
    if not _port_free(host, int(port)):
        with socket.socket() as s:
            s.bind((host, 0))
            port = str(s.getsockname()[1])
    address = f"{host}:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "quarantine_platform.cli", "broker", "--bootstrap", address],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("BROKER READY"):
        proc.kill()
        raise RuntimeError(f"the embedded broker did not start on {address}: {line.strip()}")
    return proc, address


def drive(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cursors: dict[str, str | None],
    log=print,  # noqa: ANN001
    max_rounds: int = 200,
) -> dict:
    """Tick the two notification sensors and execute what they request until both are quiet. `cursors` holds
    the sensors' cursors between calls, as the Dagster daemon keeps them between ticks."""
    from quarantine_platform.assets.notifications import notification_counts_minutely, notification_stream
    from quarantine_platform.assets.panel import notification_panel
    from quarantine_platform.sensors import notification_ingest_sensor, notification_minutes_sensor

    resources = defs.resources
    cursors.setdefault("ingest", None)
    cursors.setdefault("minutes", None)
    totals = {"ingest_runs": 0, "count_runs": 0, "failed_checks": 0}
    for _ in range(max_rounds):
        launched = 0
        ctx = dg.build_sensor_context(instance=instance, cursor=cursors["ingest"], resources=resources)
        result = notification_ingest_sensor(ctx)
        if isinstance(result, dg.SensorResult):
            cursors["ingest"] = result.cursor
            for req in result.run_requests or []:
                log(f"ingesting {req.run_key}")
                out = dg.materialize(
                    [notification_stream],  # with its bronze check
                    instance=instance,
                    resources=resources,
                    run_config={**req.run_config, **QUIET},
                    tags={**req.tags, "dagster/sensor_name": "notification_ingest_sensor"},
                )
                totals["failed_checks"] += _failed_checks(out)
                totals["ingest_runs"] += 1
                launched += 1
        ctx = dg.build_sensor_context(instance=instance, cursor=cursors["minutes"], resources=resources)
        result = notification_minutes_sensor(ctx)
        if isinstance(result, dg.SensorResult):
            cursors["minutes"] = result.cursor
            for req in result.run_requests or []:
                log(
                    f"counting minutes {req.tags['dagster/asset_partition_range_start']} .. "
                    f"{req.tags['dagster/asset_partition_range_end']}"
                )
                # What the sensor asked for (the counts, then the panel's snapshot), as the daemon runs it.
                wanted = set(req.asset_selection or [])
                out = dg.materialize(
                    [a for a in (notification_counts_minutely, notification_panel) if set(a.keys) & wanted],
                    instance=instance,
                    resources=resources,
                    run_config=QUIET,
                    tags={**req.tags, "dagster/sensor_name": "notification_minutes_sensor"},
                )
                totals["failed_checks"] += _failed_checks(out)
                totals["count_runs"] += 1
                launched += 1
        if launched == 0:
            return totals
    raise RuntimeError(f"the sensors still requested runs after {max_rounds} rounds")


def _failed_checks(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.get_asset_check_evaluations() if not e.passed)


def summary(instance_lake_root: str, warehouse: str) -> dict:
    import duckdb
    import polars as pl

    from quarantine_platform.storage.notification_lake import NotificationLake

    lake = NotificationLake(instance_lake_root)
    events = (
        lake.scan_events().select(pl.len().alias("n"), pl.col("message_id").n_unique().alias("u")).collect()
    )
    # Reasons grouped by kind ("not JSON: <parser detail>" -> "not JSON").
    dead = (
        lake.scan_dead_letters().group_by(reason=pl.col("reason").str.split(":").list.first()).len().collect()
    )
    con = duckdb.connect(warehouse, read_only=True)
    try:
        counted = con.execute(
            "select coalesce(sum(notifications), 0), coalesce(sum(notifications) filter "
            "(where channel = 'whatsapp'), 0), count(distinct customer_id) from notification_counts_minutely"
        ).fetchall()[0]
        minutes = con.execute("select count(*) from notification_minutes_processed").fetchall()[0][0]
    finally:
        con.close()
    return {
        "bronze_events": int(events["n"][0]),
        "distinct_message_ids": int(events["u"][0]),
        "dead_letters": int(dead["len"].sum() or 0),
        "dead_letter_reasons": dead.sort("len", descending=True).head(10).rows(),
        "counted_notifications": int(counted[0]),
        "counted_whatsapp": int(counted[1]),
        "customers": int(counted[2]),
        "minutes_processed": int(minutes),
    }


def _add(totals: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        totals[key] += value


def run_demo(messages: int, day: dt.date | None = None, slice_messages: int = 50_000) -> int:
    settings.apply_defaults()
    home = ensure_dagster_home()
    day = day or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))
    broker, address = start_broker(settings.get("QP_KAFKA_BOOTSTRAP"))
    os.environ["QP_KAFKA_BOOTSTRAP"] = address
    try:
        print(f"broker: {address} (embedded; stops when the demo ends)")
        from quarantine_platform.definitions import defs

        instance = dg.DagsterInstance.get()
        spec = DemoSpec(day=day, messages=messages)
        stream = generate(spec)
        kinds: dict[str, int] = {}
        cursors: dict[str, str | None] = {}
        totals = {"ingest_runs": 0, "count_runs": 0, "failed_checks": 0}
        started = time.monotonic()
        # Produced slice by slice, each ingested and counted before the next, as a live stream would be:
        # the embedded broker, like any Kafka, keeps a bounded log per partition.
        while True:
            sent = produce(address, settings.get("QP_KAFKA_TOPIC"), itertools.islice(stream, slice_messages))
            if not sent:
                break
            for kind, n in sent.items():
                kinds[kind] = kinds.get(kind, 0) + n
            _add(totals, drive(defs, instance, cursors, log=lambda _: None))
            print(
                f"  produced {sum(kinds.values()):>10,} messages; runs so far: {totals['ingest_runs']} "
                f"ingestion, {totals['count_runs']} minute counting",
                flush=True,
            )
        lateness = int(settings.get("QP_ALLOWED_LATENESS_SECONDS"))
        print(
            f"stream ended; waiting the allowed lateness ({lateness}s) to close its last minutes", flush=True
        )
        time.sleep(lateness + 1)
        _add(totals, drive(defs, instance, cursors, log=lambda _: None))
        took = time.monotonic() - started
        facts = summary(settings.get("QP_LAKE_DIR"), settings.get("QP_WAREHOUSE"))
        print("the batch domains, through Dagster:", flush=True)
        batch_started = time.monotonic()
        echo = lambda line: print(line, flush=True)  # noqa: E731
        totals["failed_checks"] += run_batch_domains(defs, instance, day, log=echo)
        batch_took = time.monotonic() - batch_started
        batch = batch_summary(settings.get("QP_WAREHOUSE"))
    finally:
        broker.terminate()
        broker.wait(10)
    print()
    print("=== quarantine_platform demo: summary ===")
    print(f"produced: {sum(kinds.values()):,} messages for {day}: {kinds}")
    print(
        f"Dagster runs: {totals['ingest_runs']} ingestion, {totals['count_runs']} minute counting "
        f"({took:.1f}s); failed asset checks: {totals['failed_checks']}"
    )
    print(
        f"ingested into bronze: {facts['bronze_events']:,} events "
        f"({facts['distinct_message_ids']:,} distinct message ids)"
    )
    print(f"dead-lettered: {facts['dead_letters']:,}")
    for reason, n in facts["dead_letter_reasons"]:
        print(f"    {n:>7,}  {reason}")
    print(
        f"counted: {facts['counted_notifications']:,} notifications "
        f"({facts['counted_whatsapp']:,} WhatsApp) for {facts['customers']} customers "
        f"over {facts['minutes_processed']:,} minutes"
    )
    print(
        f"billed: {batch['billed_customers']} customer-days, {batch['billed_notifications']:,} WhatsApp "
        f"notifications, R$ {batch['billed_value_brl']} ({batch_took:.1f}s for all batch domains)"
    )
    print(
        f"invoice averages: {batch['invoice_average_rows']} rows over "
        f"{batch['invoice_reference_months']} reference months"
    )
    channels = ", ".join(f"{c} {n:,}" for c, n in batch["quarantine_by_channel"])
    print(f"quarantine today by channel: {channels}")
    print()
    print("Try (each reads what Dagster materialized):")
    for command in (
        f"qp export billing --date {day} --human",
        "qp export invoice-averages --month 2020-01",
        "qp export chatbot --date 2019-12-16 --flow F1000",
        "qp export quarantine --date $(date +%F) --channel CRM --output quarantine.csv",
        f"qp export notifications --customer <id> --from {day}T00:00 --to {day}T01:00",
        "qp token create --operator && qp panel      # then http://127.0.0.1:8080",
    ):
        print(f"    .venv/bin/{command}")
    print()
    print("Open the Dagster UI on this same state:")
    print(f"    DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml")
    print("then browse http://127.0.0.1:3000 (assets, runs, checks, sensors).")
    return 0 if totals["failed_checks"] == 0 else 1


def run(args: argparse.Namespace) -> int:
    """`qp demo`."""
    return run_demo(args.messages, args.day)
