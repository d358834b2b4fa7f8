"""The quarantine table in the DuckDB warehouse: every load date's rows are kept (history is queryable).

`quarantine_loads` records each load date materialized, so a load date with no one in quarantine is still
known to have been computed, and `qp` can tell "nobody in quarantine" from "never loaded".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow as pa

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.resources.warehouse import open_warehouse
from quarantine_platform.transforms.quarantine import TABLE_SCHEMA

TABLE = "quarantine_global"
LOADS_TABLE = "quarantine_loads"
_BATCH_ROWS = 2 * 122_880  # two DuckDB row groups

# No primary key on purpose: the asset check `quarantine_key_unique` is what guards (data_carga, id_cliente,
# canal), and an index over every load date's millions of rows would slow each day's insert.
# email and telefone (nearly one value per row) use zstd: DuckDB's default for them (dictionary + FSST) costs
# ~1.5 times the CPU of zstd to write, for ~25% less space (measured: 3.25M rows, 59 vs 79 MiB a day).
_DDL = f"""
create table if not exists {TABLE} (
    id_cliente bigint not null,
    canal varchar not null,
    email varchar using compression zstd,
    telefone varchar using compression zstd,
    assunto varchar,
    data_envio date not null,
    qtd_dias integer not null,
    saida_prevista date,
    data_carga date not null
);
create table if not exists {LOADS_TABLE} (
    data_carga date primary key,
    row_count bigint not null,
    loaded_at timestamp not null,
    run_id varchar not null
);
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def replace_load_dates(
    con: duckdb.DuckDBPyConnection, tables: Iterable[tuple[dt.date, pl.DataFrame]], run_id: str
) -> dict[dt.date, int]:
    """Replace the rows of each given load date, all in one transaction: a re-run replaces, never adds,
    and a failure part-way (a bad source, a crash) leaves every load date as it was."""
    ensure_tables(con)
    written: dict[dt.date, int] = {}
    # Row order within a load date means nothing (every reader sorts or aggregates). Keeping it makes DuckDB
    # append through one ordered collection that the checkpoint then rewrites: ~40% more CPU, and a file
    # that grows by the rewritten copy. Unordered, each thread compresses and writes its own row groups.
    keep_order = con.execute("select current_setting('preserve_insertion_order')").fetchall()[0][0]
    con.execute("set preserve_insertion_order = false")
    con.execute("begin transaction")
    try:
        for load_date, table in tables:
            rows = _in_batches(table.select(TABLE_SCHEMA.names()))  # noqa: F841 (read by name in SQL)
            con.execute(f"delete from {TABLE} where data_carga = ?", [load_date])
            con.execute(f"insert into {TABLE} select * from rows")
            con.execute(
                f"insert or replace into {LOADS_TABLE} values (?, ?, now()::timestamp, ?)",
                [load_date, table.height, run_id],
            )
            written[load_date] = table.height
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.execute(f"set preserve_insertion_order = {str(bool(keep_order)).lower()}")
    return written


def _in_batches(table: pl.DataFrame) -> pa.Table:
    """The rows as Arrow record batches of at most _BATCH_ROWS rows, without a copy: DuckDB shares the batches
    out among its threads (one large batch would be appended by one thread alone), and reads Polars' strings
    as Arrow string views (the default, large_string, copies every string and costs DuckDB more to read)."""
    arrow = table.to_arrow(compat_level=pl.CompatLevel.newest())
    return pa.Table.from_batches(arrow.to_batches(max_chunksize=_BATCH_ROWS), schema=arrow.schema)


def loaded_dates(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    if not _has_tables(con):
        return []
    return [row[0] for row in con.execute(f"select data_carga from {LOADS_TABLE} order by 1").fetchall()]


def latest_load_date(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    dates = loaded_dates(con)
    return dates[-1] if dates else None


def is_loaded(con: duckdb.DuckDBPyConnection, load_date: dt.date) -> bool:
    if not _has_tables(con):
        return False
    return bool(
        con.execute(f"select count(*) from {LOADS_TABLE} where data_carga = ?", [load_date]).fetchall()[0][0]
    )


def read_table(
    con: duckdb.DuckDBPyConnection, load_date: dt.date, channels: Sequence[str] | None = None
) -> pl.DataFrame:
    """The rows of a load date (optionally of some channels), by canal then id_cliente, in export order."""
    where, params = _where(load_date, channels)
    columns = ", ".join(TABLE_SCHEMA.names())
    frame = con.sql(f"select {columns} from {TABLE} where {where} order by canal, id_cliente", params=params)
    return frame.pl().cast(dict(TABLE_SCHEMA))  # type: ignore[arg-type]


def customer_rows(con: duckdb.DuckDBPyConnection, load_date: dt.date, id_cliente: int) -> pl.DataFrame:
    columns = ", ".join(TABLE_SCHEMA.names())
    frame = con.sql(
        f"select {columns} from {TABLE} where data_carga = ? and id_cliente = ? order by canal",
        params=[load_date, id_cliente],
    )
    return frame.pl().cast(dict(TABLE_SCHEMA))  # type: ignore[arg-type]


def blocked_ids(con: duckdb.DuckDBPyConnection, load_date: dt.date, channels: Sequence[str]) -> pl.DataFrame:
    """(id_cliente, canal) of the load date's rows in `channels`."""
    where, params = _where(load_date, channels)
    frame = con.sql(f"select id_cliente, canal from {TABLE} where {where}", params=params).pl()
    return frame.cast({"id_cliente": pl.Int64, "canal": pl.String})


# --- what the asset checks measure (each returns the offending rows, at most `limit`) --------------------


def duplicate_keys(
    con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date], limit: int = 5
) -> pl.DataFrame:
    return con.sql(
        f"select data_carga, id_cliente, canal, count(*) as copies from {TABLE} "
        "where data_carga in (select unnest(?)) group by all having count(*) > 1 order by all limit ?",
        params=[list(load_dates), limit],
    ).pl()


def count_duplicate_keys(con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date]) -> int:
    return int(
        con.execute(
            f"select count(*) from (select 1 from {TABLE} where data_carga in (select unnest(?)) "
            "group by data_carga, id_cliente, canal having count(*) > 1)",
            [list(load_dates)],
        ).fetchall()[0][0]
    )


def exits_before_load(
    con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date], dated_channels: Sequence[str]
) -> pl.DataFrame:
    """Rows of channels with a number of days whose saida_prevista is missing or before their data_carga."""
    return con.sql(
        f"select canal, count(*) as rows, min(id_cliente) as first_id_cliente from {TABLE} "
        "where data_carga in (select unnest(?)) and canal in (select unnest(?)) "
        "and (saida_prevista is null or saida_prevista < data_carga) group by canal order by canal",
        params=[list(load_dates), list(dated_channels)],
    ).pl()


def unknown_channels(
    con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date], channels: Sequence[str]
) -> pl.DataFrame:
    return con.sql(
        f"select canal, count(*) as rows from {TABLE} where data_carga in (select unnest(?)) "
        "and canal not in (select unnest(?)) group by canal order by canal",
        params=[list(load_dates), list(channels)],
    ).pl()


def rows_per_channel(con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date]) -> dict[str, int]:
    rows = con.execute(
        f"select canal, count(*) from {TABLE} where data_carga in (select unnest(?)) "
        "group by canal order by 1",
        [list(load_dates)],
    ).fetchall()
    return {canal: int(count) for canal, count in rows}


def _where(load_date: dt.date, channels: Sequence[str] | None) -> tuple[str, list]:
    if channels is None:
        return "data_carga = ?", [load_date]
    return "data_carga = ? and canal in (select unnest(?))", [load_date, list(channels)]


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_name in (?, ?)", [TABLE, LOADS_TABLE]
    ).fetchall()[0][0]
    return found == 2


# --- reading for `qp` --------------------------------------------------------------------------------------


def materialize_command(load_date: dt.date) -> str:
    return (
        "dagster asset materialize -m quarantine_platform.definitions --select quarantine_global "
        f"--partition {load_date.isoformat()}"
    )


@contextmanager
def open_load_date(
    warehouse_path: str, load_date: dt.date | None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dt.date]]:
    """A read-only connection and the load date to read: the one asked for, else the latest materialized.
    A load date never materialized is a UserError that says which command builds it."""
    today = dt.datetime.now(ZoneInfo(settings.get("QP_TIMEZONE"))).date()
    try:
        con = open_warehouse(warehouse_path, read_only=True)
    except FileNotFoundError:
        raise UserError(
            f"the warehouse {warehouse_path} does not exist yet: build the quarantine table first with "
            f"`{materialize_command(load_date or today)}`"
        ) from None
    try:
        if load_date is None:
            load_date = latest_load_date(con)
            if load_date is None:
                raise UserError(
                    "quarantine_global has no load date materialized yet: build one with "
                    f"`{materialize_command(today)}`"
                )
        elif not is_loaded(con, load_date):
            raise UserError(
                f"load date {load_date} of quarantine_global was never materialized: run "
                f"`{materialize_command(load_date)}`"
            )
        yield con, load_date
    finally:
        con.close()
