"""The panel's access tokens and sign-in sessions, in one SQLite file (QP_PANEL_TOKENS).

A token is shown once, when it is created, and stored only as the SHA-256 of its text (a 256-bit random
secret needs no slow hash). A session id, held by the browser's cookie, is stored hashed the same way and
points at its token: every request re-checks that the token is not revoked, so a revocation ends existing
sessions at once. The file is created readable by its owner only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SESSION_HOURS = 12

_DDL = """
create table if not exists tokens (
    id text primary key,
    secret_sha256 text not null unique,
    customer_id integer,
    operator integer not null check (operator in (0, 1)),
    label text not null,
    created_at text not null,
    revoked_at text,
    check ((operator = 1) = (customer_id is null))
);
create table if not exists sessions (
    id_sha256 text primary key,
    token_id text not null references tokens (id),
    created_at text not null,
    expires_at text not null
);
"""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the operator, or one customer."""

    token_id: str
    customer_id: int | None

    @property
    def is_operator(self) -> bool:
        return self.customer_id is None

    def may_see(self, customer_id: int) -> bool:
        return self.is_operator or self.customer_id == customer_id


@dataclass(frozen=True)
class TokenRecord:
    id: str
    customer_id: int | None
    label: str
    created_at: str
    revoked_at: str | None

    @property
    def owner(self) -> str:
        return "operator" if self.customer_id is None else f"customer {self.customer_id}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TokenStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            con.execute("pragma journal_mode = wal")
            con.executescript(_DDL)
            yield con
        finally:
            con.close()

    # --- tokens (the `qp token` commands) ----------------------------------------------------------------

    def create(self, customer_id: int | None, label: str = "") -> tuple[TokenRecord, str]:
        """A new token for one customer (or the operator, with None). Returns it with its secret, which is
        not kept and cannot be shown again."""
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(
            secrets.token_hex(4), customer_id, label, _now().isoformat(timespec="seconds"), None
        )
        with self._connect() as con:
            con.execute(
                "insert into tokens values (?, ?, ?, ?, ?, ?, null)",
                [record.id, _sha256(secret), customer_id, int(customer_id is None), label, record.created_at],
            )
        return record, secret

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token and end its sessions. Raises KeyError for an unknown id; revoking twice keeps the
        first revocation time."""
        with self._connect() as con:
            con.execute("begin immediate")
            con.execute(
                "update tokens set revoked_at = ? where id = ? and revoked_at is null",
                [_now().isoformat(timespec="seconds"), token_id],
            )
            con.execute("delete from sessions where token_id = ?", [token_id])
            con.execute("commit")
        record = self.get(token_id)
        if record is None:
            raise KeyError(token_id)
        return record

    def get(self, token_id: str) -> TokenRecord | None:
        with self._connect() as con:
            row = con.execute(
                "select id, customer_id, label, created_at, revoked_at from tokens where id = ?", [token_id]
            ).fetchone()
        return TokenRecord(*row) if row else None

    def list(self) -> list[TokenRecord]:
        with self._connect() as con:
            rows = con.execute(
                "select id, customer_id, label, created_at, revoked_at from tokens order by rowid"
            ).fetchall()
        return [TokenRecord(*row) for row in rows]

    # --- authentication (the panel) ----------------------------------------------------------------------

    def authenticate(self, secret: str) -> Principal | None:
        """The principal of a live token, else None."""
        if not secret:
            return None
        with self._connect() as con:
            row = con.execute(
                "select id, customer_id from tokens where secret_sha256 = ? and revoked_at is null",
                [_sha256(secret)],
            ).fetchone()
        return Principal(*row) if row else None

    def open_session(self, principal: Principal, hours: float = SESSION_HOURS) -> str:
        """A new session for a signed-in token; returns the session id for the cookie (stored hashed)."""
        session_id = secrets.token_urlsafe(32)
        now = _now()
        with self._connect() as con:
            con.execute("delete from sessions where expires_at <= ?", [now.isoformat()])
            con.execute(
                "insert into sessions values (?, ?, ?, ?)",
                [
                    _sha256(session_id),
                    principal.token_id,
                    now.isoformat(),
                    (now + dt.timedelta(hours=hours)).isoformat(),
                ],
            )
        return session_id

    def session_principal(self, session_id: str) -> Principal | None:
        """The principal of a session that has not expired and whose token is not revoked, else None."""
        if not session_id:
            return None
        with self._connect() as con:
            row = con.execute(
                "select t.id, t.customer_id from sessions s join tokens t on t.id = s.token_id "
                "where s.id_sha256 = ? and s.expires_at > ? and t.revoked_at is null",
                [_sha256(session_id), _now().isoformat()],
            ).fetchone()
        return Principal(*row) if row else None

    def close_session(self, session_id: str) -> None:
        with self._connect() as con:
            con.execute("delete from sessions where id_sha256 = ?", [_sha256(session_id)])
