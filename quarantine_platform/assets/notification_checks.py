"""Asset checks guarding the notification tables."""

import datetime as dt

import dagster as dg
import polars as pl

from quarantine_platform import settings
from quarantine_platform.assets.keys import COUNTS, EVENTS
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.warehouse import WarehouseResource
from quarantine_platform.storage.bronze_window import bronze_files, scan_window
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.storage.notification_warehouse import COUNTS_TABLE, PROCESSED_TABLE, ensure_tables
from quarantine_platform.transforms.notification_checks import (
    distinct_whatsapp_per_minute,
    duplicate_offsets,
    overlapping_files,
)
from quarantine_platform.transforms.notifications import EVENTS_SCHEMA, local_day_start

# Every check here runs inside its asset's own step (check_specs). Bronze's: as a separate step on every
# ingestion run it would have had to read all of bronze; inside the step it knows the files the run wrote.
BRONZE_OFFSETS_UNIQUE = dg.AssetCheckSpec(
    "bronze_offsets_unique",
    asset=EVENTS,
    description="No (topic, partition, offset) is stored twice in bronze: the files the run wrote hold each "
    "offset once, and no two files of a partition hold overlapping offsets (from the files' statistics).",
)


def bronze_offsets_unique(store: NotificationLake, topic: str, run_files: list[str]) -> dg.AssetCheckResult:
    overlapping = overlapping_files(store.offset_ranges())
    new_files = [str(store.events_dir(topic) / name) for name in run_files]
    repeated = (
        duplicate_offsets(pl.scan_parquet(new_files, schema=EVENTS_SCHEMA, extra_columns="ignore"))
        if new_files
        else 0
    )
    return dg.AssetCheckResult(
        check_name=BRONZE_OFFSETS_UNIQUE.name,
        passed=overlapping.is_empty() and repeated == 0,
        metadata={
            "files_written_checked": len(new_files),
            "duplicate_offsets_in_files_written": repeated,
            "overlapping_files": overlapping.height,
            "first_overlapping": str(overlapping.head(5).to_dicts()) if overlapping.height else "",
        },
    )


# The counts' checks run inside the counts asset's own step (check_specs): as separate steps on a minute-
# partitioned asset, Dagster enumerates all 86,400 partition keys per run, about 13 s here.
COUNTS_KEY_UNIQUE = dg.AssetCheckSpec(
    "counts_key_unique", asset=COUNTS, description="One row per (minute, customer_id, channel)."
)
COUNTS_MATCH_BRONZE = dg.AssetCheckSpec(
    "counts_match_bronze",
    asset=COUNTS,
    description="The WhatsApp counts of the minutes of the latest counting run add up to bronze's distinct "
    "WhatsApp messages of each minute.",
)


def counts_key_unique(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        ensure_tables(con)
        dupes = con.execute(
            f"select count(*) from (select 1 from {COUNTS_TABLE} "
            "group by minute, customer_id, channel having count(*) > 1)"
        ).fetchall()[0][0]
    return dg.AssetCheckResult(
        check_name=COUNTS_KEY_UNIQUE.name, passed=dupes == 0, metadata={"duplicate_keys": int(dupes)}
    )


def counts_match_bronze(lake: LakeResource, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        ensure_tables(con)
        window = con.execute(
            f"select min(minute), max(minute) from {PROCESSED_TABLE} "
            f"where run_id = (select run_id from {PROCESSED_TABLE} order by counted_at desc limit 1)"
        ).fetchall()[0]
        if window[0] is None:
            return dg.AssetCheckResult(
                check_name=COUNTS_MATCH_BRONZE.name, passed=True, metadata={"minutes_checked": 0}
            )
        start = window[0].replace(tzinfo=dt.UTC)
        end = window[1].replace(tzinfo=dt.UTC) + dt.timedelta(minutes=1)
        stored = con.sql(
            f"select minute, sum(notifications)::bigint as stored from {COUNTS_TABLE} "
            "where minute >= ? and minute < ? and channel = 'whatsapp' group by minute",
            params=[window[0], end.replace(tzinfo=None)],
        ).pl()
    timezone = settings.get("QP_TIMEZONE")
    store = lake.notifications()
    # The files holding events of the dedup day up to the window's end, as the counts read them.
    events = scan_window(bronze_files(store, None), local_day_start(start, timezone), end)
    expected = distinct_whatsapp_per_minute(events, start, end, timezone)
    both = stored.join(expected, on="minute", how="full", coalesce=True).fill_null(0)
    wrong = both.filter(pl.col("stored") != pl.col("expected"))
    return dg.AssetCheckResult(
        check_name=COUNTS_MATCH_BRONZE.name,
        passed=wrong.is_empty(),
        metadata={
            "minutes_checked": int((end - start).total_seconds() // 60),
            "minutes_wrong": wrong.height,
            "first_wrong": str(wrong.sort("minute").head(5).to_dicts()) if wrong.height else "",
        },
    )
