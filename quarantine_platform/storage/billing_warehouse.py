"""The billing gold table in DuckDB: one row per (date, customer) with WhatsApp notifications and their
value, and the days billed (so a billed day with no WhatsApp traffic is told apart from a day never billed).

Money is DECIMAL end to end: Polars Decimal -> Arrow decimal128 -> DuckDB DECIMAL -> Polars Decimal.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from quarantine_platform.storage.notification_warehouse import COUNTS_TABLE

BILLING_TABLE = "billing_daily"
BILLED_DAYS_TABLE = "billing_days_billed"

# The export columns (design.md), in order; the table also keeps `billed_at`.
BILLING_COLUMNS = ("date", "customer_id", "customer_name", "notifications", "unit_price_brl", "value_brl")
BILLING_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "customer_id": pl.Int64,
        "customer_name": pl.String,
        "notifications": pl.Int64,
        "unit_price_brl": pl.Decimal(18, 4),
        "value_brl": pl.Decimal(18, 2),
        "billed_at": pl.Datetime("us"),
    }
)

_DDL = f"""
create table if not exists {BILLING_TABLE} (
    date date not null,
    customer_id bigint not null,
    customer_name varchar not null,
    notifications bigint not null,
    unit_price_brl decimal(18, 4) not null,
    value_brl decimal(18, 2) not null,
    billed_at timestamp not null
);
create table if not exists {BILLED_DAYS_TABLE} (
    date date primary key,
    billed_at timestamp not null,
    run_id varchar not null
);
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def replace_days(
    con: duckdb.DuckDBPyConnection,
    days: list[dt.date],
    rows: pl.DataFrame,
    billed_at: dt.datetime,
    run_id: str,
) -> None:
    """Replace the billing of `days` with `rows` (columns BILLING_COLUMNS) and record the days as billed, in
    one transaction: re-billing a day replaces it, never adds to it, and a reader never sees half a day."""
    ensure_tables(con)
    stamp = billed_at.astimezone(dt.UTC).replace(tzinfo=None) if billed_at.tzinfo else billed_at
    table = (
        rows.select(BILLING_COLUMNS)
        .with_columns(billed_at=pl.lit(stamp, dtype=pl.Datetime("us")))
        .match_to_schema(BILLING_SCHEMA)
        .to_arrow()
    )
    billed = pl.DataFrame({"date": days}, schema={"date": pl.Date}).to_arrow()
    con.register("_billing_rows", table)
    con.register("_billing_days", billed)
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {BILLING_TABLE} where date in (select date from _billing_days)")
        con.execute(f"insert into {BILLING_TABLE} select * from _billing_rows")
        con.execute(f"delete from {BILLED_DAYS_TABLE} where date in (select date from _billing_days)")
        con.execute(f"insert into {BILLED_DAYS_TABLE} select date, ?, ? from _billing_days", [stamp, run_id])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_billing_rows")
        con.unregister("_billing_days")


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_name in (?, ?)",
        [BILLING_TABLE, BILLED_DAYS_TABLE],
    ).fetchall()[0][0]
    return found == 2


def read_billing(
    con: duckdb.DuckDBPyConnection,
    start_date: dt.date,
    end_date: dt.date,
    customer_id: int | None = None,
) -> pl.DataFrame:
    """Billing rows of the days start_date..end_date (both included), optionally of one customer, sorted by
    date then customer_id. Columns: BILLING_COLUMNS then billed_at. Works on a read-only connection and on a
    warehouse where nothing was billed yet (no rows)."""
    if not _has_tables(con):
        return pl.DataFrame(schema=BILLING_SCHEMA)
    query = f"select * from {BILLING_TABLE} where date between ? and ?"
    params: list[object] = [start_date, end_date]
    if customer_id is not None:
        query += " and customer_id = ?"
        params.append(customer_id)
    frame = con.sql(query + " order by date, customer_id", params=params).pl()
    return frame.match_to_schema(BILLING_SCHEMA) if frame.height else pl.DataFrame(schema=BILLING_SCHEMA)


def billed_days(con: duckdb.DuckDBPyConnection, start_date: dt.date, end_date: dt.date) -> list[dt.date]:
    """The days of start_date..end_date that were billed (with or without WhatsApp traffic)."""
    if not _has_tables(con):
        return []
    rows = con.execute(
        f"select date from {BILLED_DAYS_TABLE} where date between ? and ? order by date",
        [start_date, end_date],
    ).fetchall()
    return [r[0] for r in rows]


def whatsapp_minutes_per_day(con: duckdb.DuckDBPyConnection, bounds: pl.DataFrame) -> pl.DataFrame:
    """Per billed day and customer: the sum of `notification_counts_minutely` WhatsApp counts over the
    minutes of that day. `bounds` holds date, start, end (naive UTC) per day: the day's UTC window is
    computed by the caller, so DuckDB needs no time-zone data. Columns: date, customer_id, minutes_total."""
    schema = {"date": pl.Date, "customer_id": pl.Int64, "minutes_total": pl.Int64}
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = ?", [COUNTS_TABLE]
    ).fetchall()[0][0]
    if not exists or bounds.is_empty():
        return pl.DataFrame(schema=schema)
    con.register("_billing_bounds", bounds.to_arrow())
    try:
        frame = con.sql(
            f"select b.date, c.customer_id, sum(c.notifications)::bigint as minutes_total "
            f"from {COUNTS_TABLE} c join _billing_bounds b on c.minute >= b.start and c.minute < b.end "
            "where lower(c.channel) = 'whatsapp' group by all"
        ).pl()
    finally:
        con.unregister("_billing_bounds")
    return frame.match_to_schema(schema) if frame.height else pl.DataFrame(schema=schema)
