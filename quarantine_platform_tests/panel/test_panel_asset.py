"""`notification_panel` through Dagster: what it publishes from the counts and the billing, and that the
minutes sensor's runs republish it after each count."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.storage.panel_snapshot import SnapshotStore, panel_root
from quarantine_platform.transforms.panel import CUSTOMERS_SCHEMA, MINUTES_SCHEMA
from quarantine_platform_tests.panel.helpers import (
    Message,
    commit_to_bronze,
    drive,
    expected_whatsapp,
    materialize_minutes,
)

UTC = dt.UTC


@pytest.fixture
def platform(platform_env):
    from quarantine_platform import definitions

    return definitions


def recent_minute(minutes_ago: int) -> dt.datetime:
    return dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes_ago)


def current_snapshot():
    return SnapshotStore(panel_root(os.environ["QP_LAKE_DIR"])).load_current()


def test_the_panel_publishes_whatsapp_today_month_and_minutes_per_customer(platform, monkeypatch):
    monkeypatch.setenv("QP_TIMEZONE", "America/Sao_Paulo")
    start = recent_minute(30)
    at = lambda minute, second: start + dt.timedelta(minutes=minute, seconds=second)  # noqa: E731
    messages = [
        Message(7494212, "Acme", "A1", "Whatsapp", at(0, 1)),
        Message(7494212, "Acme", "A2", "WhatsApp", at(0, 2)),  # channels compare case-insensitively
        Message(7494212, "Acme", "A3", "SMS", at(0, 3)),  # not WhatsApp: not in the figures
        Message(7494212, "Acme", "A4", "whatsapp", at(2, 30)),
        Message(7494212, "Acme", "A1", "Whatsapp", at(3, 0)),  # the same message_id again: counted once
        Message(22, "Beta", "B1", "Whatsapp", at(1, 0)),
        Message(22, "Beta Ltda", "B2", "Whatsapp", at(4, 59)),  # renamed: the latest name shows
        Message(33, "Gamma", "C1", "SMS", at(1, 0)),  # a customer with no WhatsApp
    ]
    commit_to_bronze(messages)
    last = start + dt.timedelta(minutes=5)
    materialize_minutes(platform.defs, start, last)

    snap = current_snapshot()
    meta = snap.meta
    day = dt.date.fromisoformat(meta["day"])
    assert meta["as_of"] == (last + dt.timedelta(minutes=1)).isoformat()
    assert meta["timezone"] == "America/Sao_Paulo"
    assert day == (last.astimezone(dt.timezone(dt.timedelta(hours=-3)))).date()
    figures = expected_whatsapp(messages, "America/Sao_Paulo", day)
    expected = pl.DataFrame(
        {
            "customer_id": [22, 33, 7494212],
            "customer_name": ["Beta Ltda", "Gamma", "Acme"],
            "whatsapp_today": [figures.get(c, (0, 0))[0] for c in (22, 33, 7494212)],
            "whatsapp_month": [figures.get(c, (0, 0))[1] for c in (22, 33, 7494212)],
            "billing_month_brl": [Decimal("0.00")] * 3,
            "last_whatsapp_minute": [start + dt.timedelta(minutes=4), None, start + dt.timedelta(minutes=2)],
        },
        schema=CUSTOMERS_SCHEMA,
    )
    assert_frame_equal(snap.table("customers"), expected)
    assert_frame_equal(
        snap.table("minutes"),
        pl.DataFrame(
            {
                "customer_id": [22, 22, 7494212, 7494212],
                "minute": [at(1, 0), at(4, 0), at(0, 0), at(2, 0)],
                "notifications": [1, 1, 2, 1],
            },
            schema=MINUTES_SCHEMA,
        ),
    )
    assert snap.table("billing").is_empty()  # no billing_daily table yet
    assert meta["totals"] == {
        "customers": 3,
        "whatsapp_today": sum(t for t, _ in figures.values()),
        "whatsapp_month": sum(m for _, m in figures.values()),
    }
    fresh = meta["freshness"]
    assert fresh["latest_minute_counted"] == last.isoformat()
    assert fresh["counted_bronze_seq"] == fresh["bronze_latest_seq"] == 1
    assert 0 <= fresh["lag_seconds"] < 30 * 60


def test_the_panel_shows_what_billing_daily_billed(platform, platform_env):
    from quarantine_platform.assets.billing import billing_daily
    from quarantine_platform.transforms.panel import BILLING_SCHEMA

    (platform_env / "data" / "pricing.csv").write_text("customer_id,unit_price_brl\n7494212,0.05\n")
    now = recent_minute(20)
    yesterday = now.date() - dt.timedelta(days=1)
    noon = dt.datetime.combine(yesterday, dt.time(12), tzinfo=UTC)
    commit_to_bronze(
        [
            Message(7494212, "Acme", "Y1", "Whatsapp", noon),
            Message(7494212, "Acme", "Y2", "WhatsApp", noon + dt.timedelta(minutes=1)),
            Message(7494212, "Acme", "Y3", "Whatsapp", noon + dt.timedelta(hours=2)),
            Message(7494212, "Acme", "Y4", "SMS", noon),
            Message(22, "Beta", "Y5", "Whatsapp", noon),
            Message(22, "Beta", "Y6", "Whatsapp", noon + dt.timedelta(hours=3)),
            Message(7494212, "Acme", "T1", "Whatsapp", now + dt.timedelta(seconds=5)),
        ]
    )
    assert dg.materialize(
        [billing_daily], partition_key=str(yesterday), resources=platform.defs.resources
    ).success
    materialize_minutes(platform.defs, now, now)

    snap = current_snapshot()
    expected = pl.DataFrame(
        {
            "date": [yesterday, yesterday],
            "customer_id": [22, 7494212],
            "customer_name": ["Beta", "Acme"],
            "notifications": [2, 3],
            "unit_price_brl": [Decimal("0.04"), Decimal("0.05")],
            "value_brl": [Decimal("0.08"), Decimal("0.15")],
        },
        schema=BILLING_SCHEMA,
    )
    assert_frame_equal(snap.table("billing"), expected)
    same_month = yesterday.month == now.month
    month_value = {22: Decimal("0.08"), 7494212: Decimal("0.15")} if same_month else {}
    customers = snap.table("customers")
    assert dict(customers.select("customer_id", "billing_month_brl").iter_rows()) == {
        c: month_value.get(c, Decimal("0.00")) for c in (22, 7494212)
    }


def test_without_a_warehouse_the_panel_publishes_an_empty_snapshot(platform):
    from quarantine_platform.assets.panel import notification_panel

    assert dg.materialize([notification_panel], resources=platform.defs.resources).success
    snap = current_snapshot()
    assert snap.meta["as_of"] is None and snap.meta["day"] is None
    assert snap.table("customers").is_empty()


def test_each_counting_run_the_sensor_requests_republishes_the_panel(platform, monkeypatch):
    monkeypatch.setenv("QP_ALLOWED_LATENESS_SECONDS", "0")
    instance = dg.DagsterInstance.ephemeral()
    cursors: dict[str, str | None] = {}
    start = recent_minute(15)
    first = [Message(11, "Acme", f"M{i}", "Whatsapp", start + dt.timedelta(seconds=7 * i)) for i in range(20)]
    commit_to_bronze(first)
    runs = drive(platform.defs, instance, cursors, kafka=False)
    assert {"notification_counts_minutely", "notification_panel"} in runs
    before = current_snapshot()
    day = dt.date.fromisoformat(before.meta["day"])
    assert before.table("customers")["whatsapp_today"].to_list() == [
        expected_whatsapp(first, "UTC", day).get(11, (0, 0))[0]
    ]

    late = [
        Message(11, "Acme", f"L{i}", "WhatsApp", start + dt.timedelta(minutes=1, seconds=i)) for i in range(5)
    ]
    commit_to_bronze(late + first[:3])  # late messages for counted minutes, and re-sends
    drive(platform.defs, instance, cursors, kafka=False)
    after = current_snapshot()
    assert after.name > before.name
    day = dt.date.fromisoformat(after.meta["day"])
    assert after.table("customers")["whatsapp_today"].to_list() == [
        expected_whatsapp(first + late, "UTC", day).get(11, (0, 0))[0]
    ]
    if after.meta["day"] == before.meta["day"]:  # (a run just after midnight starts a new day at zero)
        assert (
            after.table("customers")["whatsapp_today"][0]
            == before.table("customers")["whatsapp_today"][0] + 5
        )
    assert after.meta["freshness"]["counted_bronze_seq"] == 2
