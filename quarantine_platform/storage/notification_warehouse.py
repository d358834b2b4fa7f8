"""Gold tables of the notification stream in DuckDB. Minutes are stored as naive UTC timestamps."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

COUNTS_TABLE = "notification_counts_minutely"
PROCESSED_TABLE = "notification_minutes_processed"

_DDL = f"""
create table if not exists {COUNTS_TABLE} (
    minute timestamp not null,
    customer_id bigint not null,
    customer_name varchar not null,
    channel varchar not null,
    notifications bigint not null
);
create table if not exists {PROCESSED_TABLE} (
    minute timestamp primary key,
    counted_at timestamp not null,
    bronze_seq bigint not null,
    run_id varchar not null
);
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def _naive_utc(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(dt.UTC).replace(tzinfo=None)


def replace_minutes(
    con: duckdb.DuckDBPyConnection,
    start: dt.datetime,
    end: dt.datetime,
    counts: pl.DataFrame,
    bronze_seq: int,
    run_id: str,
) -> None:
    """Replace the counts of minutes [start, end) and record every one of them as processed, in one
    transaction: a re-run replaces, never adds, and a minute with no traffic is still marked done."""
    ensure_tables(con)
    rows = counts.with_columns(pl.col("minute").dt.replace_time_zone(None)).to_arrow()  # noqa: F841
    s, e = _naive_utc(start), _naive_utc(end)
    minutes = pl.datetime_range(s, e, "1m", closed="left", eager=True).alias("minute")
    processed = pl.DataFrame({"minute": minutes}).to_arrow()  # noqa: F841
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {COUNTS_TABLE} where minute >= ? and minute < ?", [s, e])
        con.execute(f"insert into {COUNTS_TABLE} select * from rows")
        con.execute(f"delete from {PROCESSED_TABLE} where minute >= ? and minute < ?", [s, e])
        con.execute(
            f"insert into {PROCESSED_TABLE} select minute, now()::timestamp, ?, ? from processed",
            [bronze_seq, run_id],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def read_counts(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    return con.sql(
        f"select * from {COUNTS_TABLE} where minute >= ? and minute < ? order by all",
        params=[_naive_utc(start), _naive_utc(end)],
    ).pl()
