"""Report days: per local day, the day's first copies laid out for the detailed report
(storage/report_days.py), made after the day closes; a check that names the days a late event made stale; the
daily schedule."""

import datetime as dt
import time

import dagster as dg

from quarantine_platform import settings
from quarantine_platform.assets.billing import after_midnight_schedule
from quarantine_platform.assets.keys import EVENTS
from quarantine_platform.partitions import day_range_metadata, local_daily_partitions
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.storage.bronze_window import bronze_files
from quarantine_platform.storage.report_days import ReportDays
from quarantine_platform.transforms.billing import day_bounds, materialize_days_command

REPORT_DAYS = dg.AssetKey("notification_report_days")
UP_TO_DATE = "report_days_up_to_date"


@dg.asset(
    key=REPORT_DAYS,
    group_name="notifications",
    deps=[EVENTS],
    partitions_def=local_daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Per day (in QP_TIMEZONE) and topic: the day's first copies laid out so that one customer's "
    "rows are contiguous runs in report order; `qp export notifications` reads a customer's day from here "
    "instead of the bronze files that mix every customer (a day made stale by a late event: from bronze).",
)
def notification_report_days(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    timezone = settings.get("QP_TIMEZONE")
    try:
        notifications, store = lake.notifications(), ReportDays(lake.root)
    except ValueError as exc:  # an object-store lake: named in the message
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    rows = 0
    days = [dt.date.fromisoformat(key) for key in context.partition_keys]
    started = time.perf_counter()
    for topic in notifications.topics():
        files = bronze_files(notifications, topic)
        for day in days:
            info = store.compact(topic, day, timezone, files)
            rows += info.rows
            context.log.info(f"report day {day} of topic {topic}: {info.rows} messages")
    return dg.MaterializeResult(
        metadata={
            **day_range_metadata(days),
            "messages": rows,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )


@dg.asset_check(
    asset=REPORT_DAYS,
    name=UP_TO_DATE,
    description="Every report day still stands for bronze: made for this QP_TIMEZONE, and no bronze file "
    "committed since may hold an event of its day. A stale day is read from bronze by the export (slower, "
    "never wrong) until it is made again (notification_report_days_sensor asks for it once the day closed).",
)
def report_days_up_to_date(lake: LakeResource) -> dg.AssetCheckResult:
    checked, stale = _out_of_date(lake)
    days = sorted({day for found in stale.values() for day in found})
    return dg.AssetCheckResult(
        passed=not days,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "days_checked": checked,
            "days_stale": len(days),
            "stale": ", ".join(map(str, days[:20])),
            "remake": materialize_days_command(REPORT_DAYS.path[-1], days[0], days[-1]) if days else "",
        },
    )


def _out_of_date(lake: LakeResource) -> tuple[int, dict[str, dict[dt.date, int]]]:
    """How many report days there are (all topics), and per topic its stale report days with the bronze
    commit that made each stale. Each topic's folder is listed once."""
    timezone = settings.get("QP_TIMEZONE")
    notifications, store = lake.notifications(), ReportDays(lake.root)
    checked, stale = 0, {}
    for topic in notifications.topics():
        days = store.days(topic)
        checked += len(days)
        stale[topic] = store.out_of_date(topic, timezone, bronze_files(notifications, topic), days)
    return checked, stale


@dg.sensor(
    name="notification_report_days_sensor",
    minimum_interval_seconds=300,
    asset_selection=[REPORT_DAYS],
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def report_days_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    """Makes again the report days that late events made stale, so the export reads them fast again; only
    days closed for the allowed lateness (a day still receiving events would be stale again at once). The run
    key names the commit that made the day stale: a replayed tick asks nothing twice, a later late event asks
    again."""
    timezone = settings.get("QP_TIMEZONE")
    lateness = dt.timedelta(seconds=int(settings.get("QP_ALLOWED_LATENESS_SECONDS")))
    now = dt.datetime.now(dt.UTC)
    _, stale = _out_of_date(lake)
    requests = [
        dg.RunRequest(run_key=f"{topic}:{day}:{seq}", partition_key=day.isoformat())
        for topic, found in sorted(stale.items())
        for day, seq in sorted(found.items())
        if day_bounds(day, timezone)[1] + lateness <= now
    ]
    if not requests:
        return dg.SensorResult(skip_reason="every report day is up to date")
    return dg.SensorResult(run_requests=requests)


report_days_checks = [report_days_up_to_date]
report_days_sensors = [report_days_sensor]

report_days_schedule = after_midnight_schedule(
    REPORT_DAYS,
    "notification_report_days_job",
    "notification_report_days_schedule",
    "Lays out yesterday (in QP_TIMEZONE) for the detailed report, when billing runs.",
)
report_days_schedules = [report_days_schedule]
