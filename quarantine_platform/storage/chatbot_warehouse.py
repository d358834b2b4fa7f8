"""The chatbot gold tables in DuckDB.

- `chatbot_answers`: one row per answer as typed (empty ones too), replaced per hourly file
  (`date`, `hour` name the file `date=YYYY-MM-DD/hour=HH.json`; the answer's own `timestamp` may lie
  outside that hour, records come in any order). Timestamps are naive UTC.
- `chatbot_report`: per day, flow-agnostic long form, one row per (session, key) with the key's latest
  valid value and `key_order`, its column position within the flow. Each flow has its own keys, so a
  wide table per flow is built on export (`transforms.chatbot.flow_table`), never stored.
- `chatbot_answers_hours` / `chatbot_report_days`: every hour and day processed, so an hour with no file
  (an empty partition) or a day with no session is told apart from one never run.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from quarantine_platform.transforms.chatbot import ANSWER_SCHEMA, REPORT_SCHEMA

ANSWERS_TABLE = "chatbot_answers"
HOURS_TABLE = "chatbot_answers_hours"
REPORT_TABLE = "chatbot_report"
DAYS_TABLE = "chatbot_report_days"

_DDL = f"""
create table if not exists {ANSWERS_TABLE} (
    date date not null,
    hour integer not null,
    customer varchar not null,
    flow varchar not null,
    session varchar not null,
    timestamp timestamp not null,
    key varchar not null,
    value varchar not null,
    file varchar not null,
    position bigint not null,
    key_index bigint not null
);
create table if not exists {HOURS_TABLE} (
    date date not null,
    hour integer not null,
    location varchar not null,
    file_found boolean not null,
    answers bigint not null,
    records_rejected bigint not null,
    materialized_at timestamp not null,
    run_id varchar not null,
    primary key (date, hour)
);
create table if not exists {REPORT_TABLE} (
    date date not null,
    customer varchar not null,
    flow varchar not null,
    session varchar not null,
    first_answer_dt varchar not null,
    last_answer_dt varchar not null,
    key varchar not null,
    value varchar not null,
    key_order bigint not null
);
create table if not exists {DAYS_TABLE} (
    date date primary key,
    sessions bigint not null,
    answers_read bigint not null,
    materialized_at timestamp not null,
    run_id varchar not null
);
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()}


def replace_hour(
    con: duckdb.DuckDBPyConnection,
    hour_start: dt.datetime,
    answers: pl.DataFrame,
    *,
    location: str,
    file_found: bool,
    records_rejected: int,
    run_id: str,
) -> None:
    """Replace one hourly file's answers (`ANSWER_SCHEMA`) and mark the hour processed, in one transaction."""
    ensure_tables(con)
    day, hour = hour_start.date(), hour_start.hour
    rows = answers.select(  # noqa: F841 - read by DuckDB below
        pl.lit(day).alias("date"),
        pl.lit(hour, pl.Int32).alias("hour"),
        "customer",
        "flow",
        "session",
        pl.col("timestamp").dt.convert_time_zone("UTC").dt.replace_time_zone(None),
        "key",
        "value",
        "file",
        "position",
        "key_index",
    ).to_arrow()
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {ANSWERS_TABLE} where date = ? and hour = ?", [day, hour])
        con.execute(f"insert into {ANSWERS_TABLE} select * from rows")
        con.execute(f"delete from {HOURS_TABLE} where date = ? and hour = ?", [day, hour])
        con.execute(
            f"insert into {HOURS_TABLE} values (?, ?, ?, ?, ?, ?, now()::timestamp, ?)",
            [day, hour, location, file_found, answers.height, records_rejected, run_id],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def hours_processed(con: duckdb.DuckDBPyConnection, day: dt.date) -> set[int]:
    if HOURS_TABLE not in _tables(con):
        return set()
    return {h for (h,) in con.execute(f"select hour from {HOURS_TABLE} where date = ?", [day]).fetchall()}


def read_day_answers(con: duckdb.DuckDBPyConnection, day: dt.date) -> pl.DataFrame:
    """The day's answers (`ANSWER_SCHEMA`, timestamps UTC) in file order."""
    if ANSWERS_TABLE not in _tables(con):
        return pl.DataFrame(schema=ANSWER_SCHEMA)
    frame = con.sql(
        f"select {', '.join(ANSWER_SCHEMA.names())} from {ANSWERS_TABLE} where date = ? "
        "order by file, position, key_index",
        params=[day],
    ).pl()
    return frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC")).cast(dict(ANSWER_SCHEMA))


def replace_day(
    con: duckdb.DuckDBPyConnection, day: dt.date, report: pl.DataFrame, *, answers_read: int, run_id: str
) -> None:
    """Replace the day's report (`REPORT_SCHEMA`, long form) and mark the day done, in one transaction."""
    ensure_tables(con)
    rows = report.select(pl.lit(day).alias("date"), *REPORT_SCHEMA.names()).to_arrow()  # noqa: F841
    sessions = report.select("customer", "flow", "session").n_unique() if report.height else 0
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {REPORT_TABLE} where date = ?", [day])
        con.execute(f"insert into {REPORT_TABLE} select * from rows")
        con.execute(f"delete from {DAYS_TABLE} where date = ?", [day])
        con.execute(
            f"insert into {DAYS_TABLE} values (?, ?, ?, now()::timestamp, ?)",
            [day, sessions, answers_read, run_id],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def read_report(con: duckdb.DuckDBPyConnection, day: dt.date) -> pl.DataFrame | None:
    """The day's report in long form (`REPORT_SCHEMA`); None if the day was never materialized."""
    if not {REPORT_TABLE, DAYS_TABLE} <= _tables(con):
        return None
    if not con.execute(f"select 1 from {DAYS_TABLE} where date = ?", [day]).fetchall():
        return None
    frame = con.sql(
        f"select {', '.join(REPORT_SCHEMA.names())} from {REPORT_TABLE} where date = ? "
        "order by customer, flow, session, key_order",
        params=[day],
    ).pl()
    return frame.cast(dict(REPORT_SCHEMA))


def duplicate_cells(con: duckdb.DuckDBPyConnection, days: list[dt.date]) -> int:
    """(date, customer, flow, session, key) stored more than once among `days`: each is one cell."""
    return con.execute(
        f"select count(*) from (select 1 from {REPORT_TABLE} where date in (select unnest(?::date[])) "
        "group by date, customer, flow, session, key having count(*) > 1)",
        [days],
    ).fetchall()[0][0]


def invalid_cells(con: duckdb.DuckDBPyConnection, days: list[dt.date]) -> int:
    """Report rows among `days` that no valid answer could give: a blank or padded value (blanks are not
    answers, values are stored trimmed) or a session whose first answer comes after its last."""
    return con.execute(
        f"select count(*) from {REPORT_TABLE} where date in (select unnest(?::date[])) "
        "and (trim(value) = '' or value <> trim(value) or first_answer_dt > last_answer_dt)",
        [days],
    ).fetchall()[0][0]
