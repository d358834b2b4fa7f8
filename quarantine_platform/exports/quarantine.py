"""`qp export quarantine --date D [--channel C]`: the quarantine table of a load date, as materialized."""

from __future__ import annotations

import argparse
import sys

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import format_for, write_table
from quarantine_platform.storage.quarantine_warehouse import open_load_date, read_table
from quarantine_platform.transforms.quarantine import resolve_channel
from quarantine_platform.transforms.quarantine_rules import ChannelRule, RulesError, load_rules


def rules_or_user_error() -> list[ChannelRule]:
    try:
        return load_rules(settings.get("QP_QUARANTINE_RULES"))
    except RulesError as exc:
        raise UserError(str(exc)) from None


def channel_or_user_error(rules: list[ChannelRule], typed: str) -> str:
    try:
        return resolve_channel(rules, typed)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    fmt = format_for(args.format, args.output)
    channels = None
    if args.channel is not None:
        channels = [channel_or_user_error(rules_or_user_error(), args.channel)]
    with open_load_date(settings.get("QP_WAREHOUSE"), args.date) as (con, load_date):
        table = read_table(con, load_date, channels)
    rows = write_table(table, fmt, args.output)
    if args.output is not None:
        print(f"{rows} rows of load date {load_date} written to {args.output}", file=sys.stderr)
    return 0
