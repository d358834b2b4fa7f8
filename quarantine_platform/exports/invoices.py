"""`qp export invoice-averages --month YYYY-MM`: the averages Dagster materialized for a reference month."""

from __future__ import annotations

import argparse
import sys

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import format_for, write_table
from quarantine_platform.partitions import MONTH_FORMAT
from quarantine_platform.resources.warehouse import open_warehouse
from quarantine_platform.storage.invoice_warehouse import read_month


def run(args: argparse.Namespace) -> int:
    fmt = format_for(args.format, args.output)
    month = args.month.replace(day=1)
    key = month.strftime(MONTH_FORMAT)
    not_materialized = UserError(
        f"invoice_averages for {key} has not been materialized; run: dagster asset materialize "
        f"-m quarantine_platform.definitions --select invoice_averages --partition {key}"
    )
    try:
        con = open_warehouse(settings.get("QP_WAREHOUSE"), read_only=True)
    except FileNotFoundError:
        raise not_materialized from None
    try:
        table = read_month(con, month)
    finally:
        con.close()
    if table is None:
        raise not_materialized
    rows = write_table(table, fmt, args.output)
    if args.output is not None:
        print(f"{rows} accounts of reference month {key} written to {args.output}", file=sys.stderr)
    return 0
