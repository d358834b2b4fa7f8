"""Daily billing as pure transforms: which notifications count, prices, Decimal values, the pricing file."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.transforms import billing
from quarantine_platform.transforms.billing import (
    BILLING_ROWS_SCHEMA,
    DAY_COUNTS_SCHEMA,
    Pricing,
    PricingError,
    bill_day,
    billing_mismatches,
    day_bounds,
    format_brl,
    human_lines,
    load_pricing,
    parse_pricing,
    whatsapp_day_counts,
)
from quarantine_platform.transforms.notifications import first_copies
from quarantine_platform_tests.billing.bronze import commit, event, many

DAY = dt.date(2020, 2, 3)


def counts(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=DAY_COUNTS_SCHEMA, orient="row")


def test_a_day_counts_first_copies_of_whatsapp_in_any_case_and_the_latest_name(tmp_path):
    commit(
        tmp_path,
        [
            event(11, "A1", "2020-02-03T10:00:00.000+00:00", name="Acme"),
            event(11, "A2", "2020-02-03T10:01:00.000+00:00", channel="WhatsApp", name="Acme"),
            event(11, "A3", "2020-02-03T10:02:00.000+00:00", channel="SMS", name="Acme"),
            event(11, "A4", "2020-02-03T23:59:59.999+00:00", channel="whatsapp", name="Acme Ltda"),
            event(11, "A5", "2020-02-04T00:00:00.000+00:00", name="Acme"),  # the next day
            # first copy SMS, later copy WhatsApp: the first copy decides, not billed
            event(11, "B1", "2020-02-03T09:00:00.000+00:00", channel="SMS", name="Acme"),
            # sent the day before and again today: dedup is per day, it counts today too
            event(11, "C1", "2020-02-02T23:59:00.000+00:00", name="Acme"),
            event(11, "C1", "2020-02-03T00:01:00.000+00:00", name="Acme"),
            # same event time on two partitions: partition 0 (WhatsApp) comes first
            event(11, "D1", "2020-02-03T11:00:00.000+00:00", name="Acme"),
            event(22, "S1", "2020-02-03T12:00:00.000+00:00", channel="SMS", name="Only SMS"),
            event(33, "E1", "2020-02-03T12:00:00.000-03:00", name="Boa Vista"),
        ],
        partition=0,
    )
    commit(
        tmp_path,
        [
            event(11, "A1", "2020-02-03T12:00:00.000+00:00", name="Acme"),  # re-send, other partition
            event(11, "B1", "2020-02-03T09:05:00.000+00:00", name="Acme"),
            event(11, "D1", "2020-02-03T11:00:00.000+00:00", channel="SMS", name="Acme"),
            event(33, "E1", "2020-02-03T15:00:00.000+00:00", name="Boa Vista"),  # same instant, re-sent
        ],
        partition=1,
    )
    got = whatsapp_day_counts(NotificationLake(tmp_path).scan_events(), DAY, "UTC")
    assert_frame_equal(got, counts([(11, "Acme Ltda", 5), (33, "Boa Vista", 1)]))


def test_the_day_is_the_local_day_of_a_non_utc_timezone(tmp_path):
    zone = "America/Sao_Paulo"  # UTC-03:00 in 2020
    commit(
        tmp_path,
        [
            event(7, "M1", "2020-02-03T03:00:00.000+00:00"),  # 00:00 local on the 3rd
            event(7, "M2", "2020-02-04T02:59:59.999+00:00"),  # 23:59:59.999 local on the 3rd
            event(7, "M3", "2020-02-04T03:00:00.000+00:00"),  # 00:00 local on the 4th
            event(7, "M0", "2020-02-03T02:59:59.999+00:00"),  # 23:59:59.999 local on the 2nd
            event(7, "M4", "2020-02-02T22:00:00.000-03:00"),  # 01:00 UTC on the 3rd, local the 2nd
        ],
    )
    events = NotificationLake(tmp_path).scan_events()
    assert whatsapp_day_counts(events, DAY, zone)["notifications"].to_list() == [2]
    assert whatsapp_day_counts(events, DAY, "UTC")["notifications"].to_list() == [3]
    assert whatsapp_day_counts(events, dt.date(2020, 2, 4), zone)["notifications"].to_list() == [1]
    assert day_bounds(DAY, zone) == (
        dt.datetime(2020, 2, 3, 3, tzinfo=dt.UTC),
        dt.datetime(2020, 2, 4, 3, tzinfo=dt.UTC),
    )


def test_day_bounds_follow_a_daylight_saving_change():
    start, end = day_bounds(dt.date(2024, 3, 10), "America/New_York")  # clocks go forward: 23 hours
    assert (start, end - start) == (dt.datetime(2024, 3, 10, 5, tzinfo=dt.UTC), dt.timedelta(hours=23))


def _random_bronze(root: Path, seed: int) -> None:
    rnd = random.Random(seed)
    base = dt.datetime(2020, 2, 2, 20, tzinfo=dt.UTC)
    parts: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    for n in range(3000):
        when = base + dt.timedelta(seconds=rnd.randrange(0, 40 * 3600))
        cid = rnd.choice([1, 2, 3, 4, 5])
        record = event(
            cid,
            f"R{n}",
            when.isoformat(timespec="milliseconds"),
            channel=rnd.choice(["Whatsapp", "WhatsApp", "SMS", "Email"]),
            name=f"Nome {cid}-{rnd.randrange(3)}",
        )
        parts[rnd.randrange(3)].append(record)
        for _ in range(rnd.choice([0, 0, 0, 1, 2])):  # re-sends: later, same time, other partition
            later = when + dt.timedelta(seconds=rnd.choice([0, 1, 600, 7200]))
            parts[rnd.randrange(3)].append({**record, "event_time": later.astimezone(dt.UTC)})
    for partition, rows in parts.items():
        commit(root, rows, partition=partition)


def _reference(events: pl.LazyFrame, day: dt.date, zone: str) -> pl.DataFrame:
    """Straight from `first_copies`, as the minute counts deduplicate."""
    start, end = day_bounds(day, zone)
    return (
        first_copies(events.filter(pl.col("event_time").is_between(start, end, closed="left")), zone)
        .filter(pl.col("channel").str.to_lowercase() == "whatsapp")
        .group_by("customer_id")
        .agg(notifications=pl.len().cast(pl.Int64))
        .sort("customer_id")
        .collect()
    )


@pytest.mark.parametrize("zone", ["UTC", "America/Sao_Paulo", "Asia/Kolkata"])
def test_random_days_equal_the_first_copies_reference(tmp_path, zone):
    _random_bronze(tmp_path, seed=5)
    events = NotificationLake(tmp_path).scan_events()
    for day in (dt.date(2020, 2, 2), DAY, dt.date(2020, 2, 4)):
        got = whatsapp_day_counts(events, day, zone).select("customer_id", "notifications")
        assert_frame_equal(got, _reference(events, day, zone))


def test_hash_collisions_are_settled_on_the_message_id(tmp_path, monkeypatch):
    """Rows whose hash repeats go through the exact path; if every hash collided, the counts are the same."""
    _random_bronze(tmp_path, seed=9)
    events = NotificationLake(tmp_path).scan_events()
    expected = whatsapp_day_counts(events, DAY, "UTC")
    monkeypatch.setattr(billing, "repeated_values", lambda values: values.unique())
    assert_frame_equal(whatsapp_day_counts(events, DAY, "UTC"), expected)


def test_a_day_without_whatsapp_traffic_has_no_rows(tmp_path):
    commit(tmp_path, [event(1, "X", "2020-02-03T10:00:00+00:00", channel="SMS")])
    got = whatsapp_day_counts(NotificationLake(tmp_path).scan_events(), DAY, "UTC")
    assert_frame_equal(got, pl.DataFrame(schema=DAY_COUNTS_SCHEMA))


def test_25000_notifications_at_the_default_price_are_1000_reais(tmp_path):
    commit(tmp_path, many(7494212, 25_000, "2020-02-03T14:00:00+00:00", step_us=1_000_000))
    day_counts = whatsapp_day_counts(NotificationLake(tmp_path).scan_events(), DAY, "UTC")
    rows = bill_day(day_counts, Pricing(), DAY)
    assert rows.row(0) == (DAY, 7494212, "Cliente 7494212", 25_000, Decimal("0.0400"), Decimal("1000.00"))


def test_prices_per_customer_and_default_with_values_rounded_half_up_to_cents():
    pricing = Pricing(default=Decimal("0.04"), per_customer={11: Decimal("0.0125"), 33: Decimal("0.005")})
    got = bill_day(
        counts([(33, "Tie", 1), (11, "Acme", 3), (22, "Default", 7), (44, "Big", 123_456_789)]), pricing, DAY
    )
    expected = pl.DataFrame(
        [
            (DAY, 11, "Acme", 3, Decimal("0.0125"), Decimal("0.04")),  # 0.0375
            (DAY, 22, "Default", 7, Decimal("0.0400"), Decimal("0.28")),
            (DAY, 33, "Tie", 1, Decimal("0.0050"), Decimal("0.01")),  # 0.005: half-up, not half-even
            (DAY, 44, "Big", 123_456_789, Decimal("0.0400"), Decimal("4938271.56")),
        ],
        schema=BILLING_ROWS_SCHEMA,
        orient="row",
    )
    assert_frame_equal(got, expected)


def test_pricing_file_with_default_per_customer_rows_bom_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "pricing.csv"
    path.write_bytes("\ufeffcustomer_id,unit_price_brl\r\n*,0.05\r\n\r\n 11 , 0.0125\r\n".encode())
    assert load_pricing(path) == Pricing(Decimal("0.05"), {11: Decimal("0.0125")}, str(path))


def test_pricing_without_a_default_row_or_without_a_file_uses_0_04(tmp_path):
    assert parse_pricing("customer_id,unit_price_brl\n11,0.10\n", "p.csv").default == Decimal("0.04")
    assert load_pricing(tmp_path / "missing.csv") == Pricing(Decimal("0.04"), {}, None)


def test_the_shipped_pricing_file_parses():
    shipped = load_pricing(Path(__file__).resolve().parents[2] / "data" / "pricing.csv")
    assert shipped.default == Decimal("0.04") and shipped.per_customer


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,price\n", "p.csv, line 1: the header must be customer_id,unit_price_brl"),
        (
            "customer_id,unit_price_brl\n*,0.04\n11,abc\n",
            "p.csv, line 3: unit_price_brl 'abc' is not a decimal",
        ),
        (
            "customer_id,unit_price_brl\n11,0.12345\n",
            "p.csv, line 2: unit_price_brl '0.12345' has more than 4",
        ),
        ("customer_id,unit_price_brl\n11,-1\n", "p.csv, line 2: unit_price_brl '-1' must be a number >= 0"),
        ("customer_id,unit_price_brl\n11,NaN\n", "p.csv, line 2: unit_price_brl 'NaN' must be a number >= 0"),
        (
            "customer_id,unit_price_brl\nacme,1\n",
            "p.csv, line 2: customer_id 'acme' is not an integer or '*'",
        ),
        (
            "customer_id,unit_price_brl\n11,1\n\n11,2\n",
            "p.csv, line 4: customer 11 is priced twice (first on line 2)",
        ),
        (
            "customer_id,unit_price_brl\n*,1\n*,2\n",
            "p.csv, line 3: a second default row '*' (the first is on line 2)",
        ),
        ("customer_id,unit_price_brl\n11,1,2\n", "p.csv, line 2: expected 2 columns"),
    ],
)
def test_a_malformed_pricing_row_is_an_error_naming_file_and_line(text, message):
    with pytest.raises(PricingError) as raised:
        parse_pricing(text, "p.csv")
    assert str(raised.value).startswith(message)


def test_human_form_is_the_seeds_with_pt_br_money():
    rows = bill_day(counts([(7494212, "Acme", 25_000)]), Pricing(), DAY)
    assert human_lines(rows) == [
        "Cliente: Acme / Notificações Whatsapp: 25000 / Valor: R$ 1.000,00 / Data: 2020-02-03"
    ]
    assert format_brl(Decimal("1234567.891")) == "R$ 1.234.567,89"
    assert format_brl(Decimal("0.005")) == "R$ 0,01"
    assert format_brl(Decimal("12")) == "R$ 12,00"


def test_the_rebill_command_names_a_day_or_a_range():
    assert billing.rebill_command(DAY).endswith("--select billing_daily --partition 2020-02-03")
    assert billing.rebill_command(DAY, dt.date(2020, 2, 5)).endswith(
        "--partition-range 2020-02-03...2020-02-05"
    )


def test_mismatches_name_each_day_and_customer_that_differs_from_its_minutes():
    billed = bill_day(counts([(11, "A", 5), (22, "B", 3)]), Pricing(), DAY)
    minutes = pl.DataFrame(
        [(DAY, 11, 5), (DAY, 22, 4), (DAY, 33, 1)],
        schema={"date": pl.Date, "customer_id": pl.Int64, "minutes_total": pl.Int64},
        orient="row",
    )
    expected = pl.DataFrame(
        [(DAY, 22, 3, 4), (DAY, 33, 0, 1)],
        schema={"date": pl.Date, "customer_id": pl.Int64, "billed": pl.Int64, "minutes_total": pl.Int64},
        orient="row",
    )
    assert_frame_equal(billing_mismatches(billed, minutes), expected)
