"""Daily billing: bronze -> `billing_daily` in the warehouse, its check against the minute counts, and the
schedules that bill yesterday and re-check the billed days."""

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl

from quarantine_platform import settings
from quarantine_platform.assets.keys import EVENTS
from quarantine_platform.partitions import day_range_metadata, local_daily_partitions
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource
from quarantine_platform.storage.billing_warehouse import (
    billed_days,
    read_billing,
    replace_days,
    whatsapp_minutes_per_day,
)
from quarantine_platform.storage.bronze_window import bronze_files, scan_window_parts
from quarantine_platform.transforms.billing import (
    PricingError,
    bill_day,
    billing_mismatches,
    day_bounds,
    day_bounds_frame,
    load_pricing,
    rebill_command,
    whatsapp_day_counts,
)

GROUP = "billing"
BILLING = dg.AssetKey("billing_daily")
MATCHES_MINUTES = "billing_matches_minutes"


def pricing_path() -> Path:
    return Path(settings.get("QP_DATA_DIR")) / "pricing.csv"


@dg.asset(
    key=BILLING,
    group_name=GROUP,
    deps=[EVENTS],
    partitions_def=local_daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    description="Per day (in QP_TIMEZONE) and customer: WhatsApp notifications (deduplicated), unit price "
    "from pricing.csv, value in BRL (Decimal, half-up to cents).",
)
def billing_daily(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Bill each day of the run's partition range from bronze (a month backfill is one run looping days);
    each day replaces its rows in one transaction."""
    timezone = settings.get("QP_TIMEZONE")
    try:
        pricing = load_pricing(pricing_path())
    except PricingError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if pricing.source is None:
        context.log.warning(f"no pricing file at {pricing_path()}: every customer at {pricing.default} BRL")
    files = bronze_files(lake.notifications(), None)
    customers = notifications = 0
    value = Decimal(0)
    days = [dt.date.fromisoformat(key) for key in context.partition_keys]
    for day in days:
        start, end = day_bounds(day, timezone)
        day_events = scan_window_parts(files, start, end)  # files inside the day are read without a filter
        rows = bill_day(whatsapp_day_counts(day_events, day, timezone), pricing, day)
        with warehouse.connect() as con:
            replace_days(con, [day], rows, dt.datetime.now(dt.UTC), context.run_id)
        customers += rows.height
        notifications += int(rows["notifications"].sum() or 0)
        value += sum(rows["value_brl"].to_list(), start=Decimal(0))
        context.log.info(
            f"billed {day}: {rows.height} customers, {rows['notifications'].sum()} notifications"
        )
    return dg.MaterializeResult(
        metadata={
            **day_range_metadata(days),
            "customer_days": customers,
            "whatsapp_notifications": notifications,
            "value_brl": str(value),
            "pricing": pricing.source or f"none (default {pricing.default})",
            "bronze_files": len(files),
        }
    )


@dg.asset_check(
    asset=BILLING,
    name=MATCHES_MINUTES,
    description="Every billed day still within the minute retention equals, per customer, the sum of its "
    "WhatsApp minute counts; a late event counted after billing makes it fail until the day is re-billed.",
)
def billing_matches_minutes(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    timezone = settings.get("QP_TIMEZONE")
    today = dt.datetime.now(ZoneInfo(timezone)).date()
    first = today - dt.timedelta(days=int(settings.get("QP_MINUTE_RETENTION_DAYS")) + 1)
    if not Path(warehouse.path).exists():
        return dg.AssetCheckResult(passed=True, metadata={"days_checked": 0})
    with warehouse.connect(read_only=True) as con:
        days = billed_days(con, first, today + dt.timedelta(days=1))
        billed = read_billing(con, first, today + dt.timedelta(days=1))
        minutes = whatsapp_minutes_per_day(con, day_bounds_frame(days, timezone))
    wrong = billing_mismatches(billed.filter(billed["date"].is_in(days)), minutes)
    wrong_days = sorted(set(wrong["date"].to_list()))
    return dg.AssetCheckResult(
        passed=wrong.is_empty(),
        metadata={
            "days_checked": len(days),
            "days_wrong": len(wrong_days),
            "customer_days_wrong": wrong.height,
            "first_wrong": dg.MetadataValue.md(_markdown(wrong.head(10))) if wrong.height else "",
            "rebill": rebill_command(wrong_days[0], wrong_days[-1]) if wrong_days else "",
        },
    )


def _markdown(frame: pl.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in frame.iter_rows())


billing_checks = [billing_matches_minutes]

# --- schedules --------------------------------------------------------------------------------------------


def billing_run_at() -> tuple[int, int]:
    """(hour, minute) in QP_TIMEZONE: 00:10 plus the allowed lateness, so the day's last minutes are ingested
    and counted before it is billed."""
    minutes = 10 + math.ceil(int(settings.get("QP_ALLOWED_LATENESS_SECONDS")) / 60)
    return min(minutes // 60, 23), minutes % 60


def after_midnight_schedule(
    key: dg.AssetKey, job_name: str, name: str, description: str
) -> dg.ScheduleDefinition:
    """The daily asset `key`'s job and its schedule, which runs yesterday at billing_run_at()."""
    job = dg.define_asset_job(
        job_name, selection=dg.AssetSelection.assets(key), partitions_def=local_daily_partitions
    )
    hour, minute = billing_run_at()
    return dg.build_schedule_from_partitioned_job(
        job, name=name, hour_of_day=hour, minute_of_hour=minute, description=description
    )


billing_daily_schedule = after_midnight_schedule(
    BILLING,
    "billing_daily_job",
    "billing_daily_schedule",
    "Bills yesterday (in QP_TIMEZONE) shortly after midnight, after the allowed lateness.",
)
billing_recheck_job = dg.define_asset_job(
    "billing_recheck_job", selection=dg.AssetSelection.checks_for_assets(BILLING)
)
billing_recheck_schedule = dg.ScheduleDefinition(
    name="billing_recheck_schedule",
    job=billing_recheck_job,
    cron_schedule="30 * * * *",
    execution_timezone=settings.get("QP_TIMEZONE"),
    description="Hourly: re-check the billed days against the minute counts, so late events show up.",
)
billing_schedules = [billing_daily_schedule, billing_recheck_schedule]
