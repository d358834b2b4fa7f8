"""The panel's figures as pure functions: the period of a snapshot, the customers table, pt-BR formats and
the SVG charts."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.panel import charts, formatting
from quarantine_platform.transforms.panel import (
    BILLING_SCHEMA,
    CUSTOMERS_SCHEMA,
    TOTALS_SCHEMA,
    customers_table,
    panel_period,
)

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_period_in_utc_is_the_day_and_month_of_the_latest_minute_counted():
    period = panel_period(utc(2020, 2, 3, 14, 59), "UTC")
    assert period.as_of == utc(2020, 2, 3, 15, 0)
    assert period.day == dt.date(2020, 2, 3)
    assert period.day_start == utc(2020, 2, 3)
    assert period.month_start == utc(2020, 2, 1)
    assert period.series_start == utc(2020, 2, 3, 9, 0)
    assert period.billing_chart_start == dt.date(2020, 1, 5)
    assert period.billing_history_start == dt.date(2019, 2, 1)
    assert period.read_start == utc(2020, 2, 1)


def test_period_days_are_local_days_of_qp_timezone():
    # 02:30 UTC on Feb 1st is still January 31st in São Paulo (UTC-3).
    period = panel_period(utc(2020, 2, 1, 2, 30), "America/Sao_Paulo")
    assert period.day == dt.date(2020, 1, 31)
    assert period.day_start == utc(2020, 1, 31, 3, 0)
    assert period.month_start == utc(2020, 1, 1, 3, 0)
    # the series window reaches back across the month start: the reads start there
    early = panel_period(utc(2020, 2, 1, 4, 0), "America/Sao_Paulo")
    assert early.month_start == utc(2020, 2, 1, 3, 0)
    assert early.read_start == utc(2020, 1, 31, 22, 1)


def test_a_day_whose_midnight_does_not_exist_starts_at_its_first_real_instant():
    # São Paulo, 2018-11-04: daylight saving time started at 00:00, clocks went to 01:00 (-02:00).
    period = panel_period(utc(2018, 11, 4, 12, 0), "America/Sao_Paulo")
    assert period.day == dt.date(2018, 11, 4)
    assert period.day_start == utc(2018, 11, 4, 3, 0)
    assert period.day_start.astimezone(ZoneInfo("America/Sao_Paulo")).hour == 1


def test_customers_table_joins_counts_and_the_month_billing():
    period = panel_period(utc(2020, 2, 3, 14, 59), "UTC")
    totals = pl.DataFrame(
        {
            "customer_id": [7494212, 22],
            "customer_name": ["Acme", "Beta"],
            "whatsapp_today": [5000, 0],
            "whatsapp_month": [25000, 3],
            "last_whatsapp_minute": [utc(2020, 2, 3, 14, 59), utc(2020, 2, 1, 8, 0)],
        },
        schema=TOTALS_SCHEMA,
    )
    billing = pl.DataFrame(
        {
            "date": [dt.date(2020, 1, 31), dt.date(2020, 2, 1), dt.date(2020, 2, 2), dt.date(2020, 2, 2)],
            "customer_id": [7494212, 7494212, 7494212, 33],
            "customer_name": ["Acme", "Acme", "Acme", "Gamma (billed only)"],
            "notifications": [100, 10000, 15000, 7],
            "unit_price_brl": [Decimal("0.04")] * 4,
            "value_brl": [Decimal("4.00"), Decimal("400.00"), Decimal("600.00"), Decimal("0.28")],
        },
        schema=BILLING_SCHEMA,
    )
    expected = pl.DataFrame(
        {
            "customer_id": [22, 33, 7494212],
            "customer_name": ["Beta", "Gamma (billed only)", "Acme"],
            "whatsapp_today": [0, 0, 5000],
            "whatsapp_month": [3, 0, 25000],
            "billing_month_brl": [Decimal("0.00"), Decimal("0.28"), Decimal("1000.00")],
            "last_whatsapp_minute": [utc(2020, 2, 1, 8, 0), None, utc(2020, 2, 3, 14, 59)],
        },
        schema=CUSTOMERS_SCHEMA,
    )
    assert_frame_equal(customers_table(totals, billing, period), expected)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (999, "999"), (5000, "5.000"), (25000, "25.000"), (1234567, "1.234.567"), (-1500, "-1.500")],
)
def test_integers_in_pt_br(value: int, text: str):
    assert formatting.integer(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1000"), "R$ 1.000,00"),
        (Decimal("1000.5"), "R$ 1.000,50"),
        (Decimal("0.045"), "R$ 0,05"),
        (Decimal("1234567.891"), "R$ 1.234.567,89"),
        (Decimal("-12.5"), "-R$ 12,50"),
    ],
)
def test_money_in_pt_br(value: Decimal, text: str):
    assert formatting.money(value) == text


def test_dates_months_and_durations_in_pt_br():
    assert formatting.date(dt.date(2020, 2, 3)) == "03/02/2020"
    assert formatting.month(dt.date(2020, 3, 9)) == "março de 2020"
    assert (
        formatting.instant(dt.datetime(2020, 2, 3, 15, 0, 0, 123, tzinfo=UTC)) == "2020-02-03T15:00:00+00:00"
    )
    assert [formatting.duration(s) for s in (5, 125, 3 * 3600 + 300, 50 * 3600)] == [
        "5 s",
        "2 min",
        "3 h 05 min",
        "2 d 02 h",
    ]


def test_minutes_chart_draws_one_bar_per_minute_with_notifications_and_hour_labels():
    zone = ZoneInfo("America/Sao_Paulo")
    start = dt.datetime(2020, 2, 3, 10, 30, tzinfo=zone)
    end = dt.datetime(2020, 2, 3, 12, 30, tzinfo=zone)
    series = [
        {"minute": dt.datetime(2020, 2, 3, 10, 45, tzinfo=zone), "notifications": 1200},
        {"minute": dt.datetime(2020, 2, 3, 14, 0, tzinfo=UTC), "notifications": 7},  # 11:00 local
    ]
    svg = str(charts.minutes_chart(start, end, series))
    assert svg.count("<rect") == 2
    assert "10:45: 1.200 notificações" in svg and "11:00: 7 notificações" in svg
    assert re.findall(r">(\d\d:\d\d)</text>", svg) == ["11:00", "12:00"]
    assert ">2.000</text>" in svg  # the axis maximum: the next round number above 1,200


def test_billing_chart_draws_the_billed_days_and_says_when_there_are_none():
    days = [
        {
            "date": dt.date(2020, 2, 1),
            "notifications": 25000,
            "unit_price_brl": Decimal("0.04"),
            "value_brl": Decimal("1000.00"),
        },
        {
            "date": dt.date(2020, 2, 3),
            "notifications": 2,
            "unit_price_brl": Decimal("0.04"),
            "value_brl": Decimal("0.08"),
        },
    ]
    svg = str(charts.billing_chart(dt.date(2020, 1, 5), dt.date(2020, 2, 3), days))
    assert svg.count("<rect") == 2
    assert "01/02/2020: R$ 1.000,00 (25.000 notificações)" in svg
    assert "Nenhum dia cobrado" in str(charts.billing_chart(dt.date(2020, 1, 5), dt.date(2020, 2, 3), []))
