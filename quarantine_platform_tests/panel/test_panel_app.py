"""The panel's web app over a snapshot the pipeline published: sign-in, who may read what on every route,
the figures on the page and in the API, the downloads, and what it answers before any snapshot exists."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
from dataclasses import dataclass
from decimal import Decimal

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from starlette.testclient import TestClient

from quarantine_platform.panel import formatting
from quarantine_platform.panel.app import SESSION_COOKIE, create_app
from quarantine_platform.panel.token_store import TokenStore
from quarantine_platform.storage.billing_warehouse import replace_days
from quarantine_platform.storage.panel_snapshot import panel_root
from quarantine_platform_tests.panel.helpers import (
    Message,
    commit_to_bronze,
    expected_whatsapp,
    materialize_minutes,
)

UTC = dt.UTC
ACME, BETA = 7494212, 22


@dataclass
class Served:
    app: object
    tokens: dict[str, str]
    messages: list[Message]
    start: dt.datetime
    end: dt.datetime  # the snapshot's last update

    def client(self, who: str | None = None) -> TestClient:
        """A browser signed in as `who` (acme, beta, operator), or anonymous."""
        client = TestClient(self.app, follow_redirects=False)
        if who:
            response = client.post("/login", data={"token": self.tokens[who]})
            assert response.status_code == 303, response.text
        return client


BILLING_SCHEMA = {
    "date": pl.Date,
    "customer_id": pl.Int64,
    "customer_name": pl.String,
    "notifications": pl.Int64,
    "unit_price_brl": pl.Decimal(18, 4),
    "value_brl": pl.Decimal(18, 2),
}


def billing_rows(day: dt.date) -> pl.DataFrame:
    """What billing_daily holds for the last two days (written with the billing domain's own storage)."""
    yesterday = day - dt.timedelta(days=1)
    return pl.DataFrame(
        {
            "date": [yesterday, yesterday, day],
            "customer_id": [ACME, BETA, ACME],
            "customer_name": ["Acme", "Beta", "Acme"],
            "notifications": [25000, 3, 1],
            "unit_price_brl": [Decimal("0.04"), Decimal("0.05"), Decimal("0.04")],
            "value_brl": [Decimal("1000.00"), Decimal("0.15"), Decimal("0.04")],
        },
        schema=BILLING_SCHEMA,
    )


@pytest.fixture(scope="module")
def served(module_env) -> Served:
    from quarantine_platform import definitions

    start = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=20)
    at = lambda minute, second: start + dt.timedelta(minutes=minute, seconds=second)  # noqa: E731
    messages = [
        Message(ACME, "Acme", "A1", "Whatsapp", at(0, 1), "Olá XXXXX, seja muito bem-vindo!"),
        Message(ACME, "Acme", "A2", "WhatsApp", at(0, 2), "Não identificamos a sua última mensagem"),
        Message(ACME, "Acme", "A3", "SMS", at(1, 3), "sms"),
        Message(ACME, "Acme", "A1", "Whatsapp", at(2, 0), "Olá XXXXX, seja muito bem-vindo!"),  # re-sent
        Message(ACME, "Acme", "A4", "Whatsapp", at(3, 30), 'aspas "duplas", vírgulas; e\nlinhas'),
        Message(BETA, "Beta", "B1", "Whatsapp", at(1, 0), "segredo da Beta"),
        Message(BETA, "Beta", "B2", "Whatsapp", at(4, 0), "outro segredo da Beta"),
    ]
    commit_to_bronze(messages)
    billing = billing_rows(start.date())
    con = duckdb.connect(os.environ["QP_WAREHOUSE"])
    try:
        replace_days(con, sorted(set(billing["date"])), billing, dt.datetime.now(UTC), "test")
    finally:
        con.close()
    materialize_minutes(definitions.defs, start, start + dt.timedelta(minutes=5))
    store = TokenStore(os.environ["QP_PANEL_TOKENS"])
    tokens = {
        "acme": store.create(ACME, "acme")[1],
        "beta": store.create(BETA, "beta")[1],
        "operator": store.create(None, "ops")[1],
    }
    revoked, tokens["revoked"] = store.create(ACME, "old")
    store.revoke(revoked.id)
    app = create_app(
        panel_root(os.environ["QP_LAKE_DIR"]),
        store,
        os.environ["QP_LAKE_DIR"],
        topic="notifications",
        timezone=os.environ["QP_TIMEZONE"],
    )
    return Served(app, tokens, messages, start, start + dt.timedelta(minutes=6))


def report_query(start: dt.datetime, end: dt.datetime, fmt: str = "csv") -> str:
    from urllib.parse import urlencode

    return urlencode({"from": start.isoformat(), "to": end.isoformat(), "format": fmt})


# --- signing in ------------------------------------------------------------------------------------------


def test_anonymous_requests_are_sent_to_sign_in_and_the_api_answers_401(served: Served):
    client = served.client()
    for path in ("/", f"/customers/{ACME}", "/operator", f"/customers/{ACME}/billing.csv"):
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/login"), path
    for path in (f"/api/customers/{ACME}", "/api/operator"):
        response = client.get(path)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").text == "ok\n"
    assert client.get("/static/panel.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/base.html").status_code == 404  # templates are not served


def test_sign_in_sets_a_strict_http_only_session_cookie_that_is_not_the_token(served: Served):
    client = served.client()
    refused = client.post("/login", data={"token": "not-a-token"})
    assert refused.status_code == 401 and "Token inválido" in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    assert client.post("/login", data={"token": served.tokens["revoked"]}).status_code == 401
    response = client.post("/login", data={"token": served.tokens["acme"]})
    assert (response.status_code, response.headers["location"]) == (303, "/")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert served.tokens["acme"] not in cookie
    assert client.get("/").headers["location"] == f"/customers/{ACME}"
    assert served.client("operator").get("/").headers["location"] == "/operator"


def test_sign_out_ends_the_session_even_if_the_cookie_is_replayed(served: Served):
    client = served.client("acme")
    session = client.cookies[SESSION_COOKIE]
    assert client.post("/logout").headers["location"] == "/login"
    replay = TestClient(served.app, follow_redirects=False, cookies={SESSION_COOKIE: session})
    assert replay.get(f"/api/customers/{ACME}").status_code == 401


def test_revoking_a_token_ends_its_open_sessions_at_once(served: Served):
    store = TokenStore(os.environ["QP_PANEL_TOKENS"])
    record, token = store.create(BETA, "to revoke")
    client = TestClient(served.app, follow_redirects=False)
    client.post("/login", data={"token": token})
    assert client.get(f"/api/customers/{BETA}").status_code == 200
    store.revoke(record.id)
    assert client.get(f"/api/customers/{BETA}").status_code == 401
    assert client.get(f"/customers/{BETA}").headers["location"] == "/login"


# --- who may read what -------------------------------------------------------------------------------------

OTHER_CUSTOMER_PATHS = [
    f"/customers/{BETA}",
    f"/customers/0{BETA}",
    "/customers/%32%32",
    f"/customers/{BETA}/",
    f"/customers/{ACME}/../{BETA}",
    f"/customers/{ACME}%2F..%2F{BETA}",
    f"/customers/{BETA}?customer_id={ACME}",
    f"/customers/{BETA}/report?from=2020-01-01&to=2030-01-01&format=csv",
    f"/customers/{BETA}/report?from=2020-01-01&to=2030-01-01&format=json&customer={ACME}",
    f"/customers/{BETA}/billing.csv",
    f"/api/customers/{BETA}",
    f"/api/customers/{BETA}?customer_id={ACME}",
    f"/api/customers/{ACME}/../{BETA}",
    "/operator",
    "/api/operator",
]


@pytest.mark.parametrize("path", OTHER_CUSTOMER_PATHS)
def test_a_customer_never_reads_another_customer_or_the_operator_view(served: Served, path: str):
    for client in (served.client("acme"), TestClient(served.app, follow_redirects=False)):
        if not client.cookies:
            client.headers["authorization"] = f"Bearer {served.tokens['acme']}"
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "Beta" not in response.text and "segredo" not in response.text


def test_every_route_answers_a_customer_for_its_own_id(served: Served):
    client = served.client("acme")
    query = report_query(served.start, served.end)
    for path in (
        f"/customers/{ACME}",
        f"/api/customers/{ACME}",
        f"/customers/{ACME}/billing.csv",
        f"/customers/{ACME}/report?{query}",
    ):
        assert client.get(path).status_code == 200, path


def test_bearer_tokens_follow_the_same_rules(served: Served):
    client = TestClient(served.app, follow_redirects=False)

    def get(path: str, token: str, scheme: str = "Bearer") -> int:
        return client.get(path, headers={"authorization": f"{scheme} {token}"}).status_code

    assert get(f"/api/customers/{BETA}", served.tokens["beta"]) == 200
    assert get(f"/api/customers/{ACME}", served.tokens["beta"]) == 404
    assert get("/api/operator", served.tokens["operator"]) == 200
    assert get(f"/api/customers/{BETA}", served.tokens["operator"]) == 200
    assert get(f"/api/customers/{ACME}", served.tokens["revoked"]) == 401
    assert get(f"/api/customers/{ACME}", served.tokens["acme"], scheme="Basic") == 401
    assert get(f"/api/customers/{ACME}", "") == 401


def test_the_operator_reads_every_customer_but_not_customers_that_do_not_exist(served: Served):
    client = served.client("operator")
    assert client.get(f"/customers/{BETA}").status_code == 200
    assert client.get(f"/api/customers/{ACME}").status_code == 200
    assert client.get("/customers/999").status_code == 404
    assert client.get("/api/customers/999").status_code == 404
    assert client.get(f"/api/customers/{2**70}").status_code == 404  # beyond 64 bits: still just absent


# --- the figures -------------------------------------------------------------------------------------------


def test_the_api_and_the_page_show_the_figures_the_pipeline_counted(served: Served):
    client = served.client("acme")
    api = client.get(f"/api/customers/{ACME}").json()
    day = dt.date.fromisoformat(api["day"])
    today, month = expected_whatsapp(served.messages, "UTC", day).get(ACME, (0, 0))
    assert (api["customer_name"], api["whatsapp_today"], api["whatsapp_month"]) == ("Acme", today, month)
    assert api["last_update"] == served.end.isoformat()
    # A1 and A2 in the first minute (A1's re-send two minutes later is the same notification), A4 at 3:30
    assert [(m["minute"], m["notifications"]) for m in api["minutes"]["series"]] == [
        (served.start.isoformat(), 2),
        ((served.start + dt.timedelta(minutes=3)).isoformat(), 1),
    ]
    page = client.get(f"/customers/{ACME}")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f'id="whatsapp-today" data-value="{today}">{formatting.integer(today)}<' in page.text
    assert f'id="whatsapp-month" data-value="{month}">{formatting.integer(month)}<' in page.text
    assert f">{served.end.isoformat()}</time>" in page.text
    assert '<meta http-equiv="refresh" content="60">' in page.text
    assert "<svg" in page.text and "<script" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and page.headers["cache-control"] == "no-store"


def test_the_operator_view_lists_every_customer_and_the_pipeline_freshness(served: Served):
    client = served.client("operator")
    api = client.get("/api/operator").json()
    day = dt.date.fromisoformat(api["day"])
    figures = expected_whatsapp(served.messages, "UTC", day)
    assert [(c["customer_id"], c["whatsapp_today"]) for c in api["customers"]] == sorted(
        ((c, t) for c, (t, _) in figures.items()), key=lambda x: (-x[1], x[0])
    )
    fresh = api["freshness"]
    assert fresh["latest_minute_counted"] == (served.end - dt.timedelta(minutes=1)).isoformat()
    assert fresh["bronze_commits_not_counted"] == 0
    assert fresh["lag_seconds"] >= 0 and api["snapshot"]["age_seconds"] >= 0
    page = client.get("/operator").text
    assert (
        'id="freshness"' in page and f'data-customer="{BETA}"' in page and f'data-customer="{ACME}"' in page
    )


# --- downloads ---------------------------------------------------------------------------------------------


def expected_report(served: Served, customer_id: int, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    first: dict[str, Message] = {}
    for m in sorted(served.messages, key=lambda m: m.at):
        first.setdefault(m.message_id, m)
    rows = sorted(
        (m for m in first.values() if m.customer_id == customer_id and start <= m.at < end),
        key=lambda m: m.at,
    )
    return pl.DataFrame(
        {
            "customer_id": [m.customer_id for m in rows],
            "customer_name": [m.customer_name for m in rows],
            "message_id": [m.message_id for m in rows],
            "payload": [m.payload for m in rows],
            "event_datetime": [m.at.isoformat(timespec="milliseconds") for m in rows],
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet", "json"])
def test_the_report_download_holds_the_customers_messages_of_the_window(served: Served, fmt: str):
    start, end = served.start, served.start + dt.timedelta(minutes=4)
    response = served.client("acme").get(f"/customers/{ACME}/report?{report_query(start, end, fmt)}")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = io.BytesIO(response.content)
    read = {
        "csv": lambda: pl.read_csv(data, infer_schema=False),
        "xlsx": lambda: pl.read_excel(data),
        "parquet": lambda: pl.read_parquet(data),
        "json": lambda: pl.read_ndjson(data),
    }[fmt]
    got = read().with_columns(pl.col("customer_id").cast(pl.Int64))
    assert_frame_equal(got, expected_report(served, ACME, start, end))


def test_a_report_window_without_messages_is_an_empty_file_and_bad_parameters_are_400(served: Served):
    client = served.client("acme")
    empty = client.get(f"/customers/{ACME}/report?from=2020-01-01&to=2020-01-02")  # read in QP_TIMEZONE
    assert empty.status_code == 200
    assert empty.text.strip() == "customer_id,customer_name,message_id,payload,event_datetime"
    for query, fragment in [
        ("from=2020-01-01&to=2020-01-02&format=pdf", "formato desconhecido"),
        ("from=2020-01-02&to=2020-01-01", "depois de"),
        ("to=2020-01-01", "falta o parâmetro"),
        ("from=ontem&to=2020-01-01", "não é uma data-hora ISO"),
        ("from=2020-01-01&to=2020-03-01", "31 dias"),
    ]:
        response = client.get(f"/customers/{ACME}/report?{query}")
        assert response.status_code == 400 and fragment in response.text, query


def test_the_billing_history_download_and_the_billing_figures_are_the_customers_own(served: Served):
    expected = billing_rows(served.start.date())
    for who, customer_id in (("beta", BETA), ("acme", ACME)):
        response = served.client(who).get(f"/customers/{customer_id}/billing.csv")
        assert response.status_code == 200
        assert f'filename="cobranca_{customer_id}.csv"' in response.headers["content-disposition"]
        got = pl.read_csv(io.BytesIO(response.content), schema=BILLING_SCHEMA)
        assert_frame_equal(got, expected.filter(pl.col("customer_id") == customer_id).sort("date"))
    api = served.client("acme").get(f"/api/customers/{ACME}").json()
    day = dt.date.fromisoformat(api["day"])
    mine = expected.filter((pl.col("customer_id") == ACME) & (pl.col("date") >= day.replace(day=1)))
    month_value = sum(mine["value_brl"].to_list(), Decimal("0.00"))
    assert api["billing_month_brl"] == str(month_value)
    assert [(d["date"], d["value_brl"]) for d in api["billing"]["days"]] == [
        (d.isoformat(), str(v))
        for d, v in expected.filter(pl.col("customer_id") == ACME).select("date", "value_brl").iter_rows()
    ]
    page = served.client("acme").get(f"/customers/{ACME}").text
    assert f'id="billing-month" data-value="{month_value}">{formatting.money(month_value)}<' in page
    assert "R$ 1.000,00 (25.000 notificações)" in page  # the billing chart's bar of yesterday


# --- no snapshot, logs ----------------------------------------------------------------------------------


def test_before_any_snapshot_pages_say_so_and_the_api_answers_503(served: Served, tmp_path):
    store = TokenStore(tmp_path / "tokens.sqlite")
    _, token = store.create(ACME)
    app = create_app(tmp_path / "panel", store, str(tmp_path / "lake"))
    client = TestClient(app, follow_redirects=False)
    client.post("/login", data={"token": token})
    page = client.get(f"/customers/{ACME}")
    assert page.status_code == 200 and "Ainda sem dados" in page.text
    assert client.get(f"/api/customers/{ACME}").status_code == 503


def test_no_token_or_session_id_reaches_the_logs(served: Served, caplog):
    caplog.set_level(logging.DEBUG)
    client = served.client("acme")
    client.get(f"/customers/{ACME}")
    client.get(f"/api/customers/{BETA}", headers={"authorization": f"Bearer {served.tokens['beta']}"})
    client.post("/login", data={"token": "wrong " + served.tokens["operator"][:10]})
    text = caplog.text
    assert "panel sign-in: token" in text  # the sign-in is logged, by token id
    for secret in (*served.tokens.values(), client.cookies[SESSION_COOKIE], served.tokens["operator"][:10]):
        assert secret not in text
