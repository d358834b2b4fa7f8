"""The notification stream: Kafka -> bronze (+ dead letters) -> minute counts in the warehouse."""

import datetime as dt

import dagster as dg

from quarantine_platform import settings
from quarantine_platform.assets.keys import COUNTS, DEAD_LETTERS, EVENTS
from quarantine_platform.assets.notification_checks import (
    BRONZE_OFFSETS_UNIQUE,
    COUNTS_KEY_UNIQUE,
    COUNTS_MATCH_BRONZE,
    bronze_offsets_unique,
    counts_key_unique,
    counts_match_bronze,
)
from quarantine_platform.kafka.ingest import KafkaUnavailable, ingest, worker_count
from quarantine_platform.partitions import minute_partitions
from quarantine_platform.resources.kafka import KafkaResource
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource
from quarantine_platform.storage.bronze_window import bronze_files, scan_window
from quarantine_platform.storage.notification_warehouse import replace_minutes
from quarantine_platform.transforms.notifications import local_day_start, minute_counts

GROUP = "notifications"


class IngestConfig(dg.Config):
    """Target end offset per partition (as strings: Dagster config keys). Empty: the broker's end now."""

    ends: dict[str, int] = {}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            EVENTS,
            group_name=GROUP,
            description="Bronze: every valid message as received, with topic, partition and offset.",
        ),
        dg.AssetSpec(
            DEAD_LETTERS,
            group_name=GROUP,
            description="Messages that failed validation, with topic, partition, offset, reason, raw bytes.",
        ),
    ],
    check_specs=[BRONZE_OFFSETS_UNIQUE],
    pool="notification_ingest",
)
def notification_stream(
    context: dg.AssetExecutionContext, config: IngestConfig, kafka: KafkaResource, lake: LakeResource
):
    """Store the Kafka offsets bronze does not hold yet, up to the requested ends, exactly once."""
    targets = {int(p): e for p, e in config.ends.items()} or None
    try:
        workers = worker_count(settings.get("QP_INGEST_WORKERS"))
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    try:
        report = ingest(
            lake.notifications(),
            kafka.bootstrap_servers,
            kafka.topic,
            kafka.group_id,
            targets=targets,
            chunk_messages=int(settings.get("QP_INGEST_CHUNK_MESSAGES")),
            log=lambda line: (context.log.warning if line.startswith("WARNING") else context.log.info)(line),
            consumer_extra=kafka.client_settings(),
            workers=workers,
        )
    except KafkaUnavailable as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    last_event = (
        dt.datetime.fromtimestamp(report.max_event_time_us / 1e6, dt.UTC).isoformat()
        if report.max_event_time_us
        else None
    )
    yield dg.MaterializeResult(
        asset_key=EVENTS,
        metadata={
            "topic": report.topic,
            "target_offsets": dg.MetadataValue.json({str(p): e for p, e in report.targets.items()}),
            "messages_read": report.messages,
            "events_stored": report.events,
            "files_committed": len(report.files),
            "minutes_touched": len(report.minutes),
            "latest_event_time": last_event or "",
            "offsets_expired_before_ingestion": sum(report.expired.values()),
            "worker_processes": report.workers,
        },
    )
    yield dg.MaterializeResult(asset_key=DEAD_LETTERS, metadata={"dead_letters_stored": report.dead_letters})
    yield bronze_offsets_unique(lake.notifications(), report.topic, report.files)


@dg.asset(
    key=COUNTS,
    group_name=GROUP,
    deps=[EVENTS],
    partitions_def=minute_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    check_specs=[COUNTS_KEY_UNIQUE, COUNTS_MATCH_BRONZE],
    description="Per minute (UTC), customer and channel: notifications, deduplicated by message_id.",
)
def notification_counts_minutely(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
):
    window = context.partition_time_window
    store = lake.notifications()
    # Read the commit sequence first: anything committed after it will trigger a recount of its minutes.
    bronze_seq = max((c.seq for t in store.topics() for c in store.committed(t)), default=0)
    timezone = settings.get("QP_TIMEZONE")
    # Only the files with events of the dedup day up to the window's end, with their stored message keys.
    events = scan_window(bronze_files(store, None), local_day_start(window.start, timezone), window.end)
    counts = minute_counts(events, window.start, window.end, timezone)
    with warehouse.connect() as con:
        replace_minutes(con, window.start, window.end, counts, bronze_seq, context.run_id)
    whatsapp = counts.filter(counts["channel"] == "whatsapp")["notifications"].sum()
    yield dg.MaterializeResult(
        metadata={
            "window": f"{window.start.isoformat()} .. {window.end.isoformat()}",
            "rows": counts.height,
            "notifications": int(counts["notifications"].sum() or 0),
            "whatsapp_notifications": int(whatsapp or 0),
            "bronze_seq": bronze_seq,
        }
    )
    yield counts_key_unique(warehouse)
    yield counts_match_bronze(lake, warehouse)
