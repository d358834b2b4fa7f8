"""`notification_panel`: publishes what the customer panel shows, as an atomic snapshot the panel reads."""

import datetime as dt
from pathlib import Path

import dagster as dg

from quarantine_platform import settings
from quarantine_platform.assets.billing import BILLING
from quarantine_platform.assets.keys import COUNTS
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.warehouse import WarehouseResource
from quarantine_platform.storage.notification_lake import NotificationLake
from quarantine_platform.storage.panel_snapshot import SnapshotStore, panel_root
from quarantine_platform.storage.panel_warehouse import empty_inputs, read_panel_inputs
from quarantine_platform.transforms.panel import (
    billing_history,
    customers_table,
    empty_customers,
    snapshot_meta,
)

PANEL = dg.AssetKey("notification_panel")


def _latest_bronze_commit(store: NotificationLake) -> tuple[int | None, dt.datetime | None]:
    latest = max((c for t in store.topics() for c in store.committed(t)), key=lambda c: c.seq, default=None)
    if latest is None:
        return None, None
    return latest.seq, dt.datetime.fromtimestamp(latest.path.stat().st_mtime, dt.UTC)


@dg.asset(
    key=PANEL,
    group_name="notifications",
    # The panel reads whatever minutes and days are there. The default mapping of an unpartitioned asset onto
    # every minute partition makes Dagster enumerate ~86,400 keys per run (8 s here); the last partition is
    # enough for lineage. notification_minutes_sensor puts this asset in every counting run, after the counts.
    deps=[
        dg.AssetDep(COUNTS, partition_mapping=dg.LastPartitionMapping()),
        dg.AssetDep(BILLING, partition_mapping=dg.LastPartitionMapping()),
    ],
    description="Per customer: WhatsApp notifications today and this month, last update, the last hours "
    "minute by minute and the last 30 days of billing; plus the pipeline's freshness. Published as an "
    "atomic snapshot under QP_LAKE_DIR/panel that `qp panel` serves.",
)
def notification_panel(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    timezone = settings.get("QP_TIMEZONE")
    read_at = dt.datetime.now(dt.UTC)
    if Path(warehouse.path).exists():
        with warehouse.connect(read_only=True) as con:
            inputs = read_panel_inputs(con, timezone)
    else:
        inputs = empty_inputs()
    bronze_seq, bronze_at = _latest_bronze_commit(lake.notifications())
    period = inputs.period
    # Before the first minute is counted there is nothing to show (and no day to call today).
    customers = customers_table(inputs.totals, inputs.billing, period) if period else empty_customers()
    meta = snapshot_meta(
        period,
        timezone,
        read_at,
        inputs.progress.counted_at,
        inputs.progress.bronze_seq,
        bronze_seq,
        bronze_at,
        customers,
    )
    tables = {"customers": customers, "minutes": inputs.minutes, "billing": billing_history(inputs.billing)}
    name = SnapshotStore(panel_root(lake.root)).publish(tables, meta)
    if name is None:
        context.log.info("a snapshot read later than this one is already published; kept it")
    freshness = meta["freshness"]
    return dg.MaterializeResult(
        metadata={
            "snapshot": name or "(superseded)",
            "as_of": meta["as_of"] or "",
            "customers": customers.height,
            "whatsapp_today": meta["totals"]["whatsapp_today"],
            "whatsapp_month": meta["totals"]["whatsapp_month"],
            "lag_seconds": freshness["lag_seconds"] if freshness["lag_seconds"] is not None else -1,
        }
    )
