"""The customer quarantine table: `quarantine_global`, its checks and its daily schedule.

Load dates are days of QP_TIMEZONE. The partitions end one day later than `local_daily_partitions`
(`end_offset=1`): the 06:00 run computes the table *of that same day*, the one the day's campaigns are checked
against; without the offset today's key would only exist at midnight, after the day is over.
"""

import datetime as dt
import warnings
from collections.abc import Sequence

import dagster as dg
import duckdb
import polars as pl

from quarantine_platform import settings
from quarantine_platform.partitions import DAY_FORMAT
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource
from quarantine_platform.storage import quarantine_warehouse as store
from quarantine_platform.storage.quarantine_sources import read_source
from quarantine_platform.transforms.quarantine import SourceError, load_sources, quarantine_on
from quarantine_platform.transforms.quarantine_rules import ChannelRule, RulesError, load_rules

GROUP = "quarantine"
QUARANTINE = dg.AssetKey("quarantine_global")


def _rules_for_graph() -> list[ChannelRule]:
    """The rules as the code location loads: they draw the graph's edges. A bad rules file must not take the
    other domains down with it, so it only warns here; the run reads the file again and fails on it."""
    try:
        return load_rules(settings.get("QP_QUARANTINE_RULES"))
    except RulesError as exc:
        warnings.warn(f"quarantine_global is drawn without its sources: {exc}", stacklevel=1)
        return []


SOURCE_KEYS = [dg.AssetKey(rule.source) for rule in _rules_for_graph()]

load_date_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.get("QP_HISTORY_START"),
    timezone=settings.get("QP_TIMEZONE"),
    fmt=DAY_FORMAT,
    end_offset=1,
)

# The checks run inside the asset's step, over the load dates that step wrote (a separate check step would
# scan every load date ever kept).
KEY_UNIQUE = dg.AssetCheckSpec(
    "quarantine_key_unique", asset=QUARANTINE, description="One row per (data_carga, id_cliente, canal)."
)
EXIT_NOT_BEFORE_LOAD = dg.AssetCheckSpec(
    "quarantine_exit_not_before_load",
    asset=QUARANTINE,
    description="saida_prevista is set and >= data_carga on every row of a channel with a number of days "
    "(every channel but fraud's).",
)
CHANNELS_IN_RULES = dg.AssetCheckSpec(
    "quarantine_channels_in_rules",
    asset=QUARANTINE,
    description="Every canal is a channel of the rules file (QP_QUARANTINE_RULES).",
)


def current_rules() -> list[ChannelRule]:
    """The rules file as it is now (a run never uses a stale copy)."""
    try:
        return load_rules(settings.get("QP_QUARANTINE_RULES"))
    except RulesError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def source_frames(lake_root: str, rules: Sequence[ChannelRule]) -> dict[str, pl.LazyFrame]:
    frames: dict[str, pl.LazyFrame] = {}
    for rule in rules:
        try:
            frames[rule.source] = read_source(lake_root, rule.source)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise SourceError(rule.source, str(exc)) from None
    return frames


@dg.asset(
    key=QUARANTINE,
    group_name=GROUP,
    deps=SOURCE_KEYS,
    partitions_def=load_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    check_specs=[KEY_UNIQUE, EXIT_NOT_BEFORE_LOAD, CHANNELS_IN_RULES],
    description="Who must not be contacted yet on the load date (data_carga), per channel: one row per "
    "(id_cliente, canal) with the latest send, days per channel from QP_QUARANTINE_RULES.",
)
def quarantine_global(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource):
    rules = current_rules()
    load_dates = sorted(dt.datetime.strptime(key, DAY_FORMAT).date() for key in context.partition_keys)
    try:
        # Every source is read before the warehouse is opened: a missing one writes nothing at all.
        loaded = load_sources(source_frames(lake.root, rules), rules, load_dates[0], load_dates[-1])
    except SourceError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    tables = ((load_date, quarantine_on(loaded, load_date)) for load_date in load_dates)
    # Each load date's file is written before the warehouse is opened: the warehouse is held only to publish
    # them in one transaction and to check what was published.
    with store.staged_load_dates(warehouse.path, tables) as staging, warehouse.connect() as con:
        written = store.publish_load_dates(con, staging, context.run_id)
        per_channel = store.rows_per_channel(con, load_dates)
        checks = [
            key_unique(con, load_dates),
            exit_not_before_load(con, load_dates, rules),
            channels_in_rules(con, load_dates, rules),
        ]
    yield dg.MaterializeResult(
        metadata={
            "load_dates": f"{load_dates[0]} .. {load_dates[-1]}",
            "load_date_count": len(load_dates),
            "rows": sum(written.values()),
            "rows_per_channel": dg.MetadataValue.json(per_channel),
            "rows_per_load_date": dg.MetadataValue.json({str(d): n for d, n in list(written.items())[-31:]}),
            "rules": dg.MetadataValue.json(
                {rule.canal: {"source": rule.source, "days": rule.days} for rule in rules}
            ),
        }
    )
    yield from checks


def key_unique(con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date]) -> dg.AssetCheckResult:
    duplicates = store.count_duplicate_keys(con, load_dates)
    sample = store.duplicate_keys(con, load_dates) if duplicates else None
    return dg.AssetCheckResult(
        check_name=KEY_UNIQUE.name,
        passed=duplicates == 0,
        metadata={
            "duplicate_keys": duplicates,
            "first_duplicates": str(sample.to_dicts()) if sample is not None else "",
        },
    )


def exit_not_before_load(
    con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date], rules: Sequence[ChannelRule]
) -> dg.AssetCheckResult:
    dated = [rule.canal for rule in rules if rule.days is not None]
    wrong = store.exits_before_load(con, load_dates, dated)
    return dg.AssetCheckResult(
        check_name=EXIT_NOT_BEFORE_LOAD.name,
        passed=wrong.is_empty(),
        metadata={"wrong_rows": int(wrong["rows"].sum()), "wrong_by_channel": str(wrong.to_dicts())},
    )


def channels_in_rules(
    con: duckdb.DuckDBPyConnection, load_dates: Sequence[dt.date], rules: Sequence[ChannelRule]
) -> dg.AssetCheckResult:
    unknown = store.unknown_channels(con, load_dates, [rule.canal for rule in rules])
    return dg.AssetCheckResult(
        check_name=CHANNELS_IN_RULES.name,
        passed=unknown.is_empty(),
        metadata={
            "unknown_channels": ", ".join(unknown["canal"].to_list()),
            "rows_outside_rules": int(unknown["rows"].sum()),
        },
    )


# --- the daily run ---------------------------------------------------------------------------------------

# The sources are unpartitioned (read as of the run): the same run refreshes them, then builds the day.
quarantine_daily_job = dg.define_asset_job(
    "quarantine_daily",
    selection=dg.AssetSelection.assets(QUARANTINE).upstream(depth=1).materializable(),
    partitions_def=load_date_partitions,
    description="Refresh the six quarantine sources, then build quarantine_global for the load date.",
)


@dg.schedule(
    job=quarantine_daily_job,
    cron_schedule="0 6 * * *",
    execution_timezone=settings.get("QP_TIMEZONE"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 (QP_TIMEZONE): the sources, then quarantine_global for that day.",
)
def quarantine_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    load_date = load_date_of(context.scheduled_execution_time or dt.datetime.now(dt.UTC))
    key = load_date.strftime(DAY_FORMAT)
    # run_key: a tick evaluated twice (daemon restart) never launches the day twice.
    return dg.RunRequest(run_key=f"quarantine_global:{key}", partition_key=key)


def load_date_of(instant: dt.datetime) -> dt.date:
    """The load date a run at `instant` builds: that day in QP_TIMEZONE."""
    from zoneinfo import ZoneInfo

    return instant.astimezone(ZoneInfo(settings.get("QP_TIMEZONE"))).date()


quarantine_schedules = [quarantine_daily_schedule]
