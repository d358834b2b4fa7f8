"""Invoice averages: `invoice_averages` per reference month, and its monthly schedule.

A partition key is a reference month R (`%Y-%m`); its rows are the averages of the 3 and 6 months before
R, so R's result is complete on R's first day. The partitions therefore end one month later than
`partitions.monthly_partitions` (`end_offset=1`): with `monthly_partitions` the key of the current month
would only exist once that month is over, a month after its result can be computed (and the schedule's
run on the first of the month could not ask for it).

A range of months (a backfill) is one run: the invoices file is read once and every month computed from it.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from quarantine_platform import settings
from quarantine_platform.partitions import MONTH_FORMAT, monthly_partitions
from quarantine_platform.resources.s3 import S3Resource
from quarantine_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource
from quarantine_platform.storage import invoice_warehouse as store
from quarantine_platform.storage.input_files import InputUnavailable, local_copy
from quarantine_platform.transforms.invoices import InvoiceInputError, invoice_averages, read_invoices

GROUP = "invoices"
INVOICE_AVERAGES = dg.AssetKey("invoice_averages")
REJECTED_SHOWN = 20
AVERAGES_UNIQUE = dg.AssetCheckSpec(
    "invoice_averages_unique",
    asset=INVOICE_AVERAGES,
    description="One row per (reference_month, customer, account).",
)
WINDOWS_NESTED = dg.AssetCheckSpec(
    "invoice_windows_nested",
    asset=INVOICE_AVERAGES,
    description="No account has a 6-month average without a 3-month one (the 3 months lie inside the 6).",
)

invoice_reference_months = dg.MonthlyPartitionsDefinition(
    start_date=monthly_partitions.start.strftime(MONTH_FORMAT),
    fmt=MONTH_FORMAT,
    timezone="UTC",
    end_offset=1,
)


def reference_month(key: str) -> dt.date:
    return dt.datetime.strptime(key, MONTH_FORMAT).date()


@dg.asset(
    key=INVOICE_AVERAGES,
    group_name=GROUP,
    partitions_def=invoice_reference_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"polars", "duckdb"},
    check_specs=[AVERAGES_UNIQUE, WINDOWS_NESTED],
    description="Per account: the averages of the 3 and 6 calendar months before the reference month "
    "(null when a month of the window has no invoice), truncated to cents. Input: QP_INVOICES_URI.",
)
def invoice_averages_asset(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, s3: S3Resource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    location = settings.get("QP_INVOICES_URI")
    months = sorted(reference_month(key) for key in context.partition_keys)
    try:
        with local_copy(location, s3) as path:
            if path is None:
                raise InvoiceInputError(location, None, None, "file not found")
            read = read_invoices(path, name=location)
    except (InvoiceInputError, InputUnavailable) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if read.rejected.height:
        lines = read.rejected["line"].n_unique()
        shown = "; ".join(
            f"line {line}{'' if column is None else f' column {column}'}: {reason}"
            for line, column, reason in read.rejected.head(5).iter_rows()
        )
        context.log.warning(f"{location}: {lines} row(s) rejected, the others are used. {shown}")
    averages = {month: invoice_averages(read.invoices, month) for month in months}
    with warehouse.connect() as con:
        store.replace_months(
            con,
            averages,
            source=location,
            invoices_read=read.invoices.height,
            rows_rejected=read.rejected["line"].n_unique(),
            run_id=context.run_id,
        )
    yield dg.MaterializeResult(
        metadata={
            "source": location,
            "reference_months": ", ".join(m.strftime(MONTH_FORMAT) for m in months[:3])
            + (f" ... {months[-1].strftime(MONTH_FORMAT)} ({len(months)})" if len(months) > 3 else ""),
            "invoices_read": read.invoices.height,
            "rows_rejected": read.rejected["line"].n_unique(),
            "rejected_rows": _rejected_table(read.rejected, location),
            "accounts_per_month": dg.MetadataValue.json(
                {m.strftime(MONTH_FORMAT): averages[m].height for m in months[-24:]}
            ),
        }
    )
    with warehouse.connect() as con:
        duplicates, nested_wrong = store.duplicate_rows(con), store.six_without_three(con)
    yield dg.AssetCheckResult(
        check_name=AVERAGES_UNIQUE.name, passed=duplicates == 0, metadata={"duplicate_keys": duplicates}
    )
    yield dg.AssetCheckResult(
        check_name=WINDOWS_NESTED.name, passed=nested_wrong == 0, metadata={"rows_wrong": nested_wrong}
    )


def _rejected_table(rejected: pl.DataFrame, location: str) -> dg.MetadataValue:
    shown = rejected.head(REJECTED_SHOWN)
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"file": location, "line": line, "column": column or "", "reason": reason})
            for line, column, reason in shown.iter_rows()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("file", "string"),
                dg.TableColumn("line", "int"),
                dg.TableColumn("column", "string"),
                dg.TableColumn("reason", "string"),
            ]
        ),
    )


# --- the monthly run ---------------------------------------------------------------------------------

invoice_averages_job = dg.define_asset_job(
    "invoice_averages_monthly",
    selection=[INVOICE_AVERAGES],
    partitions_def=invoice_reference_months,
    description="invoice_averages for one reference month.",
)


@dg.schedule(
    job=invoice_averages_job,
    cron_schedule="0 2 1 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="On the first day of each month at 02:00 UTC: invoice_averages with that month as the "
    "reference month (the averages are of the months before it, all closed by then).",
)
def invoice_averages_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    instant = (context.scheduled_execution_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    key = instant.strftime(MONTH_FORMAT)
    # run_key: a tick evaluated twice (daemon restart) never launches the month twice.
    return dg.RunRequest(run_key=f"invoice_averages:{key}", partition_key=key)


invoice_schedules = [invoice_averages_schedule]
