"""Helpers of the invoices and chatbot Dagster tests: run assets in process, read the warehouse, run `qp`."""

from __future__ import annotations

import contextlib
import io
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from quarantine_platform.resources.s3 import S3Resource
from quarantine_platform.resources.warehouse import WarehouseResource, open_warehouse

MONEY = pl.Decimal(38, 2)
AVERAGES_SCHEMA = {
    "customer": pl.String,
    "account": pl.String,
    "avg_invoices_last_3_months": MONEY,
    "avg_invoices_last_6_months": MONEY,
}
# The design's expected tables, as qp prints them in CSV.
INVOICE_AVERAGES_2020_01_CSV = (
    "customer,account,avg_invoices_last_3_months,avg_invoices_last_6_months\n"
    "C1000,A1100,56333.33,41416.66\n"
    "C1000,A1200,50666.66,\n"
    "C1000,A1300,,\n"
    "C2000,A2100,55400.00,\n"
)
CHATBOT_F1000_CSV = (
    "customer,flow,session,first_answer_dt,last_answer_dt,name,cpf,delivery_confirmed\n"
    "C1000,F1000,S1000,2019-12-16T13:59:58,2019-12-16T14:00:01,maria,305.584.960-40,true\n"
    "C1000,F1000,S2000,2019-12-16T13:59:59,2019-12-16T14:00:00,joao,733.600.420-26,false\n"
)
CHATBOT_F2000_CSV = (
    "customer,flow,session,first_answer_dt,last_answer_dt,recomenda,nota\n"
    "C2000,F2000,S3000,2019-12-16T13:59:59,2019-12-16T14:00:01,Simmmmmmm,9\n"
)


def resources() -> dict[str, Any]:
    """The resources as definitions.py builds them, from the (monkeypatched) environment."""
    return {
        "warehouse": WarehouseResource(path=os.environ["QP_WAREHOUSE"]),
        "s3": S3Resource(
            endpoint_url=os.environ.get("QP_S3_ENDPOINT_URL", ""),
            access_key_id=os.environ.get("QP_S3_ACCESS_KEY_ID", ""),
            secret_access_key=os.environ.get("QP_S3_SECRET_ACCESS_KEY", ""),
            region=os.environ.get("QP_S3_REGION", "us-east-1"),
        ),
    }


def materialize(
    asset: Any,
    *,
    partition: str | None = None,
    first: str | None = None,
    last: str | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInJobResult:
    """One run of `asset` for a partition, or for the range first..last as one run."""
    tags = {}
    if first is not None:
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(
        [asset],
        resources=resources(),
        partition_key=partition,
        tags=tags,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def materialization_metadata(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    events = result.get_asset_materialization_events()
    assert events, "nothing was materialized"
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def failure_message(result: dg.ExecuteInJobResult) -> str:
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "no step failed"
    data = failures[0].step_failure_data
    return (data.user_failure_data.description if data.user_failure_data else None) or data.error.message


def warehouse_query(sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    con = open_warehouse(os.environ["QP_WAREHOUSE"], read_only=True)
    try:
        return con.sql(sql, params=params or []).pl()
    finally:
        con.close()


def averages(*rows: tuple[str, str, str | None, str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [(c, a, None if x is None else Decimal(x), None if y is None else Decimal(y)) for c, a, x, y in rows],
        schema=AVERAGES_SCHEMA,
        orient="row",
    )


def qp(*argv: str) -> tuple[int, str, str]:
    """`qp ...` in process: (exit code, stdout, stderr)."""
    from quarantine_platform import cli

    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    out.flush()
    return code, out.buffer.getvalue().decode(), err.getvalue()  # type: ignore[attr-defined]


def write_csv(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
