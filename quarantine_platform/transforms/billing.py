"""Daily billing: per customer, the day's WhatsApp notifications (first copies, as counted per minute) times
the customer's unit price. Pure Polars, no Dagster.

Money is Decimal end to end: prices are parsed with `decimal.Decimal` into Decimal(18, 4), the value is
notifications x unit price, rounded half-up to cents (ROUND_HALF_UP; values are never negative, so Polars'
`half_away_from_zero` is the same rule) into Decimal(18, 2).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from quarantine_platform.errors import UserError
from quarantine_platform.storage.bronze_window import WindowScan, scan_files
from quarantine_platform.storage.notification_lake import read_customer_rows
from quarantine_platform.transforms.notifications import (
    MESSAGE_KEY,
    WHATSAPP,
    first_copies,
    message_key,
    repeated_values,
)

DEFAULT_UNIT_PRICE = Decimal("0.04")
PRICE_DTYPE = pl.Decimal(18, 4)
VALUE_DTYPE = pl.Decimal(18, 2)
PRICING_HEADER = ("customer_id", "unit_price_brl")
_PRICE_LIMIT = Decimal(10) ** 14  # DECIMAL(18, 4): 14 digits before the point

DAY_COUNTS_SCHEMA = pl.Schema(
    {"customer_id": pl.Int64, "customer_name": pl.String, "notifications": pl.Int64}
)
BILLING_ROWS_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "customer_id": pl.Int64,
        "customer_name": pl.String,
        "notifications": pl.Int64,
        "unit_price_brl": PRICE_DTYPE,
        "value_brl": VALUE_DTYPE,
    }
)


# --- pricing ------------------------------------------------------------------------------------------------


class PricingError(UserError):
    """pricing.csv cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Pricing:
    default: Decimal = DEFAULT_UNIT_PRICE
    per_customer: dict[int, Decimal] = field(default_factory=dict)
    source: str | None = None  # the file read; None when there was none (default price everywhere)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"customer_id": list(self.per_customer), "unit_price_brl": list(self.per_customer.values())},
            schema={"customer_id": pl.Int64, "unit_price_brl": PRICE_DTYPE},
        )


def load_pricing(path: str | Path) -> Pricing:
    """The prices of `path`; a missing file means the default price for everyone (source None)."""
    path = Path(path)
    if not path.exists():
        return Pricing()
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PricingError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_pricing(text, str(path))


def parse_pricing(text: str, source: str) -> Pricing:
    """`customer_id,unit_price_brl` rows; `*` as customer_id sets the default (0.04 when absent). Blank lines
    are skipped; anything else that is not a valid row is an error naming `source` and its line."""
    rows = csv.reader(io.StringIO(text, newline=""))
    default: tuple[Decimal, int] | None = None
    prices: dict[int, tuple[Decimal, int]] = {}
    header_seen = False
    for row in rows:
        line = rows.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if not header_seen:
            if tuple(c.lower() for c in cells) != PRICING_HEADER:
                raise PricingError(
                    f"{source}, line {line}: the header must be {','.join(PRICING_HEADER)}, "
                    f"found {','.join(cells)}"
                )
            header_seen = True
            continue
        if len(cells) != 2:
            raise PricingError(
                f"{source}, line {line}: expected 2 columns (customer_id,unit_price_brl), found {len(cells)}"
            )
        key, price_text = cells
        price = _price(price_text, source, line)
        if key == "*":
            if default is not None:
                raise PricingError(
                    f"{source}, line {line}: a second default row '*' (the first is on line {default[1]})"
                )
            default = (price, line)
            continue
        try:
            customer = int(key)
        except ValueError:
            raise PricingError(
                f"{source}, line {line}: customer_id {key!r} is not an integer or '*'"
            ) from None
        if customer in prices:
            raise PricingError(
                f"{source}, line {line}: customer {customer} is priced twice "
                f"(first on line {prices[customer][1]})"
            )
        prices[customer] = (price, line)
    return Pricing(
        default=default[0] if default else DEFAULT_UNIT_PRICE,
        per_customer={customer: price for customer, (price, _) in prices.items()},
        source=source,
    )


def _price(text: str, source: str, line: int) -> Decimal:
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise PricingError(
            f"{source}, line {line}: unit_price_brl {text!r} is not a decimal number"
        ) from None
    if not price.is_finite() or price < 0:
        raise PricingError(f"{source}, line {line}: unit_price_brl {text!r} must be a number >= 0")
    if price.as_tuple().exponent < -4:  # type: ignore[operator]
        raise PricingError(f"{source}, line {line}: unit_price_brl {text!r} has more than 4 decimal places")
    if price >= _PRICE_LIMIT:
        raise PricingError(f"{source}, line {line}: unit_price_brl {text!r} is too large")
    return price


# --- the day's WhatsApp notifications -----------------------------------------------------------------------


def day_bounds(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the local day `day` in `timezone` (23 or 25 hours on a DST change)."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    return start, end


def whatsapp_day_counts(events: pl.LazyFrame | WindowScan, day: dt.date, timezone: str) -> pl.DataFrame:
    """Per customer with WhatsApp traffic on `day` (a day of `timezone`): the WhatsApp notifications, a
    message_id counting once, in the channel and customer of its first copy (`first_copies`: earliest event
    time, then partition, offset); and the latest customer_name seen that day. `events` may hold other days;
    they are filtered out here. Its `message_key` column (as `scan_window` gives it) is used when present,
    else the key is computed from message_id. A `WindowScan` of exactly the day (`scan_window_parts`, what
    the billing asset passes) lets the passes skip event_time for the files wholly inside the day.

    Count per (customer, channel) = its rows - its rows of re-sent ids + the re-sent ids whose first copy it
    holds. Passes over the day, each reading only the columns it needs:
    1. the message keys (8 bytes a row, the only thing kept per row), sorted: the keys seen more than once;
    2. the rows with those keys (re-sends, ~1% of a day, plus the rare hash collision): message_id, customer,
       channel. They are settled exactly on message_id (ids that share a key stay apart);
    3. rows per (customer, channel, name) over the whole day (no event time); for the files of a WindowScan
       wholly inside the day, the totals their footers hold (no rows read). It runs beside passes 1-2.
    Rarely needed, and then only for the rows concerned: the event time, partition and offset of re-sent ids
    whose copies disagree on (customer, channel); the event times of customers seen under more than one
    name that day (the latest name wins)."""
    parts = _day_parts(events, day, timezone)
    rows = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")

    # Pass 3 needs nothing from passes 1-2: it runs beside them, in a thread of its own (Polars and numpy
    # release the GIL), so that it fills the core left idle by the single-threaded parts of the key search.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qp-billing") as side:
        pending_seen = side.submit(_rows_per_group, events, parts)
        keys = _each(parts, lambda part: part.select(MESSAGE_KEY)).collect(engine="streaming").to_series()
        repeated = repeated_values(keys).implode()
        del keys
        copies = _each(
            parts,
            lambda part: part.filter(pl.col(MESSAGE_KEY).is_in(repeated)).select(
                MESSAGE_KEY, "message_id", "customer_id", "channel"
            ),
        ).collect(engine="streaming")
        firsts = _first_copy_groups(copies, rows, timezone)
        seen = pending_seen.result()
    adjustment = pl.concat(
        [
            firsts.group_by("customer_id", "channel").agg(adjust=pl.len().cast(pl.Int64)),
            copies.group_by("customer_id", "channel").agg(adjust=-pl.len().cast(pl.Int64)),
        ]
    )
    counts = (
        pl.concat([seen.group_by("customer_id", "channel").agg(adjust=pl.col("rows").sum()), adjustment])
        .filter(pl.col("channel").str.to_lowercase() == WHATSAPP)
        .group_by("customer_id")
        .agg(notifications=pl.col("adjust").sum())
        .filter(pl.col("notifications") > 0)
    )
    return (
        counts.join(_latest_names(seen, rows), on="customer_id")
        .select(DAY_COUNTS_SCHEMA.names())
        .sort("customer_id")
        .match_to_schema(DAY_COUNTS_SCHEMA)
    )


def _day_parts(events: pl.LazyFrame | WindowScan, day: dt.date, timezone: str) -> list[pl.LazyFrame]:
    """The day's rows with their message_key, as one or more LazyFrames (see `whatsapp_day_counts`)."""
    start, end = day_bounds(day, timezone)
    if isinstance(events, WindowScan):
        if (events.start, events.end) != (start, end):
            raise ValueError(
                f"the window scan is [{events.start}, {events.end}), not the day {day} in {timezone}"
            )
        return events.parts()
    rows = events.filter((pl.col("event_time") >= start) & (pl.col("event_time") < end))
    if MESSAGE_KEY not in rows.collect_schema():
        rows = rows.with_columns(message_key(pl.col("message_id")))
    return [rows]


def _rows_per_group(events: pl.LazyFrame | WindowScan, parts: list[pl.LazyFrame]) -> pl.DataFrame:
    """Pass 3: rows per (customer_id, channel, customer_name) of the day. The files of a WindowScan wholly
    inside the day whose footer holds these totals (`customer_rows`, written at commit) are not read: their
    totals are added up; the other files and the edges are grouped row by row."""
    group = ["customer_id", "channel", "customer_name"]
    inside = list(events.inside_files) if isinstance(events, WindowScan) else []
    footers = {f.path: read_customer_rows(f.path) for f in inside if f.has_customer_rows}
    totals = [frame for frame in footers.values() if frame is not None]
    if isinstance(events, WindowScan) and totals:
        rest = [f for f in inside if footers.get(f.path) is None]
        parts = [scan_files(rest), events.edges] if rest else [events.edges]
    read = _each(parts, lambda part: part.select(group)).group_by(group).agg(rows=pl.len().cast(pl.Int64))
    if not totals:
        return read.collect(engine="streaming")
    summed = pl.concat([*totals, read.collect(engine="streaming")], how="vertical")
    return summed.group_by(group).agg(rows=pl.col("rows").sum())


def _each(parts: list[pl.LazyFrame], query: Callable[[pl.LazyFrame], pl.LazyFrame]) -> pl.LazyFrame:
    """`query` over each part, the results stacked (a filter on one part does not reach the others)."""
    done = [query(part) for part in parts]
    return done[0] if len(done) == 1 else pl.concat(done, how="vertical")


def _first_copy_groups(copies: pl.DataFrame, rows: pl.LazyFrame, timezone: str) -> pl.DataFrame:
    """(customer_id, channel) of the first copy of each message_id of `copies` (one row per message_id).
    When all copies of an id share (customer, channel), that is it, whichever copy came first. When they do
    not (rare), `first_copies` decides, on the event time, partition and offset read from `rows` for those
    ids only."""
    groups = copies.select("message_id", "customer_id", "channel").unique()
    mixed = groups.filter(pl.len().over("message_id") > 1)["message_id"].unique()
    settled = groups.filter(~pl.col("message_id").is_in(mixed.implode()))
    if mixed.is_empty():
        return settled.select("customer_id", "channel")
    keys = copies.filter(pl.col("message_id").is_in(mixed.implode()))[MESSAGE_KEY].unique()
    ties = (
        rows.filter(pl.col(MESSAGE_KEY).is_in(keys.implode()))
        .filter(pl.col("message_id").is_in(mixed.implode()))
        .select("partition", "offset", "message_id", "event_time", "customer_id", "channel")
    )
    return pl.concat(
        [
            settled.select("customer_id", "channel"),
            first_copies(ties, timezone).select("customer_id", "channel").collect(engine="streaming"),
        ]
    )


def _latest_names(seen: pl.DataFrame, rows: pl.LazyFrame) -> pl.DataFrame:
    """customer_id, customer_name: the name of the customer's latest event of the day (ties: the greatest
    name). The event times are read only for customers seen under more than one name."""
    names = seen.select("customer_id", "customer_name").unique()
    several = names.filter(pl.len().over("customer_id") > 1)["customer_id"].unique()
    if several.is_empty():
        return names
    latest = (
        rows.filter(pl.col("customer_id").is_in(several.implode()))
        .group_by("customer_id", "customer_name")
        .agg(last_seen=pl.col("event_time").max())
        .collect(engine="streaming")
        .sort("customer_id", "last_seen", "customer_name")
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col("customer_name").last())
    )
    return pl.concat([names.filter(~pl.col("customer_id").is_in(several.implode())), latest])


# --- the bill and its human form ----------------------------------------------------------------------------


def bill_day(counts: pl.DataFrame, pricing: Pricing, day: dt.date) -> pl.DataFrame:
    """The billing rows of `day`: counts (DAY_COUNTS_SCHEMA) priced per customer (else the default price);
    value = notifications x unit price, rounded half-up to cents."""
    priced = counts.join(pricing.frame(), on="customer_id", how="left").with_columns(
        pl.col("unit_price_brl").fill_null(pl.lit(pricing.default, dtype=PRICE_DTYPE))
    )
    return (
        priced.with_columns(
            date=pl.lit(day, dtype=pl.Date),
            value_brl=(pl.col("notifications") * pl.col("unit_price_brl"))
            .round(2, mode="half_away_from_zero")
            .cast(VALUE_DTYPE),
        )
        .select(BILLING_ROWS_SCHEMA.names())
        .sort("customer_id")
        .match_to_schema(BILLING_ROWS_SCHEMA)
    )


# --- reconciliation with the minute counts ------------------------------------------------------------------


def rebill_command(day: dt.date | str, last: dt.date | str | None = None) -> str:
    """The Dagster command that (re-)bills a day, or the days first..last in one run."""
    return materialize_days_command("billing_daily", day, last)


def materialize_days_command(asset: str, day: dt.date | str, last: dt.date | str | None = None) -> str:
    """The Dagster command that materializes a daily asset for a day, or the days first..last in one run."""
    which = (
        f"--partition {day}" if last is None or str(last) == str(day) else f"--partition-range {day}...{last}"
    )
    return f"dagster asset materialize -m quarantine_platform.definitions --select {asset} {which}"


def day_bounds_frame(days: list[dt.date], timezone: str) -> pl.DataFrame:
    """date, start, end (naive UTC) of each local day: what the minute table is keyed by."""
    bounds = [day_bounds(day, timezone) for day in days]
    return pl.DataFrame(
        {
            "date": days,
            "start": [s.replace(tzinfo=None) for s, _ in bounds],
            "end": [e.replace(tzinfo=None) for _, e in bounds],
        },
        schema={"date": pl.Date, "start": pl.Datetime("us"), "end": pl.Datetime("us")},
    )


def billing_mismatches(billed: pl.DataFrame, minutes: pl.DataFrame) -> pl.DataFrame:
    """(date, customer_id) where the billed WhatsApp notifications differ from the sum of the day's minute
    counts (a customer missing on one side counts as 0 there). Columns: date, customer_id, billed,
    minutes_total, sorted."""
    left = billed.select("date", "customer_id", billed=pl.col("notifications"))
    return (
        left.join(minutes, on=["date", "customer_id"], how="full", coalesce=True)
        .with_columns(pl.col("billed", "minutes_total").fill_null(0))
        .filter(pl.col("billed") != pl.col("minutes_total"))
        .sort("date", "customer_id")
    )


def format_brl(value: Decimal) -> str:
    """pt-BR money: `R$ 1.000,00` (thousands `.`, decimals `,`), half-up to cents."""
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    plain = f"{cents:,.2f}"  # 1,000.00
    return "R$ " + plain.translate(str.maketrans({",": ".", ".": ","}))


def human_lines(rows: pl.DataFrame) -> list[str]:
    """The seeds' billing report: one line per customer, like
    `Cliente: Acme / Notificações Whatsapp: 25000 / Valor: R$ 1.000,00 / Data: 2020-02-03`."""
    return [
        f"Cliente: {name} / Notificações Whatsapp: {count} / Valor: {format_brl(value)} / Data: {day}"
        for day, name, count, value in rows.select(
            "date", "customer_name", "notifications", "value_brl"
        ).iter_rows()
    ]
