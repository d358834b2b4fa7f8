"""The quarantine table in the warehouse: every load date's rows are kept (history is queryable).

Storage design (changed for issue 4's speed goal): each load date's rows are one Parquet file written by
Polars beside the warehouse, `<warehouse dir>/<stem>.quarantine_global/data_carga=D/<token>.parquet`,
and `quarantine_global` in the DuckDB warehouse is a VIEW over the current file of every load date
(`read_parquet` of an explicit file list, hive partitioning gives `data_carga`). Every reader still asks the
warehouse for `quarantine_global` in SQL and gets the same columns, types and rows as from the former table.
Why: appending 3.25M rows a day into a compressed DuckDB table cost ~3-3.8 CPU s (more than computing the
table); Polars writes the same rows as an lz4 Parquet file for ~1 CPU s, about the same size on disk (77 vs
80 MiB), and outside the warehouse lock.

How a load date is replaced, atomically and idempotently:
1. stage: the new file is written under a fresh name that nothing references (no warehouse lock held);
2. publish, in one DuckDB transaction: `quarantine_loads` records the date's file and the view is recreated
   over the recorded files. A crash or error before the commit leaves the old files referenced and the
   staged ones unreferenced (removed at once on an error; after a crash, swept once a day old): no reader
   ever sees half a date, and a multi-date run is all or nothing as before;
3. after the commit, the superseded files are deleted while the writer still holds the warehouse, so no
   reader (DuckDB lets no other process open the file meanwhile) can be reading them.
The view's file paths are absolute: a warehouse moved to another directory reads again after the next
materialization, which rewrites the view. A warehouse made before this design (quarantine_global a table) is
converted by its first writer: each load date's rows copied to its file, then the table dropped for the view.

`quarantine_loads` records each load date materialized (and its file), so a load date with no one in
quarantine is still known to have been computed, and `qp` can tell "nobody in quarantine" from "never loaded".
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.resources.warehouse import open_warehouse
from quarantine_platform.storage.durable import fsync_path
from quarantine_platform.transforms.quarantine import TABLE_SCHEMA

TABLE = "quarantine_global"
LOADS_TABLE = "quarantine_loads"
HISTORY_SUFFIX = ".quarantine_global"
PARTITION = "data_carga"
# lz4: ~0.8 CPU s for a 3.25M-row day (zstd ~2.4 for 35% less space; uncompressed as slow, twice the size).
COMPRESSION = "lz4"
# A staged file no load date references is a crashed writer's leftover once it is this old.
ORPHAN_AGE_SECONDS = 24 * 3600

_FILE_COLUMNS = [name for name in TABLE_SCHEMA.names() if name != PARTITION]
_SQL_TYPES = {pl.Int64: "bigint", pl.Int32: "integer", pl.String: "varchar", pl.Date: "date"}

# No primary key on (data_carga, id_cliente, canal) on purpose: the asset check `quarantine_key_unique` is
# what guards it. `file`: the load date's Parquet file, relative to the history directory.
_LOADS_DDL = f"""
create table if not exists {LOADS_TABLE} (
    data_carga date primary key,
    row_count bigint not null,
    loaded_at timestamp not null,
    run_id varchar not null,
    file varchar
);
alter table {LOADS_TABLE} add column if not exists file varchar;
"""


def history_dir(warehouse_path: str | Path) -> Path:
    """Where the load dates' files of the warehouse at `warehouse_path` live (absolute)."""
    path = Path(warehouse_path).resolve()
    return path.with_name(path.stem + HISTORY_SUFFIX)


def warehouse_path(con: duckdb.DuckDBPyConnection) -> str:
    path = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchall()[0][0]
    if not path:
        raise ValueError(f"{TABLE} keeps its load dates' files beside a warehouse file, not in memory")
    return str(path)


@dataclass(frozen=True)
class StagedLoad:
    load_date: dt.date
    file: str  # relative to the history directory
    rows: int


@dataclass
class Staging:
    """Load dates written as files that nothing references yet (see the module's docstring)."""

    root: Path
    loads: list[StagedLoad] = field(default_factory=list)
    published: bool = False

    def discard(self) -> None:
        for load in self.loads:
            (self.root / load.file).unlink(missing_ok=True)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The loads table and the view (converting a former quarantine_global table); needs a writable con."""
    con.execute(_LOADS_DDL)
    kind = _table_type(con)
    if kind == "BASE TABLE":
        _convert_table(con, history_dir(warehouse_path(con)))
    elif kind is None:
        _create_view(con, history_dir(warehouse_path(con)))


@contextmanager
def staged_load_dates(
    warehouse: str | Path, tables: Iterable[tuple[dt.date, pl.DataFrame]]
) -> Iterator[Staging]:
    """Write each load date's rows to a new file; on leaving, the files are removed unless published."""
    staging = Staging(history_dir(warehouse))
    try:
        for load_date, table in tables:
            staging.loads.append(_write_load_date(staging.root, load_date, table))
        yield staging
    finally:
        if not staging.published:
            staging.discard()


def publish_load_dates(con: duckdb.DuckDBPyConnection, staging: Staging, run_id: str) -> dict[dt.date, int]:
    """Make the staged load dates the ones `quarantine_global` shows, all in one transaction: a re-run
    replaces, never adds, and a failure part-way leaves every load date as it was."""
    root = history_dir(warehouse_path(con))
    if staging.root != root:
        raise ValueError(f"load dates staged under {staging.root}, not beside this warehouse ({root})")
    ensure_tables(con)
    dates = [load.load_date for load in staging.loads]
    con.execute("begin transaction")
    try:
        superseded = [
            row[0]
            for row in con.execute(
                f"select file from {LOADS_TABLE} where data_carga in (select unnest(?)) and file is not null",
                [dates],
            ).fetchall()
        ]
        for load in staging.loads:
            con.execute(
                f"insert or replace into {LOADS_TABLE} (data_carga, row_count, loaded_at, run_id, file) "
                "values (?, ?, now()::timestamp, ?, ?)",
                [load.load_date, load.rows, run_id, load.file],
            )
        _create_view(con, root)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    staging.published = True
    for file in superseded:
        (root / file).unlink(missing_ok=True)
    _sweep_orphans(con, root, dates)
    return {load.load_date: load.rows for load in staging.loads}


def replace_load_dates(
    con: duckdb.DuckDBPyConnection, tables: Iterable[tuple[dt.date, pl.DataFrame]], run_id: str
) -> dict[dt.date, int]:
    """Stage and publish in one call (the asset stages before it opens the warehouse, to hold it less)."""
    with staged_load_dates(warehouse_path(con), tables) as staging:
        return publish_load_dates(con, staging, run_id)


def _write_load_date(root: Path, load_date: dt.date, table: pl.DataFrame) -> StagedLoad:
    table = table.select(TABLE_SCHEMA.names()).cast(dict(TABLE_SCHEMA))  # type: ignore[arg-type]
    carga = table.get_column(PARTITION)
    if carga.null_count() or (table.height and (carga.min() != load_date or carga.max() != load_date)):
        raise ValueError(f"rows given for load date {load_date} have another data_carga")
    file = f"{PARTITION}={load_date.isoformat()}/{uuid.uuid4().hex}.parquet"
    (root / file).parent.mkdir(parents=True, exist_ok=True)
    # data_carga is in the path (hive partitioning), not in the file. No column statistics: they cost ~20% of
    # the write and no reader gains from them (ids are unordered; DuckDB's reads measured as fast without).
    table.select(_FILE_COLUMNS).write_parquet(root / file, compression=COMPRESSION, statistics=False)
    # On disk before the commit that publishes it (DuckDB syncs its own log): a power cut never leaves the
    # view naming a file that did not reach the disk.
    fsync_path(root / file)
    fsync_path((root / file).parent)
    return StagedLoad(load_date, file, table.height)


def _create_view(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    files = [
        str(root / row[0])
        for row in con.execute(
            f"select file from {LOADS_TABLE} where file is not null order by data_carga"
        ).fetchall()
    ]
    columns = ", ".join(TABLE_SCHEMA.names())
    if files:
        listed = ", ".join(_quoted(file) for file in files)
        source = (
            f"read_parquet([{listed}], hive_partitioning = true, "
            f"hive_types = {{'{PARTITION}': date}}, hive_types_autocast = false)"
        )
        query = f"select {columns} from {source}"
    else:  # read_parquet needs a file: no load date yet is an empty relation of the same columns
        typed = ", ".join(
            f"cast(null as {_SQL_TYPES[kind]}) as {name}" for name, kind in TABLE_SCHEMA.items()
        )
        query = f"select {typed} where false"
    con.execute(f"create or replace view {TABLE} as {query}")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _convert_table(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """A warehouse of the former design: each load date's rows to its file, then the table becomes the view
    (in one transaction; a crash before its commit leaves the table as it was)."""
    dates = [
        row[0]
        for row in con.execute(
            f"select data_carga from {LOADS_TABLE} union select distinct data_carga from {TABLE} order by 1"
        ).fetchall()
    ]
    staging = Staging(root)
    try:
        for load_date in dates:
            rows = con.sql(f"select * from {TABLE} where data_carga = ?", params=[load_date]).pl()
            staging.loads.append(_write_load_date(root, load_date, rows))
        con.execute("begin transaction")
        try:
            for load in staging.loads:
                con.execute(
                    f"insert into {LOADS_TABLE} (data_carga, row_count, loaded_at, run_id, file) "
                    "values (?, ?, now()::timestamp, 'converted', ?) on conflict (data_carga) do update set "
                    "file = excluded.file",
                    [load.load_date, load.rows, load.file],
                )
            con.execute(f"drop table {TABLE}")
            _create_view(con, root)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        staging.published = True
    finally:
        if not staging.published:
            staging.discard()


def _sweep_orphans(con: duckdb.DuckDBPyConnection, root: Path, dates: Sequence[dt.date]) -> None:
    """Files of these load dates that nothing references and are a day old: a crashed writer's."""
    live = {
        row[0]
        for row in con.execute(
            f"select file from {LOADS_TABLE} where data_carga in (select unnest(?)) and file is not null",
            [list(dates)],
        ).fetchall()
    }
    cutoff = time.time() - ORPHAN_AGE_SECONDS
    for load_date in dates:
        folder = root / f"{PARTITION}={load_date.isoformat()}"
        for path in folder.glob("*.parquet"):
            if path.relative_to(root).as_posix() not in live and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)


def _table_type(con: duckdb.DuckDBPyConnection) -> str | None:
    found = con.execute(
        "select table_type from information_schema.tables where table_name = ? and table_schema = 'main'",
        [TABLE],
    ).fetchall()
    return found[0][0] if found else None


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
    frame = con.sql(f"select {columns} from {TABLE} where {where}", params=params).pl()
    # Sorted here, each channel on its integer id alone: DuckDB's `order by canal, id_cliente` over Parquet
    # rows (and Polars' two-key sort) cost 2-5 times more CPU (3.25M rows: ~6 CPU s against ~2.5).
    parts = sorted(frame.partition_by("canal", as_dict=True).items(), key=lambda part: part[0][0])
    ordered = pl.concat([part.sort("id_cliente") for _, part in parts]) if parts else frame
    return ordered.cast(dict(TABLE_SCHEMA))  # type: ignore[arg-type]


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
