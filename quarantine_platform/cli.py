"""`qp`: the platform's command line beside Dagster's own (design.md, "The `qp` command").

The parser is here; each command's work lives in its domain module, imported only when that command
runs, so `qp check` does not pay for Kafka or the panel. A `UserError` becomes one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys

from quarantine_platform import settings
from quarantine_platform.dagster_home import ensure_dagster_home
from quarantine_platform.errors import UserError
from quarantine_platform.exports.formats import FORMATS

# command (or "export <kind>", "token <action>") -> "module:function(args) -> exit code"
HANDLERS = {
    "broker": "quarantine_platform.kafka.broker:run",
    "demo": "quarantine_platform.demo.run:run",
    "export notifications": "quarantine_platform.exports.notifications:run",
    "export billing": "quarantine_platform.exports.billing:run",
    "export invoice-averages": "quarantine_platform.exports.invoices:run",
    "export chatbot": "quarantine_platform.exports.chatbot:run",
    "export quarantine": "quarantine_platform.exports.quarantine:run",
    "check": "quarantine_platform.audience:run_check",
    "filter-audience": "quarantine_platform.audience:run_filter_audience",
    "panel": "quarantine_platform.panel.server:run",
    "token create": "quarantine_platform.panel.tokens:run_create",
    "token revoke": "quarantine_platform.panel.tokens:run_revoke",
    "token list": "quarantine_platform.panel.tokens:run_list",
}


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _month(text: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM)") from None


def _instant(text: str) -> dt.datetime:
    """An ISO date or date-time; without an offset it is read in QP_TIMEZONE."""
    from zoneinfo import ZoneInfo

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date-time (like 2020-02-03T10:00:00-03:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(settings.get("QP_TIMEZONE")))
    return value


def _one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A bad argument of this command is one line on stderr (`qp: error: ...`, exit 2), without the usage."""

    def error(message: str) -> None:
        parser.exit(2, f"qp: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="default: the output's extension, else csv"
    )
    parser.add_argument("--output", default=None, help="file to write (default: standard output)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qp", description="quarantine_platform command line")
    sub = parser.add_subparsers(dest="command", required=True)

    broker = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (development)")
    broker.add_argument("--bootstrap", default=None, help="address to listen on (default QP_KAFKA_BOOTSTRAP)")
    demo = sub.add_parser("demo", help="run the whole platform end to end on embedded defaults")
    demo.add_argument("--messages", type=int, default=1_200_000, help="size of the demo stream")
    demo.add_argument("--day", type=_date, default=None, help="event day (default yesterday)")

    export = sub.add_parser("export", help="export a table Dagster materialized")
    kinds = export.add_subparsers(dest="kind", required=True)
    notifications = _one_line_errors(
        kinds.add_parser("notifications", help="every message of a customer in a window")
    )
    notifications.add_argument("--customer", type=int, required=True)
    notifications.add_argument("--from", dest="start", type=_instant, required=True)
    notifications.add_argument("--to", dest="end", type=_instant, required=True)
    notifications.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    _output_options(notifications)
    billing = _one_line_errors(kinds.add_parser("billing", help="the billing report of a day"))
    billing.add_argument("--date", type=_date, required=True)
    billing.add_argument(
        "--human", action="store_true", help="the seeds' human form: Cliente: ... / Valor: R$ ..."
    )
    _output_options(billing)
    invoices = kinds.add_parser("invoice-averages", help="averages of the 3 and 6 months before a month")
    invoices.add_argument("--month", type=_month, required=True)
    _output_options(invoices)
    chatbot = kinds.add_parser("chatbot", help="the chatbot answers report of a day")
    chatbot.add_argument("--date", type=_date, required=True)
    chatbot.add_argument("--flow", default=None, help="one flow's table (required for csv and xlsx)")
    chatbot.add_argument("--mask", action="append", default=[], metavar="KEY", help="mask this key's values")
    _output_options(chatbot)
    quarantine = kinds.add_parser("quarantine", help="the quarantine table of a load date")
    quarantine.add_argument("--date", type=_date, required=True)
    quarantine.add_argument("--channel", default=None)
    _output_options(quarantine)

    check = sub.add_parser(
        "check", help="is a customer in quarantine? exit 0: may be contacted; 3: in quarantine"
    )
    check.add_argument("customer_id", type=int)
    check.add_argument("--channel", default=None)
    check.add_argument("--date", type=_date, default=None, help="load date (default: the latest)")
    audience = sub.add_parser("filter-audience", help="drop quarantined customers from a campaign audience")
    audience.add_argument("--input", required=True, help="CSV or xlsx with an id_cliente column")
    audience.add_argument("--channel", required=True)
    audience.add_argument("--date", type=_date, default=None, help="load date (default: the latest)")
    audience.add_argument("--output", required=True)

    panel = sub.add_parser("panel", help="serve the customer panel")
    panel.add_argument("--host", default=None, help="default QP_PANEL_HOST")
    panel.add_argument("--port", type=int, default=None, help="default QP_PANEL_PORT")
    panel.add_argument(
        "--secure-cookies",
        action="store_true",
        default=None,
        help="mark the sign-in cookie Secure (behind HTTPS); default QP_PANEL_SECURE_COOKIES",
    )
    token = sub.add_parser("token", help="panel access tokens (stored hashed)")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token; it is printed once")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer", type=int, help="the customer this token may see")
    who.add_argument("--operator", action="store_true", help="the operator view's token")
    create.add_argument("--label", default="", help="a note to recognize the token by")
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    actions.add_parser("list", help="list tokens (ids and owners, never the secrets)")
    return parser


def _handler_key(args: argparse.Namespace) -> str:
    if args.command == "export":
        return f"export {args.kind}"
    if args.command == "token":
        return f"token {args.action}"
    return args.command


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings.apply_defaults()
    ensure_dagster_home()
    module_name, function_name = HANDLERS[_handler_key(args)].split(":")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"qp: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `qp export ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
