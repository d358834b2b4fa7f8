"""`qp token create | revoke | list` and the token store: tokens shown once, kept only as hashes, revoked at
once (sessions included)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from quarantine_platform.cli import main
from quarantine_platform.panel.token_store import Principal, TokenStore


def create(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    assert main(["token", "create", *args]) == 0
    out = capsys.readouterr()
    fields = dict(line.split(": ", 1) for line in out.out.splitlines())
    assert "cannot be shown again" in out.err
    return fields["id"], fields["token"]


def test_create_prints_the_token_once_and_stores_only_its_hash(platform_env: Path, capsys):
    token_id, token = create(capsys, "--customer", "42", "--label", "acme dashboard")
    assert len(token) >= 43  # 32 random bytes, url-safe base64
    path = Path(os.environ["QP_PANEL_TOKENS"])
    assert path.parent == platform_env / "data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = b"".join(p.read_bytes() for p in path.parent.glob("panel_tokens.sqlite*"))
    assert token.encode() not in raw
    with sqlite3.connect(path) as con:
        rows = con.execute("select id, customer_id, operator, label, revoked_at from tokens").fetchall()
    assert rows == [(token_id, 42, 0, "acme dashboard", None)]
    assert TokenStore(path).authenticate(token) == Principal(token_id, 42)
    assert TokenStore(path).authenticate(token + "x") is None


def test_list_shows_ids_owners_and_labels_never_tokens(platform_env: Path, capsys):
    customer_id, customer_token = create(capsys, "--customer", "7494212", "--label", "acme")
    operator_id, operator_token = create(capsys, "--operator", "--label", "ops")
    assert main(["token", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["id", "owner", "created", "revoked", "label"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (customer_id, "customer", "7494212"),
        (operator_id, "operator", rows[1][2]),
    ]
    assert lines[1].endswith("acme") and lines[2].endswith("ops")
    assert customer_token not in out and operator_token not in out


def test_revoke_stops_the_token_and_its_sessions_at_once(platform_env: Path, capsys):
    token_id, token = create(capsys, "--customer", "1")
    store = TokenStore(os.environ["QP_PANEL_TOKENS"])
    principal = store.authenticate(token)
    session = store.open_session(principal)
    assert store.session_principal(session) == principal
    assert main(["token", "revoke", token_id]) == 0
    assert f"revoked {token_id} (customer 1)" in capsys.readouterr().out
    assert store.authenticate(token) is None
    assert store.session_principal(session) is None
    first = store.get(token_id).revoked_at
    assert main(["token", "revoke", token_id]) == 0  # again: harmless, keeps the first time
    assert store.get(token_id).revoked_at == first


def test_revoking_an_unknown_token_is_a_clear_error(platform_env: Path, capsys):
    assert main(["token", "revoke", "nope"]) == 2
    assert "qp: error: no token with id 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("customer", ["-5", str(2**63)])
def test_a_customer_id_that_cannot_exist_is_refused(platform_env: Path, capsys, customer: str):
    assert main(["token", "create", "--customer", customer]) == 2
    assert "customer ids are 64-bit integers, not negative" in capsys.readouterr().err


def test_sessions_expire(tmp_path: Path):
    store = TokenStore(tmp_path / "t.sqlite")
    record, token = store.create(None, "ops")
    principal = store.authenticate(token)
    assert principal.is_operator and principal.may_see(123)
    expired = store.open_session(principal, hours=-1)
    assert store.session_principal(expired) is None
    live = store.open_session(principal)
    store.close_session(live)
    assert store.session_principal(live) is None
