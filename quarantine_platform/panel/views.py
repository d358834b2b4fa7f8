"""What a page or an API answer shows, taken from one snapshot. The page and the API use the same views, so
they always agree. Values stay typed (int, Decimal, aware datetime); `to_json` renders them for the API
(money as a decimal string, never a float)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl

from quarantine_platform.storage.panel_snapshot import Snapshot


def _instant(text: str | None, zone: ZoneInfo) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text).astimezone(zone) if text else None


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def snapshot_info(snapshot: Snapshot, now: dt.datetime) -> dict:
    zone = ZoneInfo(snapshot.meta["timezone"])
    read_at = _instant(snapshot.meta["read_at"], zone)
    return {
        "name": snapshot.name,
        "read_at": read_at,
        "age_seconds": max(round((now - read_at).total_seconds()), 0) if read_at else None,
    }


def _period(snapshot: Snapshot) -> dict:
    meta = snapshot.meta
    zone = ZoneInfo(meta["timezone"])
    return {
        "timezone": meta["timezone"],
        "day": _date(meta["day"]),
        "last_update": _instant(meta["as_of"], zone),
    }


def _customer_row(customers: pl.DataFrame, customer_id: int) -> dict | None:
    rows = customers.filter(pl.col("customer_id") == customer_id).to_dicts()
    return rows[0] if rows else None


def customer_view(snapshot: Snapshot, customer_id: int, now: dt.datetime) -> dict:
    """One customer's figures, series and billing. `known` is False when the snapshot has no row for it (a
    customer with no traffic in the period): the figures are then zero."""
    meta = snapshot.meta
    zone = ZoneInfo(meta["timezone"])
    row = _customer_row(snapshot.table("customers"), customer_id)
    minutes = snapshot.table("minutes").filter(pl.col("customer_id") == customer_id)
    chart_start = _date(meta["billing_chart_start"])
    billing = snapshot.table("billing").filter(pl.col("customer_id") == customer_id)
    if chart_start is not None:
        billing = billing.filter(pl.col("date") >= chart_start)
    last_whatsapp = row["last_whatsapp_minute"] if row else None
    return {
        "customer_id": customer_id,
        "known": row is not None,
        "customer_name": row["customer_name"] if row else None,
        **_period(snapshot),
        "whatsapp_today": row["whatsapp_today"] if row else 0,
        "whatsapp_month": row["whatsapp_month"] if row else 0,
        "billing_month_brl": row["billing_month_brl"] if row else Decimal("0.00"),
        "last_whatsapp_minute": last_whatsapp.astimezone(zone) if last_whatsapp else None,
        "minutes": {
            "start": _instant(meta["series_start"], zone),
            "end": _instant(meta["as_of"], zone),
            "series": [
                {"minute": m.astimezone(zone), "notifications": n}
                for m, n in minutes.select("minute", "notifications").iter_rows()
            ],
        },
        "billing": {
            "start": chart_start,
            "end": _date(meta["day"]),
            "days": [
                {"date": d, "notifications": n, "unit_price_brl": p, "value_brl": v}
                for d, n, p, v in billing.select(
                    "date", "notifications", "unit_price_brl", "value_brl"
                ).iter_rows()
            ],
        },
        "snapshot": snapshot_info(snapshot, now),
    }


def operator_view(snapshot: Snapshot, now: dt.datetime) -> dict:
    """Every customer's figures and the pipeline's freshness."""
    meta = snapshot.meta
    zone = ZoneInfo(meta["timezone"])
    fresh = meta["freshness"]
    customers = snapshot.table("customers").sort("whatsapp_today", "customer_id", descending=[True, False])
    return {
        **_period(snapshot),
        "totals": meta["totals"],
        "freshness": {
            "latest_minute_counted": _instant(fresh["latest_minute_counted"], zone),
            "counted_at": _instant(fresh["counted_at"], zone),
            "counted_bronze_seq": fresh["counted_bronze_seq"],
            "bronze_latest_seq": fresh["bronze_latest_seq"],
            "bronze_latest_commit_at": _instant(fresh["bronze_latest_commit_at"], zone),
            "lag_seconds": fresh["lag_seconds"],
            "bronze_commits_not_counted": (
                fresh["bronze_latest_seq"] - fresh["counted_bronze_seq"]
                if fresh["bronze_latest_seq"] is not None and fresh["counted_bronze_seq"] is not None
                else None
            ),
        },
        "customers": [
            {
                **row,
                "last_whatsapp_minute": (
                    row["last_whatsapp_minute"].astimezone(zone) if row["last_whatsapp_minute"] else None
                ),
            }
            for row in customers.to_dicts()
        ],
        "snapshot": snapshot_info(snapshot, now),
    }


def to_json(value: object) -> object:
    """A view as JSON-ready values: instants and dates as ISO text, money as decimal text."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
