"""Invoice averages and the chatbot report: ours (the pure transforms, as the assets call them) vs pandas.

    python benchmarks/invoices_chatbot.py [--rows 10000000] [--quick]

One run generates the data once (cached under benchmarks/out/data-<rows>/): an invoices CSV of --rows rows and
one day of chatbot hourly JSON files holding --rows answers. Then, each side in its own spawned child process
(so its peak RSS, VmHWM, is its own):

- ours: `read_invoices` + `invoice_averages(…, 2020-01)`; `read_chatbot_hour` for each of the 24 hours through
  `read_ahead` (as `chatbot_answers` does: in order, the next files read on the other cores), `chatbot_report`
  of the day (as `chatbot_report` does) and `flow_tables` (every flow's wide table);
- pandas, the same rules written the way the seeds describe them (question 2: keep the months before the
  reference, sum per month, count the months present in each window, null when short, average; question 3:
  load the JSON, one row per key/value, drop empty values, ROW_NUMBER-like "latest per key", first/last time
  per session, then per flow the key/value rows transposed into columns ordered by time). Money in integer
  cents so that truncation to cents is exact.

Both results are compared cell by cell (the invoice table; every flow's wide table including its column
order). Prints seconds, peak RSS and the ratio, and writes benchmarks/out/invoices_chatbot.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import platform
import random
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from quarantine_platform.process_memory import in_fresh_process, peak_rss_mib

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out" / "invoices_chatbot.json"
REFERENCE_MONTH = dt.date(2020, 1, 1)
DAY = dt.date(2019, 12, 16)
FLOWS = 30


# --- data ------------------------------------------------------------------------------------------------


def generate_invoices(path: Path, rows: int, seed: int = 7) -> int:
    """About `rows` invoices: accounts with up to 22 months before 2020-01 (some months missing, some with two
    invoices), amounts in cents; no exact duplicate row (ours rejects those, the seeds' pandas sums them)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    months = 22
    accounts = max(1, rows // months)
    account = np.repeat(np.arange(accounts), months)
    month_index = np.tile(np.arange(months), accounts)
    keep = rng.random(account.size) > 0.04  # a missing month nulls that account's windows
    account, month_index = account[keep], month_index[keep]
    twice = rng.random(account.size) < 0.05  # two invoices in one month
    account = np.concatenate([account, account[twice]])
    month_index = np.concatenate([month_index, month_index[twice]])
    # Even cents for a month's first invoice, odd for its second: the two never make an exact duplicate.
    cents = rng.integers(500, 5_000_000, account.size) * 2
    cents[account.size - int(twice.sum()) :] += 1
    first = 2018 * 12 + 2  # 2018-03
    frame = pl.DataFrame({"a": account, "m": month_index + first, "c": cents}).sample(
        fraction=1.0, shuffle=True, seed=seed
    )
    frame.select(
        pl.format("C{}", pl.col("a") // 3).alias("customer"),
        pl.format("A{}", pl.col("a")).alias("account"),
        pl.date(pl.col("m") // 12, pl.col("m") % 12 + 1, 1).alias("month"),
        pl.format("{}.{}", pl.col("c") // 100, (pl.col("c") % 100).cast(pl.String).str.zfill(2)).alias(
            "invoice"
        ),
    ).write_csv(path)
    return frame.height


def generate_chatbot(folder: Path, answers: int, seed: int = 11) -> tuple[int, int]:
    """One day of hourly files holding about `answers` answers: sessions of FLOWS flows (2-7 keys each) start
    through the day and may run into the next hour; 4% of values are empty, 2% have surrounding blanks, 15% of
    records carry two keys, a key is sometimes answered again (later or at the same second), and each hour's
    records are shuffled in blocks (records come in any order)."""
    rng = random.Random(seed)
    flows = {f"F{f:03d}": [f"k{f}_{j}" for j in range(rng.randint(2, 7))] for f in range(FLOWS)}
    names = list(flows)
    day_dir = folder / f"date={DAY:%Y-%m-%d}"
    day_dir.mkdir(parents=True, exist_ok=True)
    handles = [open(day_dir / f"hour={h:02d}.json", "w", encoding="utf-8") for h in range(24)]  # noqa: SIM115
    pending: list[list[str]] = [[] for _ in range(24)]
    written = [0] * 24
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp()

    def flush(hour: int) -> None:
        block = pending[hour]
        rng.shuffle(block)
        for text in block:
            handles[hour].write(("[\n" if written[hour] == 0 else ",\n") + text)
            written[hour] += 1
        block.clear()

    def value() -> str:
        roll = rng.random()
        if roll < 0.04:
            return ""
        text = f"v{rng.randrange(100_000)}"
        return f"  {text} " if roll < 0.06 else text

    produced = records = 0
    average_keys = sum(len(k) for k in flows.values()) / len(flows)
    sessions = max(1, int(answers / (average_keys * 1.05)))
    starts = sorted(rng.uniform(0, 86_400 - 600) for _ in range(sessions))
    for session, offset in enumerate(starts, start=1):
        flow = names[rng.randrange(FLOWS)]
        customer = f"C{rng.randrange(2_000)}"
        moment = offset
        keys = flows[flow]
        i = 0
        while i < len(keys):
            moment += rng.choice((0, 1, 2, 3, 5, 8, 13, 20))
            content = {keys[i]: value()}
            if i + 1 < len(keys) and rng.random() < 0.15:
                i += 1
                content[keys[i]] = value()
            if rng.random() < 0.05:  # answered again: the latest (or the later at the same second) wins
                i -= 1
            i += 1
            stamp = dt.datetime.fromtimestamp(start + moment, dt.UTC)
            hour = min(stamp.hour, 23) if stamp.date() == DAY else 23
            body = ", ".join(f'"{k}": "{v}"' for k, v in content.items())
            pending[hour].append(
                f'  {{"customer": "{customer}", "flow": "{flow}", "session": "S{session}", '
                f'"timestamp": "{stamp:%Y-%m-%dT%H:%M:%S}+00:00", "content": {{{body}}}}}'
            )
            produced += len(content)
            records += 1
            if len(pending[hour]) >= 20_000:
                flush(hour)
    for hour in range(24):
        flush(hour)
        handles[hour].write("[]\n" if written[hour] == 0 else "\n]\n")
        handles[hour].close()
    return records, produced


def ensure_data(folder: Path, rows: int) -> dict[str, Any]:
    marker = folder / "generated.json"
    if marker.exists():
        return json.loads(marker.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    invoices = generate_invoices(folder / "invoices.csv", rows)
    records, answers = generate_chatbot(folder / "chatbot", rows)
    info = {
        "invoice_rows": invoices,
        "chatbot_records": records,
        "chatbot_answers": answers,
        "invoices_mib": (folder / "invoices.csv").stat().st_size / 2**20,
        "chatbot_mib": sum(p.stat().st_size for p in (folder / "chatbot").rglob("*.json")) / 2**20,
        "generate_s": time.perf_counter() - started,
    }
    marker.write_text(json.dumps(info))
    return info


def hour_files(folder: Path) -> list[Path]:
    return [folder / "chatbot" / f"date={DAY:%Y-%m-%d}" / f"hour={h:02d}.json" for h in range(24)]


# --- ours ------------------------------------------------------------------------------------------------


def ours_invoices(folder: str, result: str) -> dict[str, Any]:
    import polars as pl

    from quarantine_platform.transforms.invoices import invoice_averages, read_invoices

    started = time.perf_counter()
    read = read_invoices(Path(folder) / "invoices.csv")
    table = invoice_averages(read.invoices, REFERENCE_MONTH)
    seconds = time.perf_counter() - started
    table.select(
        "customer",
        "account",
        *((pl.col(c) * 100).cast(pl.Int64).alias(c) for c in table.columns[2:]),
    ).write_parquet(result)
    return {
        "seconds": seconds,
        "rows": table.height,
        "rejected": read.rejected.height,
        "peak_mib": peak_rss_mib(),
    }


def ours_chatbot(folder: str, result: str) -> dict[str, Any]:
    import polars as pl

    from quarantine_platform.transforms.chatbot import (
        chatbot_report,
        flow_tables,
        read_ahead,
        read_chatbot_hour,
    )

    started = time.perf_counter()
    # As chatbot_answers reads a day's hours: in file order, the next files read on the other cores.
    hours = list(
        read_ahead(partial(read_chatbot_hour, path, name=path.name) for path in hour_files(Path(folder)))
    )
    answers = pl.concat([h.answers for h in hours])
    read_s = time.perf_counter() - started
    report = chatbot_report(answers)
    tables = flow_tables(report)
    seconds = time.perf_counter() - started
    _long_from_wide(tables).write_parquet(result)
    return {
        "seconds": seconds,
        "read_s": read_s,
        "answers": answers.height,
        "rejected": sum(h.rejected.height for h in hours),
        "sessions": sum(t.height for t in tables.values()),
        "peak_mib": peak_rss_mib(),
    }


def _long_from_wide(tables: dict[str, Any]) -> Any:
    """Every flow's wide table back to rows (flow, session, ..., column position, key, value) to compare."""
    import polars as pl

    parts = []
    for table in tables.values():
        frame = pl.from_pandas(table) if not isinstance(table, pl.DataFrame) else table
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c in frame.columns)
        keys = frame.columns[5:]
        for position, key in enumerate(keys, start=1):
            parts.append(
                frame.select(
                    *frame.columns[:5],
                    pl.lit(position).alias("column"),
                    pl.lit(key).alias("key"),
                    pl.col(key).alias("value"),
                )
            )
    return pl.concat(parts).sort("flow", "customer", "session", "column")


# --- pandas, the way the seeds describe ------------------------------------------------------------------


def pandas_invoices(folder: str, result: str) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_csv(Path(folder) / "invoices.csv", dtype={"customer": str, "account": str, "invoice": str})
    df["month"] = pd.to_datetime(df["month"], format="%Y-%m-%d")
    df["cents"] = (df["invoice"].astype(float) * 100).round().astype("int64")
    reference = pd.Timestamp(REFERENCE_MONTH)
    # 1. only the records before the reference month
    df = df[df["month"] < reference]
    # 2. one amount per account and month (several invoices in a month are summed)
    monthly = df.groupby(["customer", "account", "month"], as_index=False)["cents"].sum()
    accounts = monthly[["customer", "account"]].drop_duplicates().set_index(["customer", "account"])
    for n in (3, 6):
        # 3. count the months present in the window; 4. null when short, else the average (truncated)
        window = monthly[monthly["month"] >= reference - pd.DateOffset(months=n)]
        stats = window.groupby(["customer", "account"]).agg(
            months=("month", "nunique"), total=("cents", "sum")
        )
        average = np.sign(stats["total"]) * (stats["total"].abs() // n)
        accounts[f"avg_invoices_last_{n}_months"] = average.where(stats["months"] == n).astype("Int64")
    table = accounts.reset_index().sort_values(["customer", "account"], ignore_index=True)
    seconds = time.perf_counter() - started
    table.to_parquet(result, index=False)
    return {"seconds": seconds, "rows": len(table), "peak_mib": peak_rss_mib()}


def pandas_chatbot(folder: str, result: str) -> dict[str, Any]:
    import pandas as pd

    started = time.perf_counter()
    frames = []
    for path in hour_files(Path(folder)):
        # 1. read the data
        with open(path, encoding="utf-8-sig") as handle:
            records = json.load(handle)
        rows = [
            (r["customer"], r["flow"], r["session"], r["timestamp"], path.name, position, index, key, value)
            for position, r in enumerate(records)
            for index, (key, value) in enumerate(r["content"].items())
        ]
        frames.append(
            pd.DataFrame(
                rows,
                columns=[
                    "customer",
                    "flow",
                    "session",
                    "timestamp",
                    "file",
                    "position",
                    "key_index",
                    "key",
                    "value",
                ],
            )
        )
    df = pd.concat(frames, ignore_index=True)
    del frames
    read_s = time.perf_counter() - started
    # 2. drop null and empty answers
    df["value"] = df["value"].str.strip()
    df = df[df["value"].notna() & (df["value"] != "")]
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    # 3. ROW_NUMBER over (customer, flow, session, key) by time: keep the latest (ties: later in file order)
    df = df.sort_values(["timestamp", "file", "position", "key_index"], kind="stable")
    session = ["customer", "flow", "session"]
    latest = df.drop_duplicates([*session, "key"], keep="last")
    # 4. first and last valid answer per conversation
    times = df.groupby(session)["timestamp"].agg(first_answer_dt="min", last_answer_dt="max")
    times = times.apply(lambda c: c.dt.strftime("%Y-%m-%dT%H:%M:%S"))
    # 5. each flow on its own: transpose key/value into columns, ordered by when each key first appeared
    key_order = df.drop_duplicates(["flow", "key"])[["flow", "key"]]
    tables = {}
    for flow, part in latest.groupby("flow", sort=True):
        keys = key_order.loc[key_order["flow"] == flow, "key"].tolist()
        wide = part.pivot(index=session, columns="key", values="value")
        wide = times.join(wide, how="inner")[["first_answer_dt", "last_answer_dt", *keys]]
        tables[flow] = wide.reset_index().sort_values(["customer", "session"], ignore_index=True)
    seconds = time.perf_counter() - started
    _long_from_wide(tables).write_parquet(result)
    return {"seconds": seconds, "read_s": read_s, "answers": int(len(df)), "peak_mib": peak_rss_mib()}


# --- comparison ------------------------------------------------------------------------------------------


def same_result(ours: Path, theirs: Path, sort: list[str]) -> str:
    import polars as pl
    from polars.testing import assert_frame_equal

    a, b = pl.read_parquet(ours).sort(sort), pl.read_parquet(theirs).sort(sort)
    try:
        assert_frame_equal(a, b.cast(dict(a.schema)), check_exact=True)
    except AssertionError as exc:
        return f"DIFFERENT: {str(exc).splitlines()[0]}"
    return f"same ({a.height:,} rows)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="invoice rows and chatbot answers")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200,000 rows")
    parser.add_argument("--only", choices=("invoices", "chatbot"), default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = 200_000 if args.quick else args.rows
    folder = ROOT / "out" / f"data-{rows}"
    sys.path.insert(0, str(ROOT.parent))
    print(f"data: {folder} ({rows:,} rows)", flush=True)
    info = ensure_data(folder, rows)
    print(
        f"  {info['invoice_rows']:,} invoice rows ({info['invoices_mib']:.0f} MiB), "
        f"{info['chatbot_answers']:,} answers in {info['chatbot_records']:,} records "
        f"({info['chatbot_mib']:.0f} MiB, 24 files); generated in {info['generate_s']:.0f} s",
        flush=True,
    )
    results: dict[str, Any] = {"data": info, "rows": rows}
    goals = {"invoices": 3.0, "chatbot": 10.0}
    jobs = {
        "invoices": (ours_invoices, pandas_invoices, ["customer", "account"]),
        "chatbot": (ours_chatbot, pandas_chatbot, ["flow", "customer", "session", "column"]),
    }
    for name, (ours_fn, peer_fn, key) in jobs.items():
        if args.only not in (None, name):
            continue
        ours_file, peer_file = folder / f"{name}.ours.parquet", folder / f"{name}.pandas.parquet"
        print(f"{name}: ours ...", flush=True)
        ours = in_fresh_process(ours_fn, str(folder), str(ours_file))
        print(f"  {ours['seconds']:.2f} s, peak {ours['peak_mib']:.0f} MiB", flush=True)
        print(f"{name}: pandas ...", flush=True)
        peer = in_fresh_process(peer_fn, str(folder), str(peer_file))
        print(f"  {peer['seconds']:.2f} s, peak {peer['peak_mib']:.0f} MiB", flush=True)
        results[name] = {
            "ours": ours,
            "pandas": peer,
            "ratio": peer["seconds"] / ours["seconds"],
            "goal": goals[name],
            "check": same_result(ours_file, peer_file, key),
        }
    print()
    header = ("", "ours s", "pandas s", "ratio", "goal", "ours MiB", "pandas MiB")
    print("{:10} {:>9} {:>9} {:>7} {:>5} {:>9} {:>10}  result".format(*header))
    for name in jobs:
        if name in results:
            r = results[name]
            ours, peer = r["ours"], r["pandas"]
            print(
                f"{name:10} {ours['seconds']:9.2f} {peer['seconds']:9.2f} {r['ratio']:6.1f}x"
                f" {r['goal']:4.0f}x {ours['peak_mib']:9.0f} {peer['peak_mib']:10.0f}  {r['check']}"
            )
    results["machine"] = {
        "cpus": mp.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten: {args.out}")
    return 0 if all("same" in results[n]["check"] for n in jobs if n in results) else 1


if __name__ == "__main__":
    sys.exit(main())
