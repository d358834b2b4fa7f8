"""`qp export billing --date D`: the billing report of a day, as Dagster billed it (never recomputed here).

Formats: csv (plain decimals with `.`), xlsx, json lines, parquet; `--human` prints the seeds' form,
`Cliente: Acme / Notificações Whatsapp: 25000 / Valor: R$ 1.000,00 / Data: 2020-02-03`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import format_for, write_table
from quarantine_platform.resources.warehouse import open_warehouse
from quarantine_platform.storage.billing_warehouse import BILLING_COLUMNS, billed_days, read_billing
from quarantine_platform.transforms.billing import human_lines, rebill_command


def run(args: argparse.Namespace) -> int:
    day = args.date
    if args.human and args.format:
        raise UserError("--human prints the text report; leave out --format")
    fmt = None if args.human else format_for(args.format, args.output)
    warehouse = settings.get("QP_WAREHOUSE")
    not_billed = f"{day} is not billed yet: bill it with `{rebill_command(day)}`"
    if not Path(warehouse).exists():
        raise UserError(not_billed)
    try:
        con = open_warehouse(warehouse, read_only=True)  # waits out a billing run's write lock
    except duckdb.IOException as exc:
        raise UserError(f"cannot read the warehouse {warehouse}: {exc}") from None
    try:
        billed = billed_days(con, day, day)
        rows = read_billing(con, day, day).select(BILLING_COLUMNS)
    finally:
        con.close()
    if not billed:
        raise UserError(not_billed)
    if fmt is not None:
        written = write_table(rows, fmt, args.output)
        if args.output is not None:
            print(f"{written} customers billed on {day} written to {args.output}", file=sys.stderr)
        return 0
    text = "".join(line + "\n" for line in human_lines(rows))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
