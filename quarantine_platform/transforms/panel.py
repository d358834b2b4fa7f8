"""The panel's figures (design.md: per customer, WhatsApp notifications today and this month, last update),
assembled from what the warehouse holds. Pure Polars and dates, no Dagster.

"Today" is the day (in QP_TIMEZONE) of the latest minute counted, and "this month" that day's month: the
panel shows the figures as of its last update and says which day and month they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

SERIES_HOURS = 6
BILLING_CHART_DAYS = 30
BILLING_HISTORY_MONTHS = 13  # the billing history download: this month and the 12 before

MONEY = pl.Decimal(18, 2)
UTC_US = pl.Datetime("us", "UTC")

# What the warehouse reads hand over (storage/panel_warehouse.py).
TOTALS_SCHEMA = pl.Schema(
    {
        "customer_id": pl.Int64,
        "customer_name": pl.String,
        "whatsapp_today": pl.Int64,
        "whatsapp_month": pl.Int64,
        "last_whatsapp_minute": UTC_US,
    }
)
MINUTES_SCHEMA = pl.Schema({"customer_id": pl.Int64, "minute": UTC_US, "notifications": pl.Int64})
BILLING_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "customer_id": pl.Int64,
        "customer_name": pl.String,
        "notifications": pl.Int64,
        "unit_price_brl": pl.Decimal(18, 4),
        "value_brl": MONEY,
    }
)
# What the snapshot publishes per customer.
CUSTOMERS_SCHEMA = pl.Schema(
    {
        "customer_id": pl.Int64,
        "customer_name": pl.String,
        "whatsapp_today": pl.Int64,
        "whatsapp_month": pl.Int64,
        "billing_month_brl": MONEY,
        "last_whatsapp_minute": UTC_US,
    }
)


@dataclass(frozen=True)
class PanelPeriod:
    """The windows of one snapshot. Instants are UTC; `day` is the local day of the latest minute counted."""

    timezone: str
    as_of: dt.datetime  # the end of the latest minute counted
    day: dt.date
    day_start: dt.datetime
    month_start: dt.datetime
    series_start: dt.datetime
    billing_chart_start: dt.date
    billing_history_start: dt.date

    @property
    def read_start(self) -> dt.datetime:
        """The earliest minute any figure needs."""
        return min(self.month_start, self.series_start)


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    # fold=0 on a midnight that does not exist (DST starting at 00:00) gives the day's first real instant.
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def panel_period(latest_minute: dt.datetime, timezone: str, series_hours: int = SERIES_HOURS) -> PanelPeriod:
    """The period of a snapshot whose latest counted minute starts at `latest_minute` (aware)."""
    zone = ZoneInfo(timezone)
    as_of = latest_minute.astimezone(dt.UTC) + dt.timedelta(minutes=1)
    day = latest_minute.astimezone(zone).date()
    first_of_month = day.replace(day=1)
    history_month = (first_of_month.year * 12 + first_of_month.month - 1) - (BILLING_HISTORY_MONTHS - 1)
    return PanelPeriod(
        timezone=timezone,
        as_of=as_of,
        day=day,
        day_start=_local_midnight(day, zone),
        month_start=_local_midnight(first_of_month, zone),
        series_start=as_of - dt.timedelta(hours=series_hours),
        billing_chart_start=day - dt.timedelta(days=BILLING_CHART_DAYS - 1),
        billing_history_start=dt.date(history_month // 12, history_month % 12 + 1, 1),
    )


def customers_table(totals: pl.DataFrame, billing: pl.DataFrame, period: PanelPeriod) -> pl.DataFrame:
    """One row per customer seen in the counts of the period or in the billing history: WhatsApp today and
    this month, the value billed this month, and the latest minute with WhatsApp traffic. The name is the
    latest one the counts saw, else the latest billed."""
    month_first = period.day.replace(day=1)
    billed = (
        billing.sort("date")
        .group_by("customer_id")
        .agg(
            pl.col("customer_name").last().alias("billed_name"),
            pl.col("value_brl")
            .filter(pl.col("date") >= month_first)
            .sum()
            .cast(MONEY)
            .alias("billing_month_brl"),
        )
    )
    return (
        totals.join(billed, on="customer_id", how="full", coalesce=True)
        .with_columns(
            pl.coalesce("customer_name", "billed_name").alias("customer_name"),
            pl.col("whatsapp_today", "whatsapp_month").fill_null(0),
            pl.col("billing_month_brl").fill_null(pl.lit(0).cast(MONEY)),
        )
        .select(CUSTOMERS_SCHEMA.names())
        .match_to_schema(CUSTOMERS_SCHEMA)
        .sort("customer_id")
    )


def empty_customers() -> pl.DataFrame:
    return pl.DataFrame(schema=CUSTOMERS_SCHEMA)


def billing_history(billing: pl.DataFrame) -> pl.DataFrame:
    """The billing rows as the export shows them (design.md columns), by date then customer."""
    return billing.select(BILLING_SCHEMA.names()).match_to_schema(BILLING_SCHEMA).sort("date", "customer_id")


def snapshot_totals(customers: pl.DataFrame) -> dict[str, int]:
    """Totals over every customer, kept in the snapshot's metadata: a reader can check that the tables it
    loaded belong together."""
    return {
        "customers": customers.height,
        "whatsapp_today": int(customers["whatsapp_today"].sum() or 0),
        "whatsapp_month": int(customers["whatsapp_month"].sum() or 0),
    }


def snapshot_meta(
    period: PanelPeriod | None,
    timezone: str,
    read_at: dt.datetime,
    counted_at: dt.datetime | None,
    counted_bronze_seq: int | None,
    bronze_seq: int | None,
    bronze_committed_at: dt.datetime | None,
    customers: pl.DataFrame,
) -> dict:
    """The snapshot's description: its period, the pipeline's freshness (for the operator) and totals."""

    def iso(value: dt.datetime | dt.date | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "format": 1,
        "read_at": read_at.astimezone(dt.UTC).isoformat(),
        "timezone": timezone,
        "as_of": iso(period.as_of) if period else None,
        "day": iso(period.day) if period else None,
        "day_start": iso(period.day_start) if period else None,
        "month_start": iso(period.month_start) if period else None,
        "series_start": iso(period.series_start) if period else None,
        "billing_chart_start": iso(period.billing_chart_start) if period else None,
        "billing_history_start": iso(period.billing_history_start) if period else None,
        "freshness": {
            "latest_minute_counted": iso(period.as_of - dt.timedelta(minutes=1)) if period else None,
            "counted_at": iso(counted_at),
            "counted_bronze_seq": counted_bronze_seq,
            "bronze_latest_seq": bronze_seq,
            "bronze_latest_commit_at": iso(bronze_committed_at),
            # How far the counted figures trail the moment the snapshot was read.
            "lag_seconds": round((read_at - period.as_of).total_seconds()) if period else None,
        },
        "totals": snapshot_totals(customers),
    }
