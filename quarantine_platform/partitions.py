"""Partition definitions (design.md, "Asset graph")."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from quarantine_platform import settings

MINUTE_FORMAT = "%Y-%m-%d-%H:%M"


def _minute_start() -> str:
    # Truncated to the day: every process that imports this on the same day agrees on the partition set.
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = int(settings.get("QP_MINUTE_RETENTION_DAYS"))
    return (today - dt.timedelta(days=days)).strftime(MINUTE_FORMAT)


minute_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="* * * * *", fmt=MINUTE_FORMAT, start=_minute_start(), timezone="UTC"
)


def minute_key(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime(MINUTE_FORMAT)


def parse_minute_key(key: str) -> dt.datetime:
    return dt.datetime.strptime(key, MINUTE_FORMAT).replace(tzinfo=dt.UTC)


# Days and months keep the long history (design.md): they start at QP_HISTORY_START.
DAY_FORMAT = "%Y-%m-%d"
MONTH_FORMAT = "%Y-%m"
HOUR_FORMAT = "%Y-%m-%d-%H:%M"

# Billing days and quarantine load dates are days of QP_TIMEZONE.
local_daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.get("QP_HISTORY_START"), timezone=settings.get("QP_TIMEZONE"), fmt=DAY_FORMAT
)

# Chatbot files are named by UTC date and hour.
utc_hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=f"{settings.get('QP_HISTORY_START')}-00:00", timezone="UTC", fmt=HOUR_FORMAT
)
utc_daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.get("QP_HISTORY_START"), timezone="UTC", fmt=DAY_FORMAT
)

# Invoice averages are keyed by the reference month.
monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=settings.get("QP_HISTORY_START")[:7], fmt=MONTH_FORMAT, timezone="UTC"
)


def day_range_metadata(days: list[dt.date]) -> dict[str, int | str]:
    """The metadata that says which days (in order) a daily run covered."""
    return {"days": len(days), "first_day": str(days[0]), "last_day": str(days[-1])}
