"""`qp export invoice-averages --month YYYY-MM`: the averages Dagster materialized for a reference month."""

from __future__ import annotations

import argparse
import sys

from quarantine_platform.exports.formats import format_for, write_table
from quarantine_platform.exports.materialized import read_partition
from quarantine_platform.partitions import MONTH_FORMAT
from quarantine_platform.storage.invoice_warehouse import read_month


def run(args: argparse.Namespace) -> int:
    fmt = format_for(args.format, args.output)
    month = args.month.replace(day=1)
    key = month.strftime(MONTH_FORMAT)
    table = read_partition("invoice_averages", key, lambda con: read_month(con, month))
    rows = write_table(table, fmt, args.output)
    if args.output is not None:
        print(f"{rows} accounts of reference month {key} written to {args.output}", file=sys.stderr)
    return 0
