"""The panel's web app (Starlette): sign-in, a page per customer, the operator view, the JSON API and the
downloads, all over the published snapshots (never the warehouse).

Access: a request acts for the token behind its session cookie (set by `POST /login`) or its
`Authorization: Bearer` header. A customer token sees only its own customer: any other customer's page,
report, billing or API, and the operator's, answers 404, the same as a customer that does not exist, so
nothing tells them apart. Without a session, pages redirect to /login and the API answers 401. Tokens only
travel in POST bodies and headers, never in URLs, so no access log holds one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import write_table
from quarantine_platform.exports.notifications import (
    EXPORT_SCHEMA,
    notifications_report,
    write_notifications_report,
)
from quarantine_platform.panel import charts, formatting
from quarantine_platform.panel.snapshots import SnapshotCache
from quarantine_platform.panel.token_store import SESSION_HOURS, Principal, TokenStore
from quarantine_platform.panel.views import customer_view, operator_view, to_json
from quarantine_platform.storage.panel_snapshot import Snapshot, SnapshotStore
from quarantine_platform.transforms.panel import BILLING_SCHEMA

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "qp_session"
REPORT_FORMATS = (("csv", "CSV"), ("xlsx", "Excel"), ("parquet", "Parquet"), ("json", "JSON"))
REPORT_MEDIA = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "json": ("application/x-ndjson", "jsonl"),
}
STATIC_FILES = {"panel.css": "text/css; charset=utf-8"}
MAX_FORM_BYTES = 4096
STALE_SECONDS = 300  # the operator view flags a snapshot older than this

log = logging.getLogger("quarantine_platform.panel")


class SignInRequired(Exception):
    pass


class NotFound(Exception):
    pass


class BadRequest(Exception):
    pass


@dataclass(frozen=True)
class PanelSettings:
    lake_root: str
    topic: str
    timezone: str
    refresh_seconds: int = 60
    report_max_days: int = 31
    secure_cookies: bool = False


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(STATIC), autoescape=select_autoescape(["html"]))
    env.filters.update(
        integer=formatting.integer,
        money=formatting.money,
        date=formatting.date,
        month=formatting.month,
        instant=formatting.instant,
        duration=formatting.duration,
    )
    return env


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


class SecurityHeaders:
    """Headers on every answer: nothing cached (figures are per customer), no framing, no sniffing, and a
    policy that allows only this origin's own stylesheet (the pages have no script)."""

    HEADERS = [
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (
            b"content-security-policy",
            b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            b"frame-ancestors 'none'; base-uri 'none'",
        ),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.HEADERS if k not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    snapshot_root: str | Path,
    token_store: TokenStore,
    lake_root: str,
    topic: str = "notifications",
    timezone: str = "UTC",
    refresh_seconds: int = 60,
    report_max_days: int = 31,
    secure_cookies: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
) -> Starlette:
    """The panel over the snapshots under `snapshot_root`, with the tokens of `token_store`; reports read
    the bronze under `lake_root`. `secure_cookies` marks the session cookie Secure (serve over HTTPS)."""
    cfg = PanelSettings(lake_root, topic, timezone, refresh_seconds, report_max_days, secure_cookies)
    cache = SnapshotCache(SnapshotStore(snapshot_root))
    templates = _environment()
    now = clock or (lambda: dt.datetime.now(dt.UTC))

    def render(
        name: str, status: int = 200, principal: Principal | None = None, refresh: bool = False, **context
    ) -> Response:
        html = templates.get_template(name).render(
            principal=principal, refresh_seconds=cfg.refresh_seconds if refresh else None, **context
        )
        return Response(html, status_code=status, media_type="text/html; charset=utf-8")

    # --- who is asking -------------------------------------------------------------------------------------

    def principal_of(request: Request) -> Principal | None:
        authorization = request.headers.get("authorization", "")
        if authorization:
            scheme, _, secret = authorization.partition(" ")
            return token_store.authenticate(secret.strip()) if scheme.lower() == "bearer" else None
        session_id = request.cookies.get(SESSION_COOKIE, "")
        return token_store.session_principal(session_id) if session_id else None

    def require(request: Request, customer_id: int | None = None, operator: bool = False) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise SignInRequired
        if operator and not principal.is_operator:
            raise NotFound
        if customer_id is not None and not principal.may_see(customer_id):
            raise NotFound
        return principal

    def snapshot_or_none() -> Snapshot | None:
        return cache.get()

    # --- sign-in -------------------------------------------------------------------------------------------

    def home(request: Request) -> Response:
        principal = principal_of(request)
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        target = "/operator" if principal.is_operator else f"/customers/{principal.customer_id}"
        return RedirectResponse(target, status_code=303)

    def login_form(request: Request) -> Response:
        return render("login.html")

    async def login(request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            raise BadRequest("formulário grande demais")
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("formulário grande demais")
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        secret = (form.get("token") or [""])[0].strip()
        principal = await run_in_threadpool(token_store.authenticate, secret)
        if principal is None:
            log.info("panel sign-in refused (unknown or revoked token)")
            return render("login.html", status=401, error="Token inválido ou revogado.")
        session_id = await run_in_threadpool(token_store.open_session, principal)
        log.info("panel sign-in: token %s (%s)", principal.token_id, _owner(principal))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=SESSION_HOURS * 3600,
            path="/",
            httponly=True,
            samesite="strict",
            secure=cfg.secure_cookies,
        )
        return response

    def logout(request: Request) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if session_id:
            token_store.close_session(session_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=cfg.secure_cookies
        )
        return response

    # --- pages ---------------------------------------------------------------------------------------------

    def customer_page(request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        principal = require(request, customer_id)
        snapshot = snapshot_or_none()
        if snapshot is None:
            return _no_snapshot_page(principal)
        view = customer_view(snapshot, customer_id, now())
        if not view["known"] and principal.is_operator:
            raise NotFound
        zone = ZoneInfo(snapshot.meta["timezone"])
        day_start = _meta_instant(snapshot, "day_start", zone)
        as_of = view["last_update"]
        return render(
            "customer.html",
            principal=principal,
            refresh=True,
            v=view,
            snapshot=view["snapshot"],
            minutes_chart=charts.minutes_chart(
                view["minutes"]["start"], view["minutes"]["end"], view["minutes"]["series"]
            ),
            billing_chart=charts.billing_chart(
                view["billing"]["start"], view["billing"]["end"], view["billing"]["days"]
            ),
            formats=REPORT_FORMATS,
            report_today=(
                {"from": formatting.instant(day_start), "to": formatting.instant(as_of)} if as_of else None
            ),
            report_form={
                "from": f"{day_start:%Y-%m-%dT%H:%M}" if day_start else "",
                "to": f"{as_of:%Y-%m-%dT%H:%M}" if as_of else "",
            },
        )

    def operator_page(request: Request) -> Response:
        principal = require(request, operator=True)
        snapshot = snapshot_or_none()
        if snapshot is None:
            return _no_snapshot_page(principal)
        view = operator_view(snapshot, now())
        return render(
            "operator.html",
            principal=principal,
            refresh=True,
            v=view,
            snapshot=view["snapshot"],
            stale_seconds=STALE_SECONDS,
        )

    def _no_snapshot_page(principal: Principal) -> Response:
        return render(
            "message.html",
            principal=principal,
            refresh=True,
            heading="Ainda sem dados",
            text="Nenhum painel foi publicado ainda: ele aparece após a primeira contagem de minutos "
            "(asset notification_panel).",
        )

    # --- JSON API ------------------------------------------------------------------------------------------

    def api_customer(request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        principal = require(request, customer_id)
        snapshot = snapshot_or_none()
        if snapshot is None:
            return JSONResponse({"error": "no panel snapshot published yet"}, status_code=503)
        view = customer_view(snapshot, customer_id, now())
        if not view["known"] and principal.is_operator:
            raise NotFound
        return JSONResponse(to_json(view))

    def api_operator(request: Request) -> Response:
        require(request, operator=True)
        snapshot = snapshot_or_none()
        if snapshot is None:
            return JSONResponse({"error": "no panel snapshot published yet"}, status_code=503)
        return JSONResponse(to_json(operator_view(snapshot, now())))

    # --- downloads -----------------------------------------------------------------------------------------

    def report(request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        require(request, customer_id)
        params = request.query_params
        fmt = params.get("format", "csv")
        if fmt not in REPORT_MEDIA:
            raise BadRequest(f"formato desconhecido {fmt!r}: use csv, xlsx, parquet ou json")
        start = _query_instant(params.get("from"), "from", cfg.timezone)
        end = _query_instant(params.get("to"), "to", cfg.timezone)
        if end <= start:
            raise BadRequest("'to' deve ser depois de 'from'")
        if end - start > dt.timedelta(days=cfg.report_max_days):
            raise BadRequest(f"o período vai até {cfg.report_max_days} dias; use `qp export notifications`")
        media_type, extension = REPORT_MEDIA[fmt]
        try:
            frame = notifications_report(cfg.lake_root, cfg.topic, customer_id, start, end, cfg.timezone)
        except UserError:  # no message of this customer in the window: an empty report, not an error
            frame = pl.LazyFrame(schema=EXPORT_SCHEMA)
        name = f"notificacoes_{customer_id}_{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}.{extension}"
        response, rows = _download(
            lambda path: write_notifications_report(frame, fmt, path), name, media_type
        )
        log.info("panel report: customer %s, %s rows, %s", customer_id, rows, fmt)
        return response

    def billing_csv(request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        require(request, customer_id)
        snapshot = snapshot_or_none()
        billing = snapshot.table("billing") if snapshot else pl.DataFrame(schema=BILLING_SCHEMA)
        rows = billing.filter(pl.col("customer_id") == customer_id).sort("date")
        response, _ = _download(
            lambda path: write_table(rows, "csv", path),
            f"cobranca_{customer_id}.csv",
            "text/csv; charset=utf-8",
        )
        return response

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            raise NotFound
        return FileResponse(
            STATIC / name, media_type=STATIC_FILES[name], headers={"cache-control": "max-age=300"}
        )

    def healthz(request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    def favicon(request: Request) -> Response:
        return Response(status_code=204)

    # --- errors --------------------------------------------------------------------------------------------

    def sign_in_required(request: Request, exc: Exception) -> Response:
        if _is_api(request):
            return JSONResponse(
                {"error": "sign in: a session cookie or an Authorization: Bearer token is required"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        return RedirectResponse("/login", status_code=303)

    def not_found(request: Request, exc: Exception) -> Response:
        if _is_api(request):
            return JSONResponse({"error": "not found"}, status_code=404)
        return render("message.html", status=404, heading="Não encontrado", text="Esta página não existe.")

    def bad_request(request: Request, exc: Exception) -> Response:
        if _is_api(request):
            return JSONResponse({"error": str(exc)}, status_code=400)
        return render("message.html", status=400, heading="Pedido inválido", text=str(exc))

    def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return not_found(request, exc)
        if _is_api(request):
            return JSONResponse({"error": exc.detail if isinstance(exc, HTTPException) else "error"}, status)
        return render("message.html", status=status, heading="Erro", text=str(getattr(exc, "detail", "")))

    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/customers/{customer_id:int}", customer_page),
        Route("/customers/{customer_id:int}/report", report),
        Route("/customers/{customer_id:int}/billing.csv", billing_csv),
        Route("/operator", operator_page),
        Route("/api/customers/{customer_id:int}", api_customer),
        Route("/api/operator", api_operator),
        Route("/static/{name}", static),
        Route("/healthz", healthz),
        Route("/favicon.ico", favicon),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            SignInRequired: sign_in_required,
            NotFound: not_found,
            BadRequest: bad_request,
            HTTPException: http_error,
        },
    )
    app.router.redirect_slashes = False  # one spelling per resource: anything else is 404, never a redirect
    app.add_middleware(SecurityHeaders)
    return app


def _download(write: Callable[[str], int], filename: str, media_type: str) -> tuple[Response, int]:
    """Write a download to a private temporary file (the export writers stream to files in bounded memory),
    then stream that file to the client and delete it once sent."""
    folder = tempfile.mkdtemp(prefix="qp-panel-")
    path = os.path.join(folder, filename)
    try:
        rows = write(path)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    background = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    return FileResponse(path, media_type=media_type, filename=filename, background=background), rows


def _owner(principal: Principal) -> str:
    return "operator" if principal.is_operator else f"customer {principal.customer_id}"


def _meta_instant(snapshot: Snapshot, key: str, zone: ZoneInfo) -> dt.datetime | None:
    value = snapshot.meta.get(key)
    return dt.datetime.fromisoformat(value).astimezone(zone) if value else None


def _query_instant(text: str | None, name: str, timezone: str) -> dt.datetime:
    """An ISO date or date-time from the query; without an offset it is read in the panel's time zone."""
    if not text:
        raise BadRequest(f"falta o parâmetro '{name}' (data ou data-hora ISO)")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"'{name}' não é uma data-hora ISO: {text[:40]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value
