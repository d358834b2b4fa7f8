"""Report days: the day's first copies laid out for the export, when they stand for bronze and when not, and
the export reading them with the same rows and order as from bronze."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.exports.notifications import (
    BronzeRange,
    ReportDayRange,
    notifications_report,
    plan_report,
    report_frame,
    write_notifications_report,
)
from quarantine_platform.storage.bronze_window import bronze_files, scan_window_parts
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.storage.report_days import ReportDays
from quarantine_platform.transforms.billing import day_bounds
from quarantine_platform.transforms.notifications import later_copies
from quarantine_platform.transforms.report_days import REPORT_DAY_SCHEMA, minute_rows, sorted_chunk
from quarantine_platform_tests.billing.bronze import TOPIC, commit, event, many, rows_and_peak

SP = "America/Sao_Paulo"  # UTC-3: a local day runs 03:00 to 03:00 UTC
DAY = dt.date(2020, 2, 3)


def utc(clock: str, day: int = 3) -> dt.datetime:
    return dt.datetime.fromisoformat(f"2020-02-{day:02d}T{clock}+00:00")


@pytest.fixture
def lake(tmp_path: Path) -> str:
    """Two customers over three local days of São Paulo, re-sends within a day and across days, two
    partitions, and two messages at the same instant (decided by partition, then offset)."""
    root = str(tmp_path / "lake")
    commit(
        root,
        [
            event(11, "D0", "2020-02-03T02:59:59.999+00:00", name="Acme"),  # Feb 2 in São Paulo
            event(11, "A1", "2020-02-03T10:00:00.000-03:00", name="Acme"),  # 13:00 UTC
            event(22, "B1", "2020-02-03T12:00:00.000+00:00", name="Boa"),
            event(11, "A2", "2020-02-03T12:00:00.000+00:00", channel="SMS", name="Acme"),
            event(11, "T1", "2020-02-03T14:00:00.000+00:00", name="Acme"),
            event(11, "E1", "2020-02-04T02:00:00.000+00:00", name="Acme"),  # still Feb 3 locally
            event(11, "N1", "2020-02-04T03:00:00.000+00:00", name="Acme"),  # Feb 4 locally
        ],
        partition=0,
    )
    commit(
        root,
        [
            event(11, "A1", "2020-02-03T13:30:00.000+00:00", name="Acme"),  # re-send, same local day
            event(11, "T0", "2020-02-03T14:00:00.000+00:00", name="Acme Ltda"),  # same instant as T1
            event(22, "B0", "2020-02-03T11:59:00.000+00:00", name="Boa"),
            event(11, "D0", "2020-02-03T15:00:00.000+00:00", name="Acme"),  # its first copy was Feb 2
            event(11, "N1", "2020-02-04T04:00:00.000+00:00", name="Acme"),  # re-send on Feb 4
        ],
        partition=1,
    )
    return root


def files_of(root: str) -> list:
    return bronze_files(NotificationLake(root), TOPIC)


def day_rows(root: str) -> pl.LazyFrame:
    start, end = day_bounds(DAY, SP)
    return scan_window_parts(files_of(root), start, end).lazy()


# --- the transforms ---------------------------------------------------------------------------------------


def test_later_copies_are_the_re_sends_within_the_local_day(lake):
    later = later_copies(day_rows(lake), SP)
    # A1's copy at 13:30 on partition 1, offset 0; D0 on Feb 3 is the day's first copy of D0 (its earlier
    # copy is on Feb 2); N1 is on Feb 4.
    expected = {"partition": [1], "offset": [0], "event_time": [utc("13:30:00")]}
    assert_frame_equal(later, pl.DataFrame(expected, schema=later.schema))
    # Keys sorted in buckets find the same copies.
    assert_frame_equal(later_copies(day_rows(lake), SP, key_buckets=3), later)


def test_minute_rows_counts_every_row_of_the_day_by_minute(lake):
    minutes = minute_rows(day_rows(lake))
    assert minutes["minute"].to_list() == [
        utc("11:59:00"),
        utc("12:00:00"),
        utc("13:00:00"),
        utc("13:30:00"),
        utc("14:00:00"),
        utc("15:00:00"),
        utc("02:00:00", day=4),
    ]
    assert minutes["rows"].to_list() == [1, 2, 1, 1, 2, 1, 1]


def test_a_chunk_is_sorted_by_customer_then_time_partition_offset_without_later_copies(lake):
    later = later_copies(day_rows(lake), SP)
    chunk = sorted_chunk(day_rows(lake), later)
    expected = pl.DataFrame(
        [
            (11, "Acme", "A2", utc("12:00:00")),  # an SMS: the report holds every channel
            (11, "Acme", "A1", utc("13:00:00")),
            (11, "Acme", "T1", utc("14:00:00")),  # partition 0 before partition 1 at the same instant
            (11, "Acme Ltda", "T0", utc("14:00:00")),
            (11, "Acme", "D0", utc("15:00:00")),
            (11, "Acme", "E1", utc("02:00:00", day=4)),
            (22, "Boa", "B0", utc("11:59:00")),
            (22, "Boa", "B1", utc("12:00:00")),
        ],
        schema=["customer_id", "customer_name", "message_id", "event_time"],
        orient="row",
    )
    assert chunk.schema == REPORT_DAY_SCHEMA
    assert_frame_equal(chunk.select(expected.columns), expected, check_dtypes=False)


# --- the store --------------------------------------------------------------------------------------------


def test_a_report_day_holds_the_days_first_copies_in_chunks_each_sorted(lake):
    store = ReportDays(lake)
    info = store.compact(TOPIC, DAY, SP, files_of(lake), chunk_rows=3)
    stored = pl.read_parquet(store.path(TOPIC, DAY))
    # Chunks of at most 3 rows (counted before re-sends are dropped), cut at minutes: [.., 13:00) holds B0,
    # B1, A2; [13:00, 14:00) A1 and its re-send; [14:00, 02:00) T1, T0, D0; then E1. Each sorted by customer.
    assert stored["message_id"].to_list() == ["A2", "B0", "B1", "A1", "T1", "T0", "D0", "E1"]
    assert stored.schema == REPORT_DAY_SCHEMA
    assert info.rows == stored.height == 8
    assert info.covered_seq == 2 and info.timezone == SP and info.day == "2020-02-03"
    assert store.info(TOPIC, DAY) == info
    assert store.days(TOPIC) == [DAY]
    assert store.usable(TOPIC, DAY, SP, files_of(lake)) == store.path(TOPIC, DAY)


def test_a_late_event_of_the_day_makes_it_stale_and_another_days_event_does_not(lake):
    store = ReportDays(lake)
    store.compact(TOPIC, DAY, SP, files_of(lake))
    commit(lake, [event(33, "X1", "2020-02-05T12:00:00.000+00:00")], partition=0)  # another day
    assert store.usable(TOPIC, DAY, SP, files_of(lake)) is not None
    commit(lake, [event(11, "L1", "2020-02-03T20:00:00.000+00:00")], partition=1)  # late, same day
    files = files_of(lake)
    assert store.usable(TOPIC, DAY, SP, files) is None
    assert [Path(f.path).name[:12] for f in store.info(TOPIC, DAY).stale(files)] == ["000000000004"]
    store.compact(TOPIC, DAY, SP, files)  # made again: up to date
    assert store.usable(TOPIC, DAY, SP, files_of(lake)) is not None


def test_a_report_day_made_for_another_time_zone_or_layout_is_not_used(lake, monkeypatch):
    store = ReportDays(lake)
    store.compact(TOPIC, DAY, "UTC", files_of(lake))
    assert store.usable(TOPIC, DAY, "UTC", files_of(lake)) is not None
    assert store.usable(TOPIC, DAY, SP, files_of(lake)) is None
    from quarantine_platform.storage import report_days

    monkeypatch.setattr(report_days, "LAYOUT", 2)
    assert store.usable(TOPIC, DAY, "UTC", files_of(lake)) is None


def test_an_unreadable_report_day_is_ignored_and_a_dead_writers_file_is_removed(lake):
    store = ReportDays(lake)
    store.folder(TOPIC).mkdir(parents=True)
    store.path(TOPIC, DAY).write_bytes(b"not parquet")
    leftover = store.folder(TOPIC) / ".2020-02-03.dead.tmp"
    leftover.write_bytes(b"half")
    assert store.info(TOPIC, DAY) is None and store.usable(TOPIC, DAY, SP, files_of(lake)) is None
    store.compact(TOPIC, DAY, SP, files_of(lake))
    assert not leftover.exists()
    assert store.usable(TOPIC, DAY, SP, files_of(lake)) is not None


def test_a_day_without_messages_is_an_empty_report_day(lake):
    store = ReportDays(lake)
    info = store.compact(TOPIC, dt.date(2020, 2, 10), SP, files_of(lake))
    assert info.rows == 0
    assert pl.read_parquet(store.path(TOPIC, dt.date(2020, 2, 10))).schema == REPORT_DAY_SCHEMA


# --- the export reads them -------------------------------------------------------------------------------


def export(root: str, start: dt.datetime, end: dt.datetime, customer: int = 11) -> pl.DataFrame:
    return notifications_report(root, TOPIC, customer, start, end, SP).collect()


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc("00:00:00"), utc("00:00:00", day=6)),  # three local days and more
        (utc("13:15:00"), utc("03:30:00", day=4)),  # parts of two local days
        (utc("14:00:00"), utc("14:00:00.000001")),  # one instant, two rows
    ],
)
def test_the_export_gives_the_same_rows_in_the_same_order_from_report_days(lake, start, end):
    from_bronze = export(lake, start, end)
    ReportDays(lake).compact(TOPIC, DAY, SP, files_of(lake), chunk_rows=2)
    plan = plan_report(lake, TOPIC, 11, start, end, SP)
    assert any(isinstance(part, ReportDayRange) for part in plan.parts)
    assert plan.rows == from_bronze.height
    assert_frame_equal(report_frame(plan).collect(), from_bronze)


def test_a_window_over_three_days_reads_bronze_the_report_day_and_bronze_again(lake, tmp_path):
    start, end = utc("00:00:00"), utc("12:00:00", day=4)
    from_bronze = export(lake, start, end)
    assert from_bronze["message_id"].to_list() == ["D0", "A2", "A1", "T1", "T0", "D0", "E1", "N1"]
    ReportDays(lake).compact(TOPIC, DAY, SP, files_of(lake))
    plan = plan_report(lake, TOPIC, 11, start, end, SP)
    assert [type(part) for part in plan.parts] == [BronzeRange, ReportDayRange, BronzeRange]
    assert plan.parts[1].whole_day  # no event time filter on a whole day
    assert [part.rows for part in plan.parts] == [1, 6, 1]
    for fmt in ("csv", "parquet"):  # the sinks keep the parts in order
        out = tmp_path / f"report.{fmt}"
        write_notifications_report(report_frame(plan), fmt, str(out))
        back = pl.read_csv(out, schema=from_bronze.schema) if fmt == "csv" else pl.read_parquet(out)
        assert_frame_equal(back, from_bronze)


def test_a_late_event_after_the_report_day_is_in_the_export(lake):
    ReportDays(lake).compact(TOPIC, DAY, SP, files_of(lake))
    commit(lake, [event(11, "L1", "2020-02-03T20:00:00.000+00:00", name="Acme")], partition=1)
    got = export(lake, utc("13:00:00"), utc("21:00:00"))
    assert got["message_id"].to_list() == ["A1", "T1", "T0", "D0", "L1"]
    plan = plan_report(lake, TOPIC, 11, utc("13:00:00"), utc("21:00:00"), SP)
    assert [type(part) for part in plan.parts] == [BronzeRange]


def test_errors_stay_the_same_when_the_day_is_a_report_day(lake):
    from quarantine_platform.errors import UserError

    ReportDays(lake).compact(TOPIC, DAY, SP, files_of(lake))
    with pytest.raises(UserError, match="unknown customer 99"):
        export(lake, utc("04:00:00"), utc("20:00:00"), customer=99)
    with pytest.raises(UserError, match="no messages for customer 22"):
        export(lake, utc("16:00:00"), utc("20:00:00"), customer=22)


# --- through Dagster --------------------------------------------------------------------------------------


def test_the_asset_makes_the_days_and_its_check_names_a_stale_one(platform_env, monkeypatch):
    from quarantine_platform import definitions
    from quarantine_platform.assets.report_days import notification_report_days, report_days_up_to_date

    monkeypatch.setenv("QP_TIMEZONE", SP)
    root = os.environ["QP_LAKE_DIR"]
    commit(root, [event(11, "A1", "2020-02-03T13:00:00.000+00:00"), event(11, "B1", "2020-02-04T13:00:00Z")])
    resources = definitions.resources()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [notification_report_days, report_days_up_to_date],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2020-02-03",
            "dagster/asset_partition_range_end": "2020-02-04",
        },
    )
    assert result.success
    materializations = result.asset_materializations_for_node("notification_report_days")
    assert sorted(m.partition for m in materializations) == ["2020-02-03", "2020-02-04"]  # one run
    assert (
        materializations[0].metadata["messages"].value == 2
        and materializations[0].metadata["days"].value == 2
    )
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["days_checked"].value == 2
    assert ReportDays(root).days(TOPIC) == [DAY, DAY + dt.timedelta(days=1)]

    commit(root, [event(11, "L1", "2020-02-04T20:00:00.000+00:00")], partition=1)  # late, Feb 4
    checked = dg.materialize(
        [notification_report_days, report_days_up_to_date],
        resources=resources,
        instance=instance,
        selection=dg.AssetSelection.checks_for_assets(notification_report_days),
    )
    [check] = checked.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["stale"].value == "2020-02-04"
    assert (check.metadata["days_checked"].value, check.metadata["days_stale"].value) == (2, 1)
    assert check.metadata["remake"].value.endswith("--select notification_report_days --partition 2020-02-04")


# --- memory ------------------------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import datetime as dt, sys
    from quarantine_platform.exports import notifications
    from quarantine_platform.storage.bronze_window import bronze_files
    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.storage.report_days import ReportDays
    root, step = sys.argv[1], sys.argv[2]
    start = dt.datetime(2020, 2, 3, tzinfo=dt.UTC)
    if step == "compact":
        files = bronze_files(NotificationLake(root), "notifications")
        rows = ReportDays(root).compact("notifications", start.date(), "UTC", files, chunk_rows=50_000).rows
    else:
        end = start + dt.timedelta(days=1)
        lf = notifications.notifications_report(root, "notifications", 7, start, end, "UTC")
        rows = notifications.write_notifications_report(lf, "csv", sys.argv[3])
    peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(rows, int(peak) // 1024)
    """
)


def test_memory_stays_flat_when_the_report_day_and_its_export_grow_fourfold(tmp_path):
    """Each step in its own process; peak RSS (VmHWM) must not follow the rows: 1,200,000 more rows held at
    once would take some 450 MiB more. (Measured: 208-211 MiB at 400,000 rows; at 1,600,000, 231-232 for the
    report day and 269-334 for the export, whose Parquet reader runs ahead of a slower CSV writer on a loaded
    machine. The benchmark's 100M day: 496-687 MiB for 29.7M exported rows.)"""
    peaks = {}
    for rows in (400_000, 1_600_000):
        root = tmp_path / f"lake{rows}"
        frame = many(7, rows, "2020-02-03T00:00:00+00:00", step_us=86_400_000_000 // rows)
        for part, chunk in enumerate(frame.iter_slices(200_000)):
            commit(root, chunk, partition=part % 3)
        out = tmp_path / f"out{rows}.csv"
        for step in ("compact", "export"):
            written, peak = rows_and_peak(_CHILD, str(root), step, str(out))
            assert written == rows
            peaks[(rows, step)] = peak
        plan = plan_report(str(root), TOPIC, 7, utc("00:00:00"), utc("00:00:00", day=4), "UTC")
        assert [type(part) for part in plan.parts] == [ReportDayRange]
        assert pl.read_csv(out)["message_id"].to_list() == frame["message_id"].to_list()
    for step in ("compact", "export"):
        assert peaks[(1_600_000, step)] - peaks[(400_000, step)] < 200, peaks
        assert peaks[(1_600_000, step)] < 700, peaks


def test_the_sensor_asks_once_per_late_commit_for_closed_days_only(platform_env, monkeypatch):
    from quarantine_platform import definitions
    from quarantine_platform.assets.report_days import report_days_sensor

    monkeypatch.setenv("QP_TIMEZONE", "UTC")
    root = os.environ["QP_LAKE_DIR"]
    today = dt.datetime.now(dt.UTC).date()
    old, current = dt.date(2020, 2, 3), today
    commit(root, [event(11, "A1", "2020-02-03T13:00:00Z"), event(11, "T1", f"{today}T00:00:00Z")])
    store = ReportDays(root)
    for day in (old, current):
        store.compact(TOPIC, day, "UTC", files_of(root))
    lake = definitions.resources()["lake"]

    def tick() -> dg.SensorResult:
        return report_days_sensor(dg.build_sensor_context(), lake=lake)

    assert tick().skip_reason is not None  # every report day up to date
    commit(
        root, [event(11, "L1", "2020-02-03T20:00:00Z"), event(11, "L2", f"{today}T00:00:01Z")], partition=1
    )
    first = tick()
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [
        ("2020-02-03", "notifications:2020-02-03:2")
    ]
    assert [r.run_key for r in tick().run_requests] == ["notifications:2020-02-03:2"]  # same key: asked once
    commit(root, [event(11, "L3", "2020-02-03T21:00:00Z")], partition=2)
    assert [r.run_key for r in tick().run_requests] == ["notifications:2020-02-03:3"]  # a later late event
    store.compact(TOPIC, old, "UTC", files_of(root))
    assert tick().skip_reason is not None  # today is stale but still open: not asked for


def test_a_23_hour_day_of_a_dst_change_reads_the_same_from_its_report_day(tmp_path):
    """New York, 2020-03-08: clocks jump from 02:00 to 03:00, the local day is 05:00 to 04:00 UTC next day."""
    root, zone, day = str(tmp_path / "lake"), "America/New_York", dt.date(2020, 3, 8)
    commit(
        root,
        [
            event(11, "B4", "2020-03-08T04:59:59.000+00:00"),  # Mar 7, 23:59:59 EST
            event(11, "F1", "2020-03-08T05:00:00.000+00:00"),  # Mar 8, 00:00 EST
            event(11, "F2", "2020-03-08T07:30:00.000+00:00"),  # 03:30 EDT
            event(11, "F3", "2020-03-09T03:59:59.000+00:00"),  # 23:59:59 EDT
            event(11, "N1", "2020-03-09T04:00:00.000+00:00"),  # Mar 9
        ],
    )
    start, end = day_bounds(day, zone)
    assert end - start == dt.timedelta(hours=23)
    windows = [
        (start, end),
        (start - dt.timedelta(hours=1), end + dt.timedelta(hours=1)),
        (start, start + dt.timedelta(hours=3)),
    ]
    from_bronze = [notifications_report(root, TOPIC, 11, a, b, zone).collect() for a, b in windows]
    assert from_bronze[0]["message_id"].to_list() == ["F1", "F2", "F3"]
    ReportDays(root).compact(TOPIC, day, zone, files_of(root))
    for (a, b), expected in zip(windows, from_bronze, strict=True):
        plan = plan_report(root, TOPIC, 11, a, b, zone)
        assert ReportDayRange in {type(part) for part in plan.parts}
        assert_frame_equal(report_frame(plan).collect(), expected)
    assert plan_report(root, TOPIC, 11, *windows[0], zone).parts[0].whole_day


def test_the_schedule_lays_out_yesterday_when_billing_runs(platform_env):
    from quarantine_platform import definitions
    from quarantine_platform.assets.billing import billing_daily_schedule
    from quarantine_platform.assets.report_days import report_days_schedule

    assert report_days_schedule.cron_schedule == billing_daily_schedule.cron_schedule == "11 0 * * *"
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2020, 2, 4, 0, 11, tzinfo=dt.UTC)
    )
    (request,) = report_days_schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2020-02-03"
    assert report_days_schedule.name in {s.name for s in definitions.defs.schedules}
