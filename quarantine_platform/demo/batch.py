"""The batch half of `qp demo`: billing, the panel and the report day on the demo stream's day, invoice
averages, the chatbot report, and the quarantine table from generated sources, each materialized through
Dagster as the schedules would, on the project's DAGSTER_HOME, then summarized."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from quarantine_platform import settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
INVOICE_MONTHS = ("2019-07", "2020-01")  # the reference months the shipped invoices.csv can fill
CHATBOT_DAY = "2019-12-16"  # the day of the shipped chatbot files (hours 13 and 14)
DEMO_QUARANTINE_CUSTOMERS = 20_000

Log = Callable[[str], None]


def _range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def _run(label: str, assets: list, instance: dg.DagsterInstance, resources: dict, log: Log, **kwargs) -> int:
    """Materialize; returns the number of failed asset checks. A failed run stops the demo with its error."""
    result = dg.materialize(assets, instance=instance, resources=resources, run_config=QUIET, **kwargs)
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    log(f"  {label}: run {result.run_id[:8]} ok" + (f", {len(failed)} failed check(s)" if failed else ""))
    return len(failed)


def run_batch_domains(
    defs: dg.Definitions, instance: dg.DagsterInstance, stream_day: dt.date, log: Log
) -> int:
    from quarantine_platform.assets.billing import billing_checks, billing_daily
    from quarantine_platform.assets.chatbot import chatbot_answers, chatbot_report_asset
    from quarantine_platform.assets.invoices import invoice_averages_asset
    from quarantine_platform.assets.panel import notification_panel
    from quarantine_platform.assets.quarantine import quarantine_global
    from quarantine_platform.assets.quarantine_sources import quarantine_source_assets
    from quarantine_platform.assets.report_days import notification_report_days, report_days_checks
    from quarantine_platform.demo.quarantine_sources import generate_quarantine_sources

    resources = defs.resources
    failed = 0
    log(f"billing {stream_day}, publishing the panel, laying the day out for the detailed export")
    failed += _run(
        "billing_daily",
        [billing_daily, *billing_checks],
        instance,
        resources,
        log,
        partition_key=stream_day.isoformat(),
    )
    failed += _run("notification_panel", [notification_panel], instance, resources, log)
    failed += _run(
        "notification_report_days",
        [notification_report_days, *report_days_checks],
        instance,
        resources,
        log,
        partition_key=stream_day.isoformat(),
    )

    log(f"invoice averages, reference months {INVOICE_MONTHS[0]} .. {INVOICE_MONTHS[1]} (one run)")
    failed += _run(
        "invoice_averages",
        [invoice_averages_asset],
        instance,
        resources,
        log,
        tags=_range_tags(*INVOICE_MONTHS),
    )

    log(f"chatbot answers of {CHATBOT_DAY} (every hour of the day, one run), then the day's report")
    failed += _run(
        "chatbot_answers",
        [chatbot_answers],
        instance,
        resources,
        log,
        tags=_range_tags(f"{CHATBOT_DAY}-00:00", f"{CHATBOT_DAY}-23:00"),
    )
    failed += _run(
        "chatbot_report", [chatbot_report_asset], instance, resources, log, partition_key=CHATBOT_DAY
    )

    load_date = dt.datetime.now(_zone()).date()
    sources = Path(settings.get("QP_DATA_DIR")) / "quarantine"
    if not (sources / "crm.xlsx").exists():
        written = generate_quarantine_sources(
            sources, customers=DEMO_QUARANTINE_CUSTOMERS, load_date=load_date
        )
        log(f"generated the six quarantine sources in {sources}: {sum(written.values()):,} rows")
    log(f"quarantine sources, then quarantine_global for load date {load_date}")
    failed += _run("quarantine sources", list(quarantine_source_assets), instance, resources, log)
    failed += _run(
        "quarantine_global",
        [quarantine_global],
        instance,
        resources,
        log,
        partition_key=load_date.isoformat(),
    )
    return failed


def _zone():  # noqa: ANN202
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.get("QP_TIMEZONE"))


def batch_summary(warehouse: str) -> dict[str, object]:
    from quarantine_platform.resources.warehouse import open_warehouse

    con = open_warehouse(warehouse, read_only=True)
    try:

        def one(query: str) -> tuple:
            return con.execute(query).fetchall()[0]

        billing = one(
            "select count(*), coalesce(sum(notifications), 0), coalesce(sum(value_brl), 0) from billing_daily"
        )
        invoices = one("select count(*), count(distinct reference_month) from invoice_averages")
        quarantine = con.execute(
            "select canal, count(*) from quarantine_global where data_carga = "
            "(select max(data_carga) from quarantine_global) group by canal order by canal"
        ).fetchall()
    finally:
        con.close()
    return {
        "billed_customers": billing[0],
        "billed_notifications": billing[1],
        "billed_value_brl": billing[2],
        "invoice_average_rows": invoices[0],
        "invoice_reference_months": invoices[1],
        "quarantine_by_channel": quarantine,
    }
