"""`qp panel [--host H] [--port P] [--secure-cookies]`: serve the panel with uvicorn (defaults QP_PANEL_HOST,
QP_PANEL_PORT, QP_PANEL_SECURE_COOKIES)."""

from __future__ import annotations

import argparse
import logging
import sys

from quarantine_platform import settings
from quarantine_platform.errors import UserError
from quarantine_platform.panel.token_store import TokenStore
from quarantine_platform.storage.panel_snapshot import SnapshotStore, panel_root


def build_app(secure_cookies: bool | None = None):  # noqa: ANN201 - a Starlette app, imported lazily
    """The panel app as the environment configures it; `secure_cookies` None reads QP_PANEL_SECURE_COOKIES."""
    from quarantine_platform.panel.app import create_app

    lake_root = settings.get("QP_LAKE_DIR")
    try:
        root = panel_root(lake_root)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return create_app(
        snapshot_root=root,
        token_store=TokenStore(settings.get("QP_PANEL_TOKENS")),
        lake_root=lake_root,
        topic=settings.get("QP_KAFKA_TOPIC"),
        timezone=settings.get("QP_TIMEZONE"),
        refresh_seconds=_positive_int("QP_PANEL_REFRESH_SECONDS"),
        secure_cookies=_switch("QP_PANEL_SECURE_COOKIES") if secure_cookies is None else secure_cookies,
    )


def _positive_int(name: str) -> int:
    text = settings.get(name)
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{name}={text!r} is not a whole number") from None
    if value <= 0:
        raise UserError(f"{name}={value} must be positive")
    return value


_SWITCH_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _switch(name: str) -> bool:
    """A true/false variable; anything else is refused, not read as false (a Secure flag silently off)."""
    text = settings.get(name)
    try:
        return _SWITCH_WORDS[text.strip().lower()]
    except KeyError:
        raise UserError(f"{name}={text!r} must be true or false") from None


def _log_to_stderr() -> None:
    """The panel's own lines (sign-ins, downloads: ids and counts, never secrets) beside uvicorn's."""
    logger = logging.getLogger("quarantine_platform.panel")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def run(args: argparse.Namespace) -> int:
    """`qp panel`."""
    import uvicorn

    host = args.host or settings.get("QP_PANEL_HOST")
    port = args.port if args.port is not None else _positive_int("QP_PANEL_PORT")
    app = build_app(secure_cookies=args.secure_cookies)
    _log_to_stderr()
    tokens = TokenStore(settings.get("QP_PANEL_TOKENS"))
    if not any(t.revoked_at is None for t in tokens.list()):
        print(
            "qp panel: no live token yet: create one with `qp token create --customer ID` or --operator",
            file=sys.stderr,
        )
    if SnapshotStore(panel_root(settings.get("QP_LAKE_DIR"))).current_name() is None:
        print("qp panel: no snapshot published yet: materialize notification_panel", file=sys.stderr)
    print(f"qp panel: serving http://{host}:{port}/", file=sys.stderr, flush=True)
    # Access logs show method, path and status: tokens never travel in URLs, so none can appear there.
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, proxy_headers=False)
    return 0
