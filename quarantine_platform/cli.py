"""`qp`: the platform's command line beside Dagster's own."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from quarantine_platform import settings
from quarantine_platform.dagster_home import ensure_dagster_home


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qp", description="quarantine_platform command line")
    sub = parser.add_subparsers(dest="command", required=True)
    broker = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (development)")
    broker.add_argument("--bootstrap", default=None, help="address to listen on (default QP_KAFKA_BOOTSTRAP)")
    demo = sub.add_parser("demo", help="run the whole platform end to end on embedded defaults")
    demo.add_argument("--messages", type=int, default=1_200_000, help="size of the demo stream")
    demo.add_argument("--day", type=dt.date.fromisoformat, default=None, help="event day (default yesterday)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings.apply_defaults()
    ensure_dagster_home()
    if args.command == "broker":
        from quarantine_platform.kafka.broker import serve

        serve(args.bootstrap or settings.get("QP_KAFKA_BOOTSTRAP"))
        return 0
    if args.command == "demo":
        from quarantine_platform.demo.run import run_demo

        return run_demo(args.messages, args.day)
    return 2


if __name__ == "__main__":
    sys.exit(main())
