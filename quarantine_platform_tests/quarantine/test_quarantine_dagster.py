"""quarantine_global in Dagster: materialized per load date into the warehouse, its checks, its schedule."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.assets import quarantine as qa
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.warehouse import WarehouseResource
from quarantine_platform.storage import quarantine_warehouse as store
from quarantine_platform.storage.quarantine_sources import source_path, write_source
from quarantine_platform_tests.quarantine.helpers import (
    SEED_LOAD_DATE,
    SEED_SENDS,
    SOURCE_OF,
    install_rules,
    seed_table,
    send,
    sends,
    stage_sources,
)

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@pytest.fixture
def env(platform_env):
    install_rules(platform_env / "data")
    return platform_env


def resources() -> dict:
    return {
        "lake": LakeResource(root=os.environ["QP_LAKE_DIR"]),
        "warehouse": WarehouseResource(path=os.environ["QP_WAREHOUSE"]),
    }


def materialize(partition: str | None = None, start: str | None = None, end: str | None = None, **kw):
    tags = {RANGE_START: start, RANGE_END: end} if start else None
    return dg.materialize(
        [qa.quarantine_global],
        resources=resources(),
        partition_key=partition,
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
        **kw,
    )


def stored(load_date: dt.date | None = None) -> pl.DataFrame:
    with duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True) as con:
        if load_date is not None:
            return store.read_table(con, load_date)
        return con.sql(f"select * from {store.TABLE} order by data_carga, canal, id_cliente").pl()


def rewrite_stored(load_date: dt.date, change: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    """Rewrite the stored file of a load date in place, as a faulty writer or a hand edit would."""
    with duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True) as con:
        query = f"select file from {store.LOADS_TABLE} where data_carga = ?"
        file = con.execute(query, [load_date]).fetchall()[0][0]
    path = store.history_dir(os.environ["QP_WAREHOUSE"]) / file
    change(pl.read_parquet(path)).write_parquet(path)


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_the_seed_example_is_materialized_and_its_checks_pass(env):
    stage_sources(os.environ["QP_LAKE_DIR"], *SEED_SENDS)
    result = materialize("2024-05-28")
    assert_frame_equal(stored(SEED_LOAD_DATE), seed_table())
    assert checks(result) == {
        "quarantine_key_unique": True,
        "quarantine_exit_not_before_load": True,
        "quarantine_channels_in_rules": True,
    }
    metadata = result.asset_materializations_for_node("quarantine_global")[0].metadata
    assert metadata["rows"].value == 6


def test_a_backfill_is_one_run_equal_to_each_days_own_run(env, tmp_path, monkeypatch):
    rows = [
        *SEED_SENDS,
        send(11, "Marketing", dt.date(2024, 5, 20)),
        send(11, "Marketing", dt.date(2024, 5, 27)),
        send(12, "Fraude", dt.date(2024, 5, 1), data_exclus=dt.date(2024, 5, 27)),
        send(13, "CRM", dt.date(2024, 5, 25), data_base=dt.date(2024, 5, 26)),
    ]
    stage_sources(os.environ["QP_LAKE_DIR"], *rows)
    for day in ("2024-05-25", "2024-05-26", "2024-05-27", "2024-05-28"):
        materialize(day)
    day_by_day = stored()
    monkeypatch.setenv("QP_WAREHOUSE", str(tmp_path / "backfill.duckdb"))
    result = materialize(start="2024-05-25", end="2024-05-28")
    assert result.success
    backfill = stored()
    assert_frame_equal(backfill, day_by_day)
    assert backfill["data_carga"].n_unique() == 4
    # 12 is in fraud until the day its row was removed, 11's marketing send of 05-27 wins from that day.
    by_day = backfill.group_by("data_carga").agg(pl.col("id_cliente")).sort("data_carga")
    assert [12 in ids for ids in by_day["id_cliente"]] == [True, True, False, False]


def test_materializing_a_load_date_again_replaces_its_rows(env):
    stage_sources(os.environ["QP_LAKE_DIR"], *SEED_SENDS)
    materialize("2024-05-28")
    materialize("2024-05-28")
    assert stored().height == 6
    stage_sources(os.environ["QP_LAKE_DIR"], *SEED_SENDS[:2])
    materialize("2024-05-28")
    assert stored()["id_cliente"].to_list() == [1234567890, 2345678901]


def test_a_missing_source_fails_the_run_naming_it_and_writes_nothing(env):
    lake = os.environ["QP_LAKE_DIR"]
    stage_sources(lake, *SEED_SENDS)
    materialize("2024-05-27")
    before = stored()
    source_path(lake, "offer_sends").unlink()
    result = materialize(start="2024-05-28", end="2024-05-29", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "offer_sends" in failure and "materialize offer_sends first" in failure
    assert_frame_equal(stored(), before)
    with duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True) as con:
        assert store.loaded_dates(con) == [dt.date(2024, 5, 27)]


def test_an_unreadable_source_fails_the_run_naming_it(env):
    lake = os.environ["QP_LAKE_DIR"]
    stage_sources(lake, *SEED_SENDS)
    source_path(lake, "crm_sends").write_bytes(b"not parquet at all")
    result = materialize("2024-05-28", raise_on_error=False)
    assert not result.success
    assert (
        "quarantine source crm_sends" in result.get_step_failure_events()[0].step_failure_data.error.message
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("channels: [{canal: CRM, source: crm_sends, days: -3}]", "'days' must be a whole number"),
        ("channels: [{canal: CRM, source: crm_sends, days: 30}", "not valid YAML"),
        ("canais: []", "expected a non-empty list under 'channels'"),
    ],
)
def test_a_bad_rules_file_fails_the_run_with_its_reason_and_keeps_previous_days(env, text, reason):
    stage_sources(os.environ["QP_LAKE_DIR"], *SEED_SENDS)
    materialize("2024-05-27")
    install_rules(env / "data", text)
    result = materialize("2024-05-28", raise_on_error=False)
    assert not result.success
    assert reason in result.get_step_failure_events()[0].step_failure_data.error.message
    assert stored()["data_carga"].unique().to_list() == [dt.date(2024, 5, 27)]


def test_a_channel_outside_the_rules_fails_its_check(env):
    """A source snapshot written under an old channel name (the rules renamed it since)."""
    lake = os.environ["QP_LAKE_DIR"]
    stage_sources(lake, *SEED_SENDS)
    write_source(lake, "marketing_sends", sends(send(9, "Email", dt.date(2024, 5, 27))))
    result = materialize("2024-05-28")
    assert checks(result)["quarantine_channels_in_rules"] is False
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "quarantine_channels_in_rules"
    )
    assert evaluation.metadata["unknown_channels"].value == "Email"


def test_duplicate_keys_and_early_exits_fail_their_checks(env):
    stage_sources(os.environ["QP_LAKE_DIR"], *SEED_SENDS)
    materialize("2024-05-28")
    # The stored day rewritten with a repeated CRM row and an Ofertas exit before the load date.
    rewrite_stored(
        SEED_LOAD_DATE,
        lambda rows: pl.concat([rows, rows.filter(pl.col("canal") == "CRM")]).with_columns(
            pl.when(pl.col("canal") == "Ofertas")
            .then(pl.lit(SEED_LOAD_DATE - dt.timedelta(days=1)))
            .otherwise(pl.col("saida_prevista"))
            .alias("saida_prevista")
        ),
    )
    with duckdb.connect(os.environ["QP_WAREHOUSE"]) as con:
        day = [SEED_LOAD_DATE]
        unique = qa.key_unique(con, day)
        exits = qa.exit_not_before_load(con, day, qa.current_rules())
    assert (unique.passed, unique.metadata["duplicate_keys"].value) == (False, 1)
    assert (exits.passed, exits.metadata["wrong_rows"].value) == (False, 1)
    assert "Ofertas" in exits.metadata["wrong_by_channel"].value


def test_the_schedule_asks_at_six_for_the_same_days_load_date(monkeypatch):
    six = dt.datetime(2024, 5, 28, 6, 0, tzinfo=dt.UTC)
    request = qa.quarantine_daily_schedule(dg.build_schedule_context(scheduled_execution_time=six))
    assert request.partition_key == "2024-05-28"
    assert request.run_key == "quarantine_global:2024-05-28"
    # The key exists at that time (the partitions end one day later than plain daily ones).
    assert qa.load_date_partitions.get_partition_keys(current_time=six)[-1] == "2024-05-28"
    # The load date is the day in QP_TIMEZONE: 01:00 UTC is still the day before in Sao Paulo.
    monkeypatch.setenv("QP_TIMEZONE", "America/Sao_Paulo")
    assert qa.load_date_of(dt.datetime(2024, 5, 28, 1, 0, tzinfo=dt.UTC)) == dt.date(2024, 5, 27)
    assert qa.quarantine_daily_schedule.cron_schedule == "0 6 * * *"


def test_the_daily_job_refreshes_the_sources_then_builds_the_day(env):
    """With the six source assets registered, the scheduled job runs them and quarantine_global in one run."""
    lake = os.environ["QP_LAKE_DIR"]
    ran: list[str] = []

    def source_asset(canal: str, source: str) -> dg.AssetsDefinition:
        @dg.asset(name=source, group_name="quarantine")
        def _source() -> None:
            ran.append(source)
            write_source(lake, source, sends(*[r for r in SEED_SENDS if r["canal"] == canal]))

        return _source

    defs = dg.Definitions(
        assets=[qa.quarantine_global, *[source_asset(c, s) for c, s in SOURCE_OF.items()]],
        schedules=qa.quarantine_schedules,
        resources=resources(),
    )
    job = defs.resolve_job_def("quarantine_daily")
    result = job.execute_in_process(partition_key="2024-05-28", instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert sorted(ran) == sorted(SOURCE_OF.values())
    assert_frame_equal(stored(SEED_LOAD_DATE), seed_table())


def test_the_definitions_draw_the_six_sources_upstream_of_the_table():
    from quarantine_platform.definitions import defs

    spec = defs.resolve_assets_def("quarantine_global").specs_by_key[qa.QUARANTINE]
    assert {dep.asset_key.to_user_string() for dep in spec.deps} == set(SOURCE_OF.values())
    assert "quarantine_daily_schedule" in {s.name for s in defs.schedules}


def test_the_command_qp_suggests_builds_a_range_of_load_dates(env):
    """`dagster asset materialize ... --partition-range`: the command `qp` names when a date is missing."""
    stage_sources(os.environ["QP_LAKE_DIR"], *SEED_SENDS)
    dagster = str(Path(sys.executable).with_name("dagster"))
    run = subprocess.run(
        [dagster, "asset", "materialize", "-m", "quarantine_platform.definitions",
         "--select", "quarantine_global", "--partition-range", "2024-05-27...2024-05-28"],
        capture_output=True, text=True, env={**os.environ}, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    with duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True) as con:
        assert store.loaded_dates(con) == [dt.date(2024, 5, 27), dt.date(2024, 5, 28)]
    assert_frame_equal(stored(SEED_LOAD_DATE), seed_table())
