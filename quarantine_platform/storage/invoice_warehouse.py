"""The `invoice_averages` gold table in DuckDB, one slice of rows per reference month.

Money is DECIMAL(38, 2), the transform's own type (`transforms.invoices.MONEY`): no float anywhere and
no narrowing on the way in. A second table records every reference month that was computed, so that a
month whose result is legitimately empty (no invoice before it) is told apart from one never run.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from quarantine_platform.transforms.invoices import AVERAGE_COLUMNS

AVERAGES_TABLE = "invoice_averages"
MONTHS_TABLE = "invoice_averages_months"

_DDL = f"""
create table if not exists {AVERAGES_TABLE} (
    reference_month date not null,
    customer varchar not null,
    account varchar not null,
    avg_invoices_last_3_months decimal(38, 2),
    avg_invoices_last_6_months decimal(38, 2)
);
create table if not exists {MONTHS_TABLE} (
    reference_month date primary key,
    source varchar not null,
    invoices_read bigint not null,
    rows_rejected bigint not null,
    accounts bigint not null,
    materialized_at timestamp not null,
    run_id varchar not null
);
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def replace_months(
    con: duckdb.DuckDBPyConnection,
    averages: dict[dt.date, pl.DataFrame],
    *,
    source: str,
    invoices_read: int,
    rows_rejected: int,
    run_id: str,
) -> None:
    """Replace the rows of every reference month in `averages` (first-of-month dates), in one transaction:
    re-running a month replaces it, never adds to it."""
    ensure_tables(con)
    months = sorted(averages)
    rows = pl.concat(  # noqa: F841 - read by DuckDB below
        [averages[m].select(pl.lit(m).alias("reference_month"), *AVERAGE_COLUMNS) for m in months],
        how="vertical",
    ).to_arrow()
    done = pl.DataFrame(  # noqa: F841 - read by DuckDB below
        {"reference_month": months, "accounts": [averages[m].height for m in months]},
        schema={"reference_month": pl.Date, "accounts": pl.Int64},
    ).to_arrow()
    con.execute("begin transaction")
    try:
        for table in (AVERAGES_TABLE, MONTHS_TABLE):
            con.execute(f"delete from {table} where reference_month in (select reference_month from done)")
        con.execute(f"insert into {AVERAGES_TABLE} select * from rows")
        con.execute(
            f"insert into {MONTHS_TABLE} "
            "select reference_month, ?, ?, ?, accounts, now()::timestamp, ? from done",
            [source, invoices_read, rows_rejected, run_id],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def read_month(con: duckdb.DuckDBPyConnection, reference_month: dt.date) -> pl.DataFrame | None:
    """The month's averages (export columns, sorted by customer then account); None if never computed."""
    tables = {t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()}
    if not {AVERAGES_TABLE, MONTHS_TABLE} <= tables:
        return None
    if not con.execute(
        f"select 1 from {MONTHS_TABLE} where reference_month = ?", [reference_month]
    ).fetchall():
        return None
    return con.sql(
        f"select {', '.join(AVERAGE_COLUMNS)} from {AVERAGES_TABLE} where reference_month = ? "
        "order by customer, account",
        params=[reference_month],
    ).pl()


def duplicate_rows(con: duckdb.DuckDBPyConnection) -> int:
    """(reference_month, customer, account) stored more than once: each should have one row."""
    ensure_tables(con)
    return con.execute(
        f"select count(*) from (select 1 from {AVERAGES_TABLE} "
        "group by reference_month, customer, account having count(*) > 1)"
    ).fetchall()[0][0]


def six_without_three(con: duckdb.DuckDBPyConnection) -> int:
    """Rows with a 6-month average but no 3-month one: impossible, the 3 months are inside the 6."""
    ensure_tables(con)
    return con.execute(
        f"select count(*) from {AVERAGES_TABLE} "
        "where avg_invoices_last_6_months is not null and avg_invoices_last_3_months is null"
    ).fetchall()[0][0]
