"""`qp export chatbot --date D [--flow F] [--mask KEY ...]`: the chatbot report Dagster materialized.

With `--flow`, one flow's table: `customer, flow, session, first_answer_dt, last_answer_dt`, then the
flow's keys in order of first appearance (csv by default). Without it, one JSON object per session with its
answers as an object (`answers`, keys in the same order); json lines by default, parquet also works (a MAP
column), csv and xlsx need `--flow` because each flow has its own columns.

`--mask KEY` (repeatable) hides that key's values: every letter and digit becomes `*` and punctuation
stays, so `305.584.960-40` is exported as `***.***.***-**` (the shape of the value, none of its content).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import polars as pl

from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import format_for, write_table
from quarantine_platform.exports.materialized import read_partition
from quarantine_platform.partitions import DAY_FORMAT
from quarantine_platform.storage.chatbot_warehouse import read_report
from quarantine_platform.transforms.chatbot import SESSION_COLUMNS, flow_table

MASK_CHARACTER = "*"
_MASKED = r"[\p{L}\p{N}]"


def mask_values(report: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The long report with the values of `keys` masked (letters and digits become `*`)."""
    if not keys:
        return report
    return report.with_columns(
        pl.when(pl.col("key").is_in(keys))
        .then(pl.col("value").str.replace_all(_MASKED, MASK_CHARACTER))
        .otherwise(pl.col("value"))
        .alias("value")
    )


def sessions_with_answers(report: pl.DataFrame) -> pl.DataFrame:
    """One row per session, `answers` a map of key -> value in the flow's key order."""
    return (
        report.sort("customer", "flow", "session", "key_order")
        .group_by(SESSION_COLUMNS, maintain_order=True)
        .agg(pl.struct("key", "value").alias("answers"))
        .with_columns(pl.col("answers").cast(pl.Map(pl.String, pl.String)))
    )


def run(args: argparse.Namespace) -> int:
    day = args.date
    key = day.strftime(DAY_FORMAT)
    fmt = _format(args)
    report = _materialized_report(day, key)
    report = mask_values(report, list(dict.fromkeys(args.mask)))
    if args.flow is None:
        table = sessions_with_answers(report)
    else:
        flows = report["flow"].unique().sort().to_list()
        if args.flow not in flows:
            raise UserError(
                f"no session of flow {args.flow!r} on {key} (flows that day: {', '.join(flows) or 'none'})"
            )
        try:
            table = flow_table(report, args.flow)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    rows = write_table(table, fmt, args.output)
    if args.output is not None:
        print(f"{rows} sessions of {key} written to {args.output}", file=sys.stderr)
    return 0


def _format(args: argparse.Namespace) -> str:
    if args.flow is not None:
        return format_for(args.format, args.output)
    # Without --flow: JSON lines, unless a format is asked for or the output file's extension names one.
    named = args.format is not None or (args.output is not None and bool(Path(args.output).suffix))
    fmt = format_for(args.format if named else "json", args.output)
    if fmt in ("csv", "xlsx"):
        raise UserError(
            f"{fmt} needs --flow: each flow has its own columns (without --flow: json or parquet)"
        )
    return fmt


def _materialized_report(day: dt.date, key: str) -> pl.DataFrame:
    return read_partition("chatbot_report", key, lambda con: read_report(con, day))
