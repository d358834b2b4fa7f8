"""What the panel reads from the warehouse: small aggregates of the minute counts and the billing rows.

The sums run inside DuckDB (a month of minutes of thousands of customers never leaves it); the day and month
bounds come from `transforms.panel.panel_period`, so no time-zone arithmetic happens in SQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from quarantine_platform.storage.billing_warehouse import read_billing
from quarantine_platform.storage.notification_warehouse import COUNTS_TABLE, PROCESSED_TABLE
from quarantine_platform.transforms.notifications import WHATSAPP
from quarantine_platform.transforms.panel import (
    BILLING_SCHEMA,
    MINUTES_SCHEMA,
    TOTALS_SCHEMA,
    UTC_US,
    PanelPeriod,
    panel_period,
)


@dataclass(frozen=True)
class CountsProgress:
    """How far minute counting has got."""

    latest_minute: dt.datetime | None  # UTC, start of the latest minute counted
    counted_at: dt.datetime | None  # UTC, when the latest counting run wrote
    bronze_seq: int | None  # the bronze commit sequence that run had read


@dataclass(frozen=True)
class PanelInputs:
    progress: CountsProgress
    period: PanelPeriod | None  # None until a minute has been counted
    totals: pl.DataFrame  # TOTALS_SCHEMA
    minutes: pl.DataFrame  # MINUTES_SCHEMA: WhatsApp per customer and minute of the series window
    billing: pl.DataFrame  # BILLING_SCHEMA: the billing history window


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None else None


def _naive(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(dt.UTC).replace(tzinfo=None)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    query = "select count(*) from information_schema.tables where table_name = ?"
    return con.execute(query, [name]).fetchall()[0][0] > 0


def empty_inputs() -> PanelInputs:
    return PanelInputs(
        progress=CountsProgress(None, None, None),
        period=None,
        totals=pl.DataFrame(schema=TOTALS_SCHEMA),
        minutes=pl.DataFrame(schema=MINUTES_SCHEMA),
        billing=pl.DataFrame(schema=BILLING_SCHEMA),
    )


def read_progress(con: duckdb.DuckDBPyConnection) -> CountsProgress:
    if not _has_table(con, PROCESSED_TABLE):
        return CountsProgress(None, None, None)
    minute, counted_at, seq = con.execute(
        f"select max(minute), max(counted_at), max(bronze_seq) from {PROCESSED_TABLE}"
    ).fetchall()[0]
    return CountsProgress(_utc(minute), _utc(counted_at), int(seq) if seq is not None else None)


def _frame(relation: duckdb.DuckDBPyRelation, schema: pl.Schema) -> pl.DataFrame:
    frame = relation.pl()
    if not frame.height:
        return pl.DataFrame(schema=schema)
    # DuckDB timestamps are naive UTC here.
    stamps = [name for name, dtype in schema.items() if dtype == UTC_US]
    return frame.with_columns(pl.col(stamps).dt.replace_time_zone("UTC")).match_to_schema(schema)


def read_panel_inputs(con: duckdb.DuckDBPyConnection, timezone: str) -> PanelInputs:
    """Everything one snapshot needs, read in one connection (works read-only)."""
    progress = read_progress(con)
    if progress.latest_minute is None or not _has_table(con, COUNTS_TABLE):
        return PanelInputs(progress, None, *_empty_tables())
    period = panel_period(progress.latest_minute, timezone)
    whatsapp = f"lower(channel) = '{WHATSAPP}'"
    totals = con.sql(
        f"""
        select customer_id,
               arg_max(customer_name, minute) as customer_name,
               coalesce(sum(notifications) filter (where {whatsapp} and minute >= $day), 0)::bigint
                   as whatsapp_today,
               coalesce(sum(notifications) filter (where {whatsapp} and minute >= $month), 0)::bigint
                   as whatsapp_month,
               max(minute) filter (where {whatsapp}) as last_whatsapp_minute
        from {COUNTS_TABLE}
        where minute >= $start and minute < $end
        group by customer_id
        """,
        params={
            "day": _naive(period.day_start),
            "month": _naive(period.month_start),
            "start": _naive(period.read_start),
            "end": _naive(period.as_of),
        },
    )
    minutes = con.sql(
        f"""
        select customer_id, minute, sum(notifications)::bigint as notifications
        from {COUNTS_TABLE}
        where {whatsapp} and minute >= $start and minute < $end
        group by customer_id, minute
        order by customer_id, minute
        """,
        params={"start": _naive(period.series_start), "end": _naive(period.as_of)},
    )
    billing = read_billing(con, period.billing_history_start, period.day)
    return PanelInputs(
        progress=progress,
        period=period,
        totals=_frame(totals, TOTALS_SCHEMA),
        minutes=_frame(minutes, MINUTES_SCHEMA),
        billing=billing.select(BILLING_SCHEMA.names()).match_to_schema(BILLING_SCHEMA),
    )


def _empty_tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    empty = empty_inputs()
    return empty.totals, empty.minutes, empty.billing
