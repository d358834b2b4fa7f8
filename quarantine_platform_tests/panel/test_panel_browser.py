"""The panel in a real browser (Debian chromium through Playwright), served by `qp panel`, with figures the
pipeline produced: messages go to the embedded broker, the sensors' runs ingest, count and publish.

The tests of this module run in order on one live setup: sign in and see the figures, download the report,
be refused another customer's URLs, keep being served while a run holds the warehouse, then new messages go
through the pipeline and the page, refreshing itself, shows them; and nothing secret reached the server log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest
from confluent_kafka import Producer
from playwright.sync_api import expect

from quarantine_platform.panel import formatting
from quarantine_platform_tests.conftest import free_port, set_platform_env
from quarantine_platform_tests.panel.helpers import Message, drive, expected_whatsapp

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEZONE = "America/Sao_Paulo"
ACME, BETA = 7494212, 22

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt chromium)"
)


@dataclass
class Live:
    url: str
    tokens: dict[str, str]
    log_path: Path
    warehouse: str
    messages: list[Message]
    run_pipeline: object  # () -> None: tick the sensors and execute their runs until quiet
    produce: object  # (list[Message]) -> None
    browser: object
    contexts: list = field(default_factory=list)

    def page(self, who: str | None = None):  # noqa: ANN201 - a Playwright Page
        """A new browser context (its own cookies), signed in as `who` through the login form."""
        context = self.browser.new_context(accept_downloads=True)
        self.contexts.append(context)
        page = context.new_page()
        if who:
            page.goto(f"{self.url}/")
            assert page.url == f"{self.url}/login"
            page.fill("#token", self.tokens[who])
            page.click("#sign-in")
        return page

    def expected(self, customer_id: int, day: dt.date) -> tuple[int, int]:
        return expected_whatsapp(self.messages, TIMEZONE, day).get(customer_id, (0, 0))


def stream(start: dt.datetime, seconds: int, acme: int, beta: int, prefix: str, seed: int) -> list[Message]:
    """Acme's and Beta's messages over `seconds` from `start`: WhatsApp in both spellings, some SMS, and a few
    re-sends of the same message_id."""
    rnd = random.Random(seed)
    out: list[Message] = []
    for customer, name, n in ((ACME, "Acme", acme), (BETA, "Beta", beta)):
        for i in range(n):
            at = start + dt.timedelta(milliseconds=rnd.randrange(seconds * 1000))  # as precise as the wire
            channel = rnd.choice(["Whatsapp", "WhatsApp", "Whatsapp", "SMS"])
            out.append(
                Message(customer, name, f"{prefix}{customer}-{i}", channel, at, f"Olá {name}, mensagem {i}")
            )
    out += [rnd.choice(out) for _ in range(len(out) // 20)]  # re-sent: counted once
    rnd.shuffle(out)
    return out


def local_midnight(instant: dt.datetime) -> dt.datetime:
    zone = ZoneInfo(TIMEZONE)
    return dt.datetime.combine(instant.astimezone(zone).date(), dt.time(), tzinfo=zone)


def after_local_midnight(minutes: int) -> dt.datetime:
    """Now (to the minute), at least `minutes` into the local day: every message of these tests is then
    "today" (a run started right after midnight waits those few minutes)."""
    now = dt.datetime.now(dt.UTC)
    wait = (local_midnight(now) + dt.timedelta(minutes=minutes) - now).total_seconds()
    if wait > 0:
        time.sleep(wait)
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("panel_browser")
    with contextlib.ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        set_platform_env(mp, root)
        port = free_port()
        for name, value in {
            "QP_TIMEZONE": TIMEZONE,
            "QP_ALLOWED_LATENESS_SECONDS": "0",  # every minute that ended is counted at the next tick
            "QP_PANEL_REFRESH_SECONDS": "2",
            "QP_PANEL_PORT": str(port),
            "XDG_CONFIG_HOME": str(
                root / "xdg_config"
            ),  # chromium writes there even with a temporary profile
            "XDG_CACHE_HOME": str(root / "xdg_cache"),
        }.items():
            mp.setenv(name, value)

        bootstrap = f"127.0.0.1:{free_port()}"
        broker = subprocess.Popen(
            [sys.executable, "-m", "quarantine_platform.cli", "broker", "--bootstrap", bootstrap],
            stdout=subprocess.PIPE,
            text=True,
        )
        stack.callback(lambda: (broker.terminate(), broker.wait(10)))
        assert (broker.stdout.readline() if broker.stdout else "").startswith("BROKER READY")
        mp.setenv("QP_KAFKA_BOOTSTRAP", bootstrap)

        def produce(messages: list[Message]) -> None:
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
            for m in messages:
                producer.produce("notifications", value=m.value(), partition=hash(m.message_id) % 4)
            assert producer.flush(30) == 0

        from quarantine_platform import definitions
        from quarantine_platform.cli import main

        instance = dg.DagsterInstance.ephemeral()
        cursors: dict[str, str | None] = {}
        now = after_local_midnight(minutes=4)
        start = max(now - dt.timedelta(minutes=40), local_midnight(now))
        seconds = int((now - dt.timedelta(minutes=3) - start).total_seconds())
        messages = stream(start, seconds, acme=1500, beta=40, prefix="a", seed=3)
        produce(messages)
        runs = drive(definitions.defs, instance, cursors)
        assert {"notification_counts_minutely", "notification_panel"} in runs

        tokens = {}
        for who, args in {
            "acme": ["--customer", str(ACME)],
            "beta": ["--customer", str(BETA)],
            "operator": ["--operator"],
        }.items():
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                assert main(["token", "create", *args, "--label", who]) == 0
            tokens[who] = dict(line.split(": ", 1) for line in out.getvalue().splitlines())["token"]

        log_path = root / "panel.log"
        log = stack.enter_context(open(log_path, "wb"))
        panel = subprocess.Popen(
            [sys.executable, "-m", "quarantine_platform.cli", "panel", "--host", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(lambda: (panel.terminate(), panel.wait(10)))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            assert panel.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "qp panel did not start"
            time.sleep(0.1)

        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        stack.callback(browser.close)
        yield Live(
            url=url,
            tokens=tokens,
            log_path=log_path,
            warehouse=os.environ["QP_WAREHOUSE"],
            messages=messages,
            run_pipeline=lambda: drive(definitions.defs, instance, cursors),
            produce=produce,
            browser=browser,
        )


HOLD_WAREHOUSE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("begin transaction")
con.execute("delete from notification_counts_minutely")  # uncommitted: nobody may ever see this
print("LOCKED", flush=True)
sys.stdin.read()
"""


def api(page, path: str) -> dict:  # noqa: ANN001 - a Playwright Page
    response = page.request.get(path)
    assert response.status == 200, (path, response.status)
    return response.json()


def test_sign_in_and_see_the_figures_the_pipeline_produced(live: Live):
    page = live.page("acme")
    page.wait_for_url(f"{live.url}/customers/{ACME}")
    figures = api(page, f"{live.url}/api/customers/{ACME}")
    day = dt.date.fromisoformat(figures["day"])
    today, month = live.expected(ACME, day)
    assert today > 1000  # enough to see the thousands separator
    assert page.inner_text("#customer-name") == "Acme"
    assert page.inner_text("#whatsapp-today") == formatting.integer(today)
    assert page.inner_text("#whatsapp-month") == formatting.integer(month)
    assert "." in page.inner_text("#whatsapp-today")  # 1.234, not 1234 or 1,234
    assert page.inner_text("#last-update") == figures["last_update"]
    assert figures["last_update"].endswith("-03:00")  # shown in QP_TIMEZONE
    assert page.locator("svg.chart rect.bar").count() > 20  # the minutes of the last hours
    operator = live.page("operator")
    operator.wait_for_url(f"{live.url}/operator")
    assert operator.locator(f'tr[data-customer="{BETA}"] td').nth(2).inner_text() == formatting.integer(
        live.expected(BETA, day)[0]
    )


def test_download_the_detailed_report_from_the_page(live: Live):
    page = live.page("acme")
    page.wait_for_url(f"{live.url}/customers/{ACME}")
    figures = api(page, f"{live.url}/api/customers/{ACME}")
    with page.expect_download() as info:
        page.click("#report-today-csv")
    report = pl.read_csv(info.value.path(), infer_schema=False)
    zone = ZoneInfo(TIMEZONE)
    day_start = dt.datetime.combine(dt.date.fromisoformat(figures["day"]), dt.time(), tzinfo=zone)
    as_of = dt.datetime.fromisoformat(figures["last_update"])
    first: dict[str, Message] = {}
    for m in sorted(live.messages, key=lambda m: m.at):
        first.setdefault(m.message_id, m)
    expected = sorted(
        (m for m in first.values() if m.customer_id == ACME and day_start <= m.at < as_of), key=lambda m: m.at
    )
    assert report.columns == ["customer_id", "customer_name", "message_id", "payload", "event_datetime"]
    stamps = report["event_datetime"].to_list()
    assert stamps == sorted(stamps)  # in event time order (ties: in the order Kafka stored them)
    assert sorted(zip(report["message_id"], stamps, strict=True)) == sorted(
        (m.message_id, m.at.isoformat(timespec="milliseconds")) for m in expected
    )


def test_another_customers_urls_answer_404(live: Live):
    page = live.page("acme")
    page.wait_for_url(f"{live.url}/customers/{ACME}")
    for path in (
        f"/customers/{BETA}",
        f"/api/customers/{BETA}",
        f"/customers/{BETA}/billing.csv",
        f"/customers/{BETA}/report?from=2020-01-01&to=2020-01-02",
        "/operator",
        "/api/operator",
    ):
        response = page.request.get(f"{live.url}{path}")
        assert response.status == 404, path
        assert "Beta" not in response.text()
    response = page.goto(f"{live.url}/customers/{BETA}")
    assert response.status == 404 and page.inner_text("#message-heading") == "Não encontrado"
    # Paths a browser would normalize, sent raw with Acme's session cookie.
    cookie = next(c for c in page.context.cookies() if c["name"] == "qp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    for raw in (
        f"/customers/{ACME}/../{BETA}",
        f"/api/customers/{ACME}/../{BETA}",
        f"/customers/{ACME}/%2e%2e/{BETA}",
    ):
        conn = http.client.HTTPConnection("127.0.0.1", int(live.url.rsplit(":", 1)[1]), timeout=5)
        conn.request("GET", raw, headers={"Cookie": f"qp_session={cookie['value']}"})
        answer = conn.getresponse()
        assert answer.status == 404, raw
        assert b"Beta" not in answer.read()


def test_the_panel_keeps_answering_while_a_run_holds_the_warehouse(live: Live):
    from quarantine_platform import definitions
    from quarantine_platform.assets.panel import notification_panel

    page = live.page("acme")
    page.wait_for_url(f"{live.url}/customers/{ACME}")
    before = api(page, f"{live.url}/api/customers/{ACME}")
    # Another process holds DuckDB's file lock with a write in progress, as a counting run does.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WAREHOUSE, live.warehouse],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "LOCKED"
    run = threading.Thread(
        target=lambda: dg.materialize([notification_panel], resources=definitions.defs.resources)
    )
    try:
        run.start()  # the panel's own run waits for the lock
        deadline = time.monotonic() + 1.5
        answered = 0
        while time.monotonic() < deadline:
            during = api(page, f"{live.url}/api/customers/{ACME}")
            assert during["snapshot"]["name"] == before["snapshot"]["name"]
            assert during["whatsapp_today"] == before["whatsapp_today"]
            response = page.reload()
            assert response.status == 200
            assert page.inner_text("#whatsapp-today") == formatting.integer(before["whatsapp_today"])
            answered += 1
        assert answered >= 3 and run.is_alive()
    finally:
        holder.communicate("", timeout=30)  # closing its stdin ends the holder, which rolls back
    run.join(60)
    after = api(page, f"{live.url}/api/customers/{ACME}")
    assert after["snapshot"]["name"] > before["snapshot"]["name"]  # the run published once the lock was free
    assert after["whatsapp_today"] == before["whatsapp_today"]


def test_new_messages_reach_the_page_which_refreshes_itself(live: Live):
    page = live.page("acme")
    page.wait_for_url(f"{live.url}/customers/{ACME}")
    before = api(page, f"{live.url}/api/customers/{ACME}")
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    more = stream(now - dt.timedelta(minutes=2), 50, acme=60, beta=5, prefix="b", seed=4)
    live.messages.extend(more)
    live.produce(more)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            live.run_pipeline()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    # While the runs ingest, count and publish: every answer is whole, and snapshots only move forward.
    port = int(live.url.rsplit(":", 1)[1])
    names: list[str] = []
    while runner.is_alive() or not names:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/operator", headers={"Authorization": f"Bearer {live.tokens['operator']}"})
        answer = conn.getresponse()
        assert answer.status == 200
        body = json.loads(answer.read())
        assert sum(c["whatsapp_today"] for c in body["customers"]) == body["totals"]["whatsapp_today"]
        assert not names or body["snapshot"]["name"] >= names[-1]
        names.append(body["snapshot"]["name"])
        time.sleep(0.05)
    runner.join()
    assert not failures, failures
    assert len(names) > 5
    after = api(page, f"{live.url}/api/customers/{ACME}")
    day = dt.date.fromisoformat(after["day"])
    today, month = live.expected(ACME, day)
    assert after["whatsapp_today"] == today
    assert after["snapshot"]["name"] > before["snapshot"]["name"]
    if after["day"] == before["day"]:
        assert today > before["whatsapp_today"]
    # No reload: the page's own refresh (every 2 s here, 60 s by default) brings the new figure.
    expect(page.locator("#whatsapp-today")).to_have_text(formatting.integer(today), timeout=15_000)
    assert page.inner_text("#whatsapp-month") == formatting.integer(month)
    assert page.inner_text("#snapshot-name") == after["snapshot"]["name"]


def test_no_token_or_session_reaches_the_server_log(live: Live):
    log = live.log_path.read_text()
    assert f'"GET /customers/{ACME} HTTP/1.1" 200' in log and '"POST /login HTTP/1.1" 303' in log
    assert "panel sign-in: token " in log  # sign-ins are logged, by token id
    for token in live.tokens.values():
        assert token not in log
    for context in live.contexts:
        for cookie in context.cookies():
            assert cookie["value"] not in log
