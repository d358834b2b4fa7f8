"""quarantine_global's storage: one Parquet file per load date beside the warehouse, a view over them in it.

Every load date is read back through the view exactly as written; replacing a date is idempotent and atomic
(a failure or a crash never shows half a date, and never loses the previous one); a warehouse of the former
design (quarantine_global a table) keeps every load date when it is converted.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.storage import quarantine_warehouse as store
from quarantine_platform.transforms.quarantine import TABLE_SCHEMA
from quarantine_platform_tests.quarantine.helpers import SEED_LOAD_DATE, seed_table

DAY_BEFORE = SEED_LOAD_DATE - dt.timedelta(days=1)
EMPTY_DAY = SEED_LOAD_DATE - dt.timedelta(days=2)


def day_of(table: pl.DataFrame, load_date: dt.date) -> pl.DataFrame:
    return table.with_columns(pl.lit(load_date).alias("data_carga"))


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    return str(tmp_path / "warehouse.duckdb")


def write(warehouse: str, *tables: tuple[dt.date, pl.DataFrame]) -> dict[dt.date, int]:
    with duckdb.connect(warehouse) as con:
        return store.replace_load_dates(con, list(tables), "test")


def everything(warehouse: str) -> pl.DataFrame:
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.sql(f"select * from {store.TABLE} order by data_carga, canal, id_cliente").pl()


def files(warehouse: str) -> list[str]:
    root = store.history_dir(warehouse)
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def in_order(*tables: pl.DataFrame) -> pl.DataFrame:
    return pl.concat(tables).sort("data_carga", "canal", "id_cliente")


def test_the_view_reads_every_load_date_with_the_tables_columns_and_types(warehouse):
    seed = seed_table()
    crm_only = day_of(seed.filter(pl.col("canal") == "CRM"), DAY_BEFORE)
    written = write(
        warehouse, (EMPTY_DAY, TABLE_SCHEMA.to_frame()), (DAY_BEFORE, crm_only), (SEED_LOAD_DATE, seed)
    )
    assert written == {EMPTY_DAY: 0, DAY_BEFORE: 1, SEED_LOAD_DATE: 6}
    stored = everything(warehouse)
    assert stored.schema == TABLE_SCHEMA
    assert_frame_equal(stored, in_order(crm_only, seed))
    with duckdb.connect(warehouse, read_only=True) as con:
        assert store.loaded_dates(con) == [EMPTY_DAY, DAY_BEFORE, SEED_LOAD_DATE]
        assert store.read_table(con, EMPTY_DAY).is_empty()
        assert_frame_equal(store.read_table(con, SEED_LOAD_DATE), seed)
        kind = con.execute(
            "select table_type from information_schema.tables where table_name = ?", [store.TABLE]
        ).fetchall()
    assert kind == [("VIEW",)]
    # One file per load date, beside the warehouse, partitioned by data_carga.
    assert [file.split("/")[0] for file in files(warehouse)] == [
        f"data_carga={day}" for day in (EMPTY_DAY, DAY_BEFORE, SEED_LOAD_DATE)
    ]


def test_before_any_load_date_the_view_is_empty_with_the_tables_columns(warehouse):
    with duckdb.connect(warehouse) as con:
        store.ensure_tables(con)
        empty = con.sql(f"select * from {store.TABLE}").pl()
    assert_frame_equal(empty, TABLE_SCHEMA.to_frame())


def test_materializing_a_load_date_again_replaces_its_file_and_nothing_else(warehouse):
    seed = seed_table()
    earlier = day_of(seed, DAY_BEFORE)
    write(warehouse, (DAY_BEFORE, earlier), (SEED_LOAD_DATE, seed))
    write(warehouse, (SEED_LOAD_DATE, seed))
    assert_frame_equal(everything(warehouse), in_order(earlier, seed))
    fewer = seed.filter(pl.col("canal").is_in(["CRM", "Fraude"]))
    write(warehouse, (SEED_LOAD_DATE, fewer))
    assert_frame_equal(everything(warehouse), in_order(earlier, fewer))
    # The superseded files are gone: one file per load date.
    assert len(files(warehouse)) == 2


def test_a_failure_while_computing_a_later_load_date_publishes_none_of_them(warehouse):
    seed = seed_table()
    write(warehouse, (SEED_LOAD_DATE, seed))
    before = files(warehouse)

    def tables() -> Iterator[tuple[dt.date, pl.DataFrame]]:
        yield DAY_BEFORE, day_of(seed, DAY_BEFORE)
        raise RuntimeError("a source went away")

    with pytest.raises(RuntimeError, match="went away"), duckdb.connect(warehouse) as con:
        store.replace_load_dates(con, tables(), "test")
    assert_frame_equal(everything(warehouse), seed)
    assert files(warehouse) == before  # the staged file of DAY_BEFORE was removed


def test_a_failure_inside_the_publishing_transaction_keeps_the_previous_rows(warehouse, monkeypatch):
    seed = seed_table()
    write(warehouse, (SEED_LOAD_DATE, seed))
    before = files(warehouse)

    def broken_view(con: duckdb.DuckDBPyConnection, root: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "_create_view", broken_view)
    with pytest.raises(OSError, match="disk full"), duckdb.connect(warehouse) as con:
        store.replace_load_dates(
            con, [(SEED_LOAD_DATE, seed.head(1)), (DAY_BEFORE, day_of(seed, DAY_BEFORE))], "x"
        )
    monkeypatch.undo()
    assert_frame_equal(everything(warehouse), seed)
    assert files(warehouse) == before
    with duckdb.connect(warehouse, read_only=True) as con:
        assert store.loaded_dates(con) == [SEED_LOAD_DATE]


def test_a_crashed_writers_file_is_never_read_and_is_swept_once_a_day_old(warehouse):
    seed = seed_table()
    write(warehouse, (SEED_LOAD_DATE, seed))
    folder = store.history_dir(warehouse) / f"data_carga={SEED_LOAD_DATE}"
    # What a writer killed between staging and publishing leaves: a whole file nothing references, and a
    # half-written one.
    leftover = folder / "crashed.parquet"
    seed.drop("data_carga").write_parquet(leftover)
    half = folder / "half.parquet"
    half.write_bytes(leftover.read_bytes()[:100])
    assert_frame_equal(everything(warehouse), seed)
    old = leftover.stat().st_mtime - store.ORPHAN_AGE_SECONDS - 60
    os.utime(leftover, (old, old))
    write(warehouse, (SEED_LOAD_DATE, seed))
    assert not leftover.exists()
    assert half.exists()  # too recent: it could be another writer's staged file
    assert_frame_equal(everything(warehouse), seed)


def test_rows_of_another_load_date_are_refused(warehouse):
    with pytest.raises(ValueError, match=f"load date {DAY_BEFORE}"):
        write(warehouse, (DAY_BEFORE, seed_table()))
    assert files(warehouse) == []


# The table as it was created before quarantine_global became a view over files.
FORMER_DDL = f"""
create table {store.TABLE} (
    id_cliente bigint not null, canal varchar not null, email varchar using compression zstd,
    telefone varchar using compression zstd, assunto varchar, data_envio date not null,
    qtd_dias integer not null, saida_prevista date, data_carga date not null
);
create table {store.LOADS_TABLE} (
    data_carga date primary key, row_count bigint not null, loaded_at timestamp not null,
    run_id varchar not null
);
"""


def test_a_warehouse_with_the_former_table_keeps_every_load_date_when_converted(warehouse):
    seed = seed_table()
    earlier = day_of(seed.filter(pl.col("canal") != "Fraude"), DAY_BEFORE)
    with duckdb.connect(warehouse) as con:
        con.execute(FORMER_DDL)
        con.register("rows", pl.concat([earlier, seed]).to_arrow())
        con.execute(f"insert into {store.TABLE} select * from rows")
        con.execute(
            f"insert into {store.LOADS_TABLE} values (?, 5, now()::timestamp, 'old'), "
            "(?, 6, now()::timestamp, 'old'), (?, 0, now()::timestamp, 'old')",
            [DAY_BEFORE, SEED_LOAD_DATE, EMPTY_DAY],
        )
    assert_frame_equal(everything(warehouse), in_order(earlier, seed))  # read before conversion
    later = day_of(seed.head(2), SEED_LOAD_DATE + dt.timedelta(days=1))
    write(warehouse, (SEED_LOAD_DATE + dt.timedelta(days=1), later))
    assert_frame_equal(everything(warehouse), in_order(earlier, seed, later))
    with duckdb.connect(warehouse, read_only=True) as con:
        assert store.loaded_dates(con) == [EMPTY_DAY, DAY_BEFORE, SEED_LOAD_DATE, later["data_carga"][0]]
        assert store.read_table(con, EMPTY_DAY).is_empty()
    assert len(files(warehouse)) == 4


def test_a_load_date_is_read_back_by_canal_then_id_cliente_whatever_the_written_order(warehouse):
    seed = seed_table()
    shuffled = pl.concat(
        [seed.with_columns(pl.col("id_cliente") + k, pl.lit("CRM").alias("canal")) for k in (7, 3, 9)]
        + [seed]
    ).reverse()
    write(warehouse, (SEED_LOAD_DATE, shuffled))
    with duckdb.connect(warehouse, read_only=True) as con:
        assert_frame_equal(store.read_table(con, SEED_LOAD_DATE), shuffled.sort("canal", "id_cliente"))
        assert_frame_equal(
            store.read_table(con, SEED_LOAD_DATE, ["Restritos", "CRM"]),
            shuffled.filter(pl.col("canal").is_in(["CRM", "Restritos"])).sort("canal", "id_cliente"),
        )
