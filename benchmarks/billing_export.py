"""Billing and export benchmark: a day of bronze notifications, billed and exported, ours against pandas.

    python benchmarks/billing_export.py [--rows 100000000] [--peer-rows 30000000] [--keep DIR]

One run:
1. generates a day of bronze files (the lake's own commits, 400,000 messages per file over 4 partitions, as
   ingestion writes them): ~300 customers, one large customer with --big-share of the day (30%), ~1% re-sends
   of an earlier message (same message_id, customer, channel, payload; later time, any partition), channels
   Whatsapp 80% / WhatsApp 5% / SMS 10% / Email 5%;
2. billing, each side in its own child process (peak RSS = VmHWM):
   ours   `whatsapp_day_counts` + `bill_day` over `scan_window_parts` of the day's bronze files (what the
          billing asset runs); the rows per (customer, channel, name) of the files inside the day come from
          their footers, written at commit: that cost is measured apart (`footer_totals_cost`);
   pandas `read_parquet` of the columns needed, sort by (event_time, partition, offset), `drop_duplicates` on
          message_id (first copy), WhatsApp filter (case-insensitive), `groupby` size and latest name, price;
   both results must be equal;
3. the detailed export of the large customer's day to CSV, each side in its own child:
   ours   `plan_report` + `write_notifications_report`, twice: first from bronze (no report day: three passes,
          streamed slices, sink), then from the day's report day (`notification_report_days`, made in between
          by `ReportDays.compact` as the nightly asset does, timed on its own: it is not part of an export);
   pandas `read_parquet` with the customer and time filters pushed down, sort, `drop_duplicates`, `to_csv`;
   both files must be byte-identical (pandas against ours from the report day);
   ours is also run on a quarter of the day (6 hours), to show memory staying flat as rows grow, and, on the
   day pandas runs on, to the other --formats (parquet, json lines) to show what each writer costs.

pandas holds the whole day in memory (~280 MiB per million messages here), so it cannot run a 100-million
day on a 24 GiB machine: when --rows is above --peer-rows, steps 1-3 run twice, ours alone on --rows and
both sides on a day of --peer-rows messages (the ratios come from that day).

Prints seconds, rows/s, peak MiB and the ratios; writes benchmarks/out/billing_export.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quarantine_platform.process_memory import in_fresh_process, peak_rss_mib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DAY = dt.date(2026, 11, 20)
TOPIC = "notifications"
BIG_CUSTOMER = 1395131  # the demo's first customer; priced in data/pricing.csv
CUSTOMERS = 300
PARTITIONS = 4
FILE_ROWS = 400_000  # QP_INGEST_CHUNK_MESSAGES' default: one bronze file per ingestion chunk
CHANNELS = ["Whatsapp", "WhatsApp", "SMS", "Email"]
PAYLOADS = [
    "Olá cliente, seja muito bem-vindo! Precisa de alguma ajuda? Protocolo ",
    "Não identificamos a sua última mensagem. Por favor, entre em contato. Protocolo ",
    "Seu pedido saiu para entrega, acompanhe pelo código ",
    "Seu código de verificação é ",
    "Lembrete: sua fatura vence amanhã, boleto ",
]
OUT = Path(__file__).resolve().parent / "out" / "billing_export.json"
_MASK = (1 << 64) - 1


# --- process helpers ---------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads): steadier than wall seconds on a
    machine shared with other jobs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def day_window() -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)


# --- the generated day -------------------------------------------------------------------------------------


def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of each sequence number: a deterministic pseudo-random value per message."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & _MASK)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _unit(x: np.ndarray, salt: int) -> np.ndarray:
    return (_mix(x, salt) >> np.uint64(11)).astype(np.float64) / float(2**53)


def customers(big_share: float) -> tuple[list[int], list[str], np.ndarray]:
    rnd = np.random.default_rng(7)
    others = rnd.choice(np.arange(1_000_000, 9_999_999), CUSTOMERS - 1, replace=False).tolist()
    tail = np.array([1.0 / (i + 1) ** 0.8 for i in range(CUSTOMERS - 1)])
    weights = np.concatenate([[big_share], (1 - big_share) * tail / tail.sum()])
    names = ["Acme"] + [f"Cliente {i:03d}" for i in range(1, CUSTOMERS)]
    return [BIG_CUSTOMER, *others], names, np.cumsum(weights)


def generate(root: str, rows: int, big_share: float, resend_rate: float) -> dict[str, Any]:
    """Commit a day of `rows` messages to the lake at `root`; message n's event time rises with n."""
    import polars as pl

    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.transforms.notifications import DEAD_LETTERS_SCHEMA, EVENTS_SCHEMA

    started = time.perf_counter()
    lake = NotificationLake(root)
    ids, names, cdf = customers(big_share)
    start_us = int(day_window()[0].timestamp() * 1_000_000)
    step_us = 86_400_000_000 / rows
    next_offset = [0] * PARTITIONS
    no_dead_letters = pl.DataFrame(schema=DEAD_LETTERS_SCHEMA)
    for i in range(math.ceil(rows / FILE_ROWS)):
        seq = np.arange(i * FILE_ROWS, min(rows, (i + 1) * FILE_ROWS), dtype=np.int64)
        back = (_unit(seq, 2) * 500_000).astype(
            np.int64
        ) + 1  # a re-send repeats a message up to ~7 min older
        origin = np.where((_unit(seq, 1) < resend_rate) & (seq >= back), seq - back, seq)
        customer = np.minimum(np.searchsorted(cdf, _unit(origin, 3), side="right"), CUSTOMERS - 1)
        draw = _unit(origin, 4)
        channel = np.select([draw < 0.80, draw < 0.85, draw < 0.95], [0, 1, 2], 3)
        kind = (_mix(origin, 5) % np.uint64(len(PAYLOADS))).astype(np.int64)
        code = (_mix(origin, 6) % np.uint64(1_000_000_000)).astype(np.int64)
        event_us = (start_us + (seq * step_us).astype(np.int64)) // 1000 * 1000
        partition = i % PARTITIONS
        frame = pl.DataFrame(
            {
                "topic": TOPIC,
                "partition": pl.Series([partition] * len(seq), dtype=pl.Int32),
                "offset": np.arange(len(seq), dtype=np.int64) + next_offset[partition],
                "customer_id": np.asarray(ids, dtype=np.int64)[customer],
                "message_id": pl.Series(origin).cast(pl.String).str.zfill(12),
                "customer_name": pl.Series(names).gather(pl.Series(customer)),
                "channel": pl.Series(CHANNELS).gather(pl.Series(channel)),
                "payload": pl.Series(PAYLOADS).gather(pl.Series(kind)) + pl.Series(code).cast(pl.String),
                "event_time": pl.Series(event_us).cast(pl.Datetime("us", "UTC")),
            }
        ).with_columns(event_datetime=pl.col("event_time").dt.to_string("%Y-%m-%dT%H:%M:%S%.3f+00:00"))
        frame = frame.select(EVENTS_SCHEMA.names()).match_to_schema(EVENTS_SCHEMA)
        end = next_offset[partition] + frame.height
        lake.commit(TOPIC, partition, next_offset[partition], end, frame, no_dead_letters)
        next_offset[partition] = end
    size = sum(p.stat().st_size for p in lake.events_dir(TOPIC).glob("*.parquet"))
    return {
        "rows": rows,
        "files": math.ceil(rows / FILE_ROWS),
        "bytes": size,
        "seconds": time.perf_counter() - started,
    }


def footer_totals_cost(root: str, sample: int = 8) -> dict[str, Any]:
    """What the footer totals (rows per customer, channel, name; billing adds them up instead of reading
    those columns) cost ingestion: `customer_rows_json` timed on `sample` of the day's files, as committed,
    and extrapolated to the day. Paid once per file at commit, not at billing time."""
    import polars as pl

    from quarantine_platform.storage.notification_lake import NotificationLake, customer_rows_json
    from quarantine_platform.transforms.notifications import EVENTS_SCHEMA

    lake = NotificationLake(root)
    committed = lake.committed(TOPIC)
    chosen = committed[:: max(1, len(committed) // sample)][:sample]
    frames = [pl.read_parquet(c.path, columns=list(EVENTS_SCHEMA.names())) for c in chosen]
    cpu = time.process_time()
    for frame in frames:
        customer_rows_json(frame)
    per_file = (time.process_time() - cpu) / len(frames)
    return {
        "files_timed": len(frames),
        "cpu_ms_per_file": round(per_file * 1000, 1),
        "rows_per_file": frames[0].height,
        "cpu_seconds_for_the_day": round(per_file * len(committed), 2),
    }


# --- billing -----------------------------------------------------------------------------------------------


def ours_billing(root: str, pricing_csv: str) -> dict[str, Any]:
    import polars as pl

    from quarantine_platform.storage.bronze_window import bronze_files, scan_window_parts
    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.transforms.billing import bill_day, load_pricing, whatsapp_day_counts

    baseline = peak_rss_mib()
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    files = bronze_files(NotificationLake(root), TOPIC)
    start, end = day_window()
    rows = bill_day(
        whatsapp_day_counts(scan_window_parts(files, start, end), DAY, "UTC"), load_pricing(pricing_csv), DAY
    )
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    rows.write_parquet(f"{root}.billing_ours.parquet")
    return {
        "seconds": seconds,
        "cpu_seconds": round(cpu, 2),
        "peak_mib": peak_rss_mib(),
        "baseline_mib": baseline,
        "customers": rows.height,
        "notifications": int(rows["notifications"].sum()),
        "value_brl": str(rows["value_brl"].sum()),
        "polars": pl.__version__,
    }


def pandas_billing(root: str, pricing_csv: str) -> dict[str, Any]:
    """The same day's billing as a pandas user writes it."""
    from decimal import ROUND_HALF_UP, Decimal

    import pandas as pd

    baseline = peak_rss_mib()
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    start, end = day_window()
    events = pd.read_parquet(
        Path(root) / "notification_events" / f"topic={TOPIC}",
        columns=[
            "partition",
            "offset",
            "customer_id",
            "message_id",
            "customer_name",
            "channel",
            "event_time",
        ],
        filters=[("event_time", ">=", start), ("event_time", "<", end)],
    )
    events = events.sort_values(["event_time", "partition", "offset"], kind="stable")
    names = events.groupby("customer_id")["customer_name"].last()
    firsts = events.drop_duplicates("message_id", keep="first")
    whatsapp = firsts[firsts["channel"].str.lower() == "whatsapp"]
    counts = whatsapp.groupby("customer_id").size().rename("notifications").reset_index()
    prices = pd.read_csv(pricing_csv, dtype=str)
    default = Decimal(prices.loc[prices["customer_id"] == "*", "unit_price_brl"].iloc[0])
    per_customer = {
        int(c): Decimal(p)
        for c, p in zip(prices["customer_id"], prices["unit_price_brl"], strict=True)
        if c != "*"
    }
    counts["customer_name"] = counts["customer_id"].map(names)
    counts["unit_price_brl"] = [per_customer.get(c, default) for c in counts["customer_id"]]
    counts["value_brl"] = [
        (n * p).quantize(Decimal("0.01"), ROUND_HALF_UP)
        for n, p in zip(counts["notifications"], counts["unit_price_brl"], strict=True)
    ]
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    counts.to_pickle(f"{root}.billing_pandas.pkl")
    return {
        "seconds": seconds,
        "cpu_seconds": round(cpu, 2),
        "peak_mib": peak_rss_mib(),
        "baseline_mib": baseline,
        "customers": len(counts),
        "notifications": int(counts["notifications"].sum()),
        "value_brl": str(sum(counts["value_brl"], Decimal(0))),
        "pandas": pd.__version__,
    }


def same_billing(root: str) -> bool:
    import pandas as pd
    import polars as pl

    ours = pl.read_parquet(f"{root}.billing_ours.parquet").sort("customer_id")
    theirs = pd.read_pickle(f"{root}.billing_pandas.pkl").sort_values("customer_id")
    return (
        ours["customer_id"].to_list() == theirs["customer_id"].tolist()
        and ours["notifications"].to_list() == theirs["notifications"].tolist()
        and ours["customer_name"].to_list() == theirs["customer_name"].tolist()
        and [str(v) for v in ours["value_brl"].to_list()] == [str(v) for v in theirs["value_brl"]]
    )


# --- export ------------------------------------------------------------------------------------------------


def ours_export(root: str, hours: int, output: str, fmt: str = "csv") -> dict[str, Any]:
    from quarantine_platform.exports.notifications import (
        ReportDayRange,
        plan_report,
        report_frame,
        write_notifications_report,
    )

    baseline = peak_rss_mib()
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    start = day_window()[0]
    plan = plan_report(root, TOPIC, BIG_CUSTOMER, start, start + dt.timedelta(hours=hours), "UTC")
    rows = write_notifications_report(report_frame(plan), fmt, output)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": round(cpu, 2),
        "peak_mib": peak_rss_mib(),
        "baseline_mib": baseline,
        "bytes": os.path.getsize(output),
        "read_from": "report day" if all(isinstance(p, ReportDayRange) for p in plan.parts) else "bronze",
    }


def ours_report_day(root: str) -> dict[str, Any]:
    """The day's report day, as the `notification_report_days` asset makes it after the day closes."""
    from quarantine_platform.storage.bronze_window import bronze_files
    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.storage.report_days import ReportDays

    started = time.perf_counter()
    cpu_started = cpu_seconds()
    store = ReportDays(root)
    info = store.compact(TOPIC, DAY, "UTC", bronze_files(NotificationLake(root), TOPIC))
    return {
        "rows": info.rows,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": round(cpu_seconds() - cpu_started, 2),
        "peak_mib": peak_rss_mib(),
        "bytes": os.path.getsize(store.path(TOPIC, DAY)),
    }


def drop_report_day(root: str) -> None:
    from quarantine_platform.storage.report_days import ReportDays

    ReportDays(root).path(TOPIC, DAY).unlink(missing_ok=True)


def pandas_export(root: str, hours: int, output: str) -> dict[str, Any]:
    import pandas as pd

    baseline = peak_rss_mib()
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    start = day_window()[0]
    events = pd.read_parquet(
        Path(root) / "notification_events" / f"topic={TOPIC}",
        columns=[
            "partition",
            "offset",
            "customer_id",
            "message_id",
            "customer_name",
            "payload",
            "event_datetime",
            "event_time",
        ],
        filters=[
            ("customer_id", "==", BIG_CUSTOMER),
            ("event_time", ">=", start),
            ("event_time", "<", start + dt.timedelta(hours=hours)),
        ],
    )
    events = events.sort_values(["event_time", "partition", "offset"], kind="stable")
    events = events.drop_duplicates("message_id", keep="first")
    columns = ["customer_id", "customer_name", "message_id", "payload", "event_datetime"]
    events.to_csv(output, columns=columns, index=False)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    return {
        "rows": len(events),
        "seconds": seconds,
        "cpu_seconds": round(cpu, 2),
        "peak_mib": peak_rss_mib(),
        "baseline_mib": baseline,
        "bytes": os.path.getsize(output),
    }


def md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# --- main --------------------------------------------------------------------------------------------------


def run_scale(work: Path, rows: int, args: argparse.Namespace, with_pandas: bool) -> dict[str, Any]:
    """Generate a day of `rows` messages (unless kept from an earlier run) and measure it."""
    root = str(work / f"lake_{rows}")
    pricing_csv = str(Path(__file__).resolve().parents[1] / "data" / "pricing.csv")
    results: dict[str, Any] = {"rows": rows}

    def step(name: str, fn: Callable[..., dict[str, Any]], *fn_args: Any) -> None:
        print(f"[{rows:,} rows] {name} ...", flush=True)
        results[name] = in_fresh_process(fn, *fn_args)
        print(f"  {results[name]}", flush=True)

    if not Path(root).exists():
        step("generated", generate, root, rows, args.big_share, args.resend_rate)
    step("footer_totals_cost", footer_totals_cost, root)
    step("billing_ours", ours_billing, root, pricing_csv)
    if with_pandas:
        step("billing_pandas", pandas_billing, root, pricing_csv)
        results["billing_equal"] = same_billing(root)
    drop_report_day(root)  # kept from an earlier run: first the export from bronze alone
    for hours in (6, 24):
        output = str(work / f"export_bronze_{hours}h.csv")
        step(f"export_bronze_{hours}h", ours_export, root, hours, output)
        os.unlink(output)
    step("report_day", ours_report_day, root)
    for hours in (6, 24):
        output = str(work / f"export_ours_{hours}h.csv")
        step(f"export_ours_{hours}h", ours_export, root, hours, output)
        if hours == 24 and with_pandas:
            theirs = str(work / "export_pandas_24h.csv")
            step("export_pandas_24h", pandas_export, root, hours, theirs)
            results["export_identical"] = md5(output) == md5(theirs)
            os.unlink(theirs)
        os.unlink(output)
    if with_pandas:  # the other formats, ours only, on the day pandas also runs on
        for fmt in filter(None, args.formats.split(",")):
            output = str(work / f"export_ours_24h.{fmt}")
            step(f"export_ours_24h_{fmt}", ours_export, root, 24, output, fmt)
            os.unlink(output)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000_000, help="messages in the generated day")
    parser.add_argument(
        "--peer-rows",
        type=int,
        default=30_000_000,
        help="largest day pandas is run on (it holds the whole day: ~280 MiB per million rows); above it, "
        "ours and pandas are also compared on a day of this size",
    )
    parser.add_argument("--big-share", type=float, default=0.3, help="the large customer's share of the day")
    parser.add_argument("--resend-rate", type=float, default=0.01)
    parser.add_argument(
        "--keep", default=None, help="work folder to keep (default: a temporary one, removed)"
    )
    parser.add_argument(
        "--formats",
        default="parquet,json",
        help="other formats of the whole-day export to time (ours only, on the --peer-rows day); "
        "xlsx is possible but slow",
    )
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    work = Path(args.keep or tempfile.mkdtemp(prefix="qp-bench-billing-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "args": vars(args),
        "scales": [],
    }
    try:
        scales = [args.rows] if args.rows <= args.peer_rows else [args.rows, args.peer_rows]
        for rows in scales:
            results["scales"].append(run_scale(work, rows, args, with_pandas=rows <= args.peer_rows))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    for scale in results["scales"]:
        report(scale)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(f"written to {args.out}")
    return 0


def _line(label: str, rows: int, r: dict[str, Any]) -> str:
    return (
        f"{label:22s} {rows:>13,} rows {r['seconds']:8.2f} s {rows / r['seconds']:>12,.0f} rows/s "
        f"peak {r['peak_mib']:7.0f} MiB, CPU {r.get('cpu_seconds', float('nan')):6.2f} s"
    )


def report(results: dict[str, Any]) -> None:
    rows = results["rows"]
    print(f"\n--- a day of {rows:,} messages ---")
    print(_line("billing ours", rows, results["billing_ours"]))
    if "footer_totals_cost" in results:
        cost = results["footer_totals_cost"]
        print(
            f"  + at commit (ingestion), footer totals: {cost['cpu_ms_per_file']} CPU-ms per file of "
            f"{cost['rows_per_file']:,} rows, {cost['cpu_seconds_for_the_day']} CPU-s for the day"
        )
    if "billing_pandas" in results:
        print(_line("billing pandas", rows, results["billing_pandas"]))
        speed = results["billing_pandas"]["seconds"] / results["billing_ours"]["seconds"]
        print(f"billing ours vs pandas: {speed:.1f}x faster; results equal: {results['billing_equal']}")
    for key in ("export_bronze_6h", "export_bronze_24h"):
        if key in results:
            print(_line(key.replace("_", " "), results[key]["rows"], results[key]) + " (no report day)")
    if "report_day" in results:
        made = results["report_day"]
        print(_line("report day", made["rows"], made) + f", {made['bytes'] / 2**20:,.0f} MiB (nightly)")
    exports = [k for k in results if k.startswith("export_ours_24h_")]
    for key in ("export_ours_6h", "export_ours_24h", "export_pandas_24h", *exports):
        if key in results:
            print(_line(key.replace("_", " "), results[key]["rows"], results[key]))
    if "export_pandas_24h" in results:
        speed = results["export_pandas_24h"]["seconds"] / results["export_ours_24h"]["seconds"]
        print(f"export ours vs pandas: {speed:.1f}x faster; files identical: {results['export_identical']}")


if __name__ == "__main__":
    sys.exit(main())
