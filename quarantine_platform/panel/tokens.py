"""`qp token create | revoke | list`: the operator manages the panel's access tokens."""

from __future__ import annotations

import argparse
import sys

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.panel.token_store import TokenRecord, TokenStore


def _store() -> TokenStore:
    return TokenStore(settings.get("QP_PANEL_TOKENS"))


def run_create(args: argparse.Namespace) -> int:
    """`qp token create --customer ID | --operator [--label X]`: prints the token, once."""
    customer_id = None if args.operator else args.customer
    if customer_id is not None and not 0 <= customer_id < 2**63:
        raise UserError(f"--customer {customer_id}: customer ids are 64-bit integers, not negative")
    record, secret = _store().create(customer_id, args.label or "")
    print(f"id: {record.id}")
    print(f"owner: {record.owner}")
    print(f"token: {secret}")
    print("Keep the token now: only its hash is stored, it cannot be shown again.", file=sys.stderr)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """`qp token revoke ID`: the token and its open sessions stop working at once."""
    try:
        record = _store().revoke(args.token_id)
    except KeyError:
        raise UserError(f"no token with id {args.token_id!r} (see `qp token list`)") from None
    print(f"revoked {record.id} ({record.owner}) at {record.revoked_at}")
    return 0


def _row(record: TokenRecord) -> str:
    revoked = record.revoked_at or "-"
    return f"{record.id:<10} {record.owner:<22} {record.created_at:<26} {revoked:<26} {record.label}"


def run_list(args: argparse.Namespace) -> int:
    """`qp token list`: ids, owners, labels and dates; never the tokens."""
    print(f"{'id':<10} {'owner':<22} {'created':<26} {'revoked':<26} label")
    for record in _store().list():
        print(_row(record))
    return 0
