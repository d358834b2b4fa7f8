"""`qp panel` as the environment and the command line configure it: the sign-in cookie is Secure only when
asked (QP_PANEL_SECURE_COOKIES or --secure-cookies, for a panel behind HTTPS), and a bad switch is refused."""

from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient

from quarantine_platform.cli import _parser
from quarantine_platform.errors import UserError
from quarantine_platform.panel.app import SESSION_COOKIE
from quarantine_platform.panel.server import build_app
from quarantine_platform.panel.token_store import TokenStore

ACME = 7494212


def sign_in_cookie(secure_cookies: bool | None = None) -> str:
    """The Set-Cookie header of a sign-in to the panel `qp panel` would serve."""
    _, token = TokenStore(os.environ["QP_PANEL_TOKENS"]).create(ACME)
    client = TestClient(build_app(secure_cookies=secure_cookies), follow_redirects=False)
    response = client.post("/login", data={"token": token})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and token not in cookie
    return cookie


def cookie_flags(cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


def test_the_cookie_is_not_secure_by_default_so_the_loopback_panel_works_over_http(platform_env):
    assert "secure" not in cookie_flags(sign_in_cookie())


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes"])
def test_qp_panel_secure_cookies_marks_the_cookie_secure(platform_env, monkeypatch, word):
    monkeypatch.setenv("QP_PANEL_SECURE_COOKIES", word)
    assert {"secure", "httponly", "samesite"} <= cookie_flags(sign_in_cookie())


def test_the_command_line_switch_wins_over_the_environment(platform_env, monkeypatch):
    monkeypatch.setenv("QP_PANEL_SECURE_COOKIES", "false")
    args = _parser().parse_args(["panel", "--secure-cookies"])
    assert "secure" in cookie_flags(sign_in_cookie(args.secure_cookies))
    assert _parser().parse_args(["panel"]).secure_cookies is None  # unset: the environment decides


def test_sign_out_clears_the_cookie_with_the_same_flags(platform_env, monkeypatch):
    monkeypatch.setenv("QP_PANEL_SECURE_COOKIES", "true")
    _, token = TokenStore(os.environ["QP_PANEL_TOKENS"]).create(ACME)
    client = TestClient(build_app(), follow_redirects=False, base_url="https://panel.example")
    client.post("/login", data={"token": token})
    cleared = client.post("/logout").headers["set-cookie"]
    assert cleared.startswith(f'{SESSION_COOKIE}=""') and "secure" in cookie_flags(cleared)


def test_a_switch_that_is_neither_true_nor_false_is_refused(platform_env, monkeypatch):
    monkeypatch.setenv("QP_PANEL_SECURE_COOKIES", "sometimes")
    with pytest.raises(UserError, match="QP_PANEL_SECURE_COOKIES='sometimes' must be true or false"):
        build_app()
