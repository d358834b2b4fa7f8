"""billing_daily through Dagster: a day, a range in one run, the check against the minutes, the schedule."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.storage.billing_warehouse import BILLING_COLUMNS, billed_days, read_billing
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.storage.notification_warehouse import replace_minutes
from quarantine_platform.transforms.billing import BILLING_ROWS_SCHEMA, day_bounds
from quarantine_platform.transforms.notifications import minute_counts
from quarantine_platform_tests.billing.bronze import commit, event

# Within the minute retention, so the check looks at it.
DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
NEXT = DAY + dt.timedelta(days=1)


def at(day: dt.date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}+00:00"


@pytest.fixture
def platform(platform_env):
    from quarantine_platform import definitions

    data = Path(os.environ["QP_DATA_DIR"])
    (data / "pricing.csv").write_text("customer_id,unit_price_brl\n*,0.04\n11,0.0125\n")
    lake = os.environ["QP_LAKE_DIR"]
    commit(
        lake,
        [
            event(11, "A1", at(DAY, "10:00:00.000"), name="Acme"),
            event(11, "A2", at(DAY, "10:00:30.000"), channel="WhatsApp", name="Acme"),
            event(11, "A3", at(DAY, "10:01:00.000"), channel="SMS", name="Acme"),
            event(22, "B1", at(DAY, "23:59:59.999"), name="Boa Vista"),
            event(22, "B2", at(NEXT, "00:00:00.000"), name="Boa Vista"),
        ],
        partition=0,
    )
    commit(lake, [event(11, "A1", at(DAY, "10:05:00.000"), name="Acme")], partition=1)  # a re-send
    return definitions


def materialize(definitions, **kwargs) -> dg.ExecuteInProcessResult:
    from quarantine_platform.assets.billing import billing_daily

    return dg.materialize(
        [billing_daily],
        resources=definitions.defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def billing_table(first: dt.date, last: dt.date) -> pl.DataFrame:
    con = duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True)
    try:
        return read_billing(con, first, last).select(BILLING_COLUMNS)
    finally:
        con.close()


def expected(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=BILLING_ROWS_SCHEMA, orient="row")


def run_check(definitions) -> dg.AssetCheckEvaluation:
    job = definitions.defs.resolve_job_def("billing_recheck_job")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def count_minutes(start: dt.datetime, end: dt.datetime) -> None:
    """What notification_counts_minutely does for [start, end)."""
    events = NotificationLake(os.environ["QP_LAKE_DIR"]).scan_events()
    counts = minute_counts(events, start, end, os.environ["QP_TIMEZONE"])
    con = duckdb.connect(os.environ["QP_WAREHOUSE"])
    try:
        replace_minutes(con, start, end, counts, bronze_seq=0, run_id="test")
    finally:
        con.close()


def test_a_day_is_billed_with_decimal_values_and_per_customer_prices(platform):
    result = materialize(platform, partition_key=DAY.isoformat())
    assert result.success
    assert_frame_equal(
        billing_table(DAY, NEXT),
        expected(
            [
                (DAY, 11, "Acme", 2, Decimal("0.0125"), Decimal("0.03")),  # 0.025 -> 0.03, half-up
                (DAY, 22, "Boa Vista", 1, Decimal("0.0400"), Decimal("0.04")),
            ]
        ),
    )
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["value_brl"].value == "0.07"
    # Billing again replaces the day, never adds to it.
    assert materialize(platform, partition_key=DAY.isoformat()).success
    assert billing_table(DAY, DAY).height == 2


def test_a_range_of_days_is_billed_in_one_run(platform):
    tags = {
        "dagster/asset_partition_range_start": DAY.isoformat(),
        "dagster/asset_partition_range_end": NEXT.isoformat(),
    }
    result = materialize(platform, tags=tags)
    assert result.success
    assert {e.partition for e in result.get_asset_materialization_events()} == {str(DAY), str(NEXT)}
    table = billing_table(DAY, NEXT)
    assert table.select("date", "customer_id", "notifications").rows() == [
        (DAY, 11, 2),
        (DAY, 22, 1),
        (NEXT, 22, 1),
    ]
    con = duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True)
    try:
        assert billed_days(con, DAY, NEXT) == [DAY, NEXT]
        assert con.execute("select distinct run_id from billing_days_billed").fetchall() == [(result.run_id,)]
    finally:
        con.close()


def test_a_non_utc_timezone_bills_local_days(platform, monkeypatch):
    monkeypatch.setenv("QP_TIMEZONE", "America/Sao_Paulo")
    commit(os.environ["QP_LAKE_DIR"], [event(33, "C1", at(NEXT, "02:30:00.000"), name="Noite")])  # local DAY
    assert materialize(platform, partition_key=DAY.isoformat()).success
    # B1 at 23:59:59.999Z and B2 at 00:00Z are 20:59 and 21:00 local: both on DAY; C1 too.
    assert billing_table(DAY, NEXT).select("customer_id", "notifications").rows() == [
        (11, 2),
        (22, 2),
        (33, 1),
    ]


def test_the_check_fails_after_a_late_event_and_passes_after_rebilling(platform):
    start, end = day_bounds(DAY, "UTC")
    count_minutes(start, end)
    assert materialize(platform, partition_key=DAY.isoformat()).success
    assert run_check(platform).passed

    # A late WhatsApp message of 10:02, ingested and counted into its minute after the day was billed.
    commit(os.environ["QP_LAKE_DIR"], [event(11, "LATE", at(DAY, "10:02:10.000"), name="Acme")], partition=2)
    minute = dt.datetime.combine(DAY, dt.time(10, 2), dt.UTC)
    count_minutes(minute, minute + dt.timedelta(minutes=1))
    failed = run_check(platform)
    assert not failed.passed
    assert failed.metadata["days_wrong"].value == 1
    assert f"--partition {DAY}" in failed.metadata["rebill"].value

    assert materialize(platform, partition_key=DAY.isoformat()).success
    assert billing_table(DAY, DAY).filter(pl.col("customer_id") == 11)["notifications"].item() == 3
    assert run_check(platform).passed


def test_the_check_fails_when_minutes_were_never_counted(platform):
    assert materialize(platform, partition_key=DAY.isoformat()).success
    assert not run_check(platform).passed


def test_a_malformed_pricing_file_fails_the_run_naming_file_and_line(platform):
    path = Path(os.environ["QP_DATA_DIR"]) / "pricing.csv"
    path.write_text("customer_id,unit_price_brl\n*,0,04\n")
    result = materialize(platform, partition_key=DAY.isoformat(), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert f"{path}, line 2: expected 2 columns" in failure.message


def test_without_a_pricing_file_everyone_pays_the_default(platform):
    (Path(os.environ["QP_DATA_DIR"]) / "pricing.csv").unlink()
    assert materialize(platform, partition_key=DAY.isoformat()).success
    assert billing_table(DAY, DAY)["unit_price_brl"].to_list() == [Decimal("0.0400")] * 2


def test_the_schedule_bills_yesterday_after_midnight_and_the_lateness(platform):
    from quarantine_platform.assets.billing import billing_daily_schedule, billing_recheck_schedule

    assert billing_daily_schedule.cron_schedule == "11 0 * * *"  # 00:10 + 60 s of allowed lateness
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2020, 2, 4, 0, 11, tzinfo=dt.UTC)
    )
    (request,) = billing_daily_schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2020-02-03"
    names = {s.name for s in platform.defs.schedules}
    assert {billing_daily_schedule.name, billing_recheck_schedule.name} <= names


def test_a_month_backfill_through_dagsters_command_line_is_one_run(platform):
    """The CLI accepts a range for billing_daily (single-run backfill policy) and bills every day of it."""
    first = DAY - dt.timedelta(days=2)
    dagster = str(Path(sys.executable).with_name("dagster"))
    done = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "quarantine_platform.definitions",
            "--select",
            "billing_daily",
            "--partition-range",
            f"{first}...{NEXT}",
        ],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    con = duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True)
    try:
        assert billed_days(con, first, NEXT) == [first + dt.timedelta(days=i) for i in range(4)]
        runs = con.execute("select count(distinct run_id) from billing_days_billed").fetchall()[0][0]
    finally:
        con.close()
    assert runs == 1
