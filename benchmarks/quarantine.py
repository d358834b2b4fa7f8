"""Quarantine benchmark: the table from six sources, and filtering a campaign audience; ours against PySpark
(local mode) and pandas, on the same generated data, in one run.

    python benchmarks/quarantine.py [--rows 2000000] [--audience 10000000] [--skip-spark]

1. The table. Six standardized source snapshots of --rows rows each (the Parquet files the source assets
   write; CRM as 4 workbook snapshots, fraud with ~30% removed rows) into one load date's table:
   - ours: `load_sources` + `quarantine_on` (the asset's code) and `replace_load_dates` (the load date's
     Parquet file beside the DuckDB warehouse, published to the view quarantine_global in one transaction);
   - PySpark: the seed's job (per-source filters, union) with the design's rules: sends after D ignored,
     fraud liveness, the CRM snapshot of D, then the latest send per (id_cliente, canal) with a window;
     written as Parquet;
   - pandas: the same, with `sort_values` + `drop_duplicates`; written as Parquet.
   The three tables are compared row for row.
2. The audience. A --audience-row CSV (5 columns, ~1/3 of the customers in quarantine) filtered for channel
   Marketing (its rows and every Restritos/Fraude row block):
   - ours: `qp filter-audience` (its handler, in process: reads the warehouse, validates the ids, streams);
   - pandas: read_csv (pyarrow engine, text), isin, to_csv; PySpark: read csv, broadcast left-anti join,
     write csv. Each counts kept/removed and removed per channel; the counts are compared.
Each side runs in its own spawned child; seconds exclude imports and, for PySpark, the session start
(reported apart). CPU seconds are the child's user + system time (every thread), plus the JVM's for PySpark:
on a shared machine they move less than wall seconds. Peak memory is the child's VmHWM, plus the JVM's VmHWM
for PySpark. Prints a table and writes benchmarks/out/quarantine.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quarantine_platform.process_memory import in_fresh_process, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "quarantine.json"
RULES = ROOT / "data" / "quarantine_rules.yaml"
LOAD_DATE = dt.date(2026, 11, 23)
CHANNEL = "Marketing"
CRM_SNAPSHOTS = 4


def _child_pids() -> list[str]:
    """This process's children (PySpark's JVM)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = handle.read().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if parent == me:
            found.append(entry)
    return found


def _children_peak_rss_mib() -> float:
    return sum(peak_rss_mib(pid) for pid in _child_pids())


def _cpu_seconds(pids: list[str] | None = None) -> float:
    """CPU seconds (user + system, every thread) of this process, plus those of `pids` (the JVM)."""
    total = time.process_time()
    for pid in pids or []:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


# --- data --------------------------------------------------------------------------------------------------


def generate(work: Path, rows: int, audience_rows: int) -> dict[str, Any]:
    """The six standardized snapshots (lake/quarantine/sources/*.parquet) and the audience CSV."""
    import numpy as np
    import polars as pl

    sys.path.insert(0, str(ROOT))
    from quarantine_platform.storage.quarantine_sources import write_source
    from quarantine_platform.transforms.quarantine_rules import load_rules

    rng = np.random.default_rng(42)
    customers = max(1000, rows * 2)
    pool = 1_000_000_000 + np.arange(customers, dtype=np.int64) * 7 + rng.integers(0, 7, customers)
    lake = work / "lake"

    def frame(count: int, canal: str, first: dt.date, last: dt.date) -> pl.DataFrame:
        ids = rng.choice(pool, count)
        days = (last - first).days + 1
        sent = np.datetime64(first) + rng.integers(0, days, count).astype("timedelta64[D]")
        return pl.DataFrame(
            {
                "id_cliente": ids,
                "canal": canal,
                "assunto": rng.choice(["Campanha", "Promoção", "Newsletter", "Novo Produto"], count),
                "data_envio": sent.astype("datetime64[D]"),
            },
            schema_overrides={"data_envio": pl.Date},
        ).with_columns(
            ("c" + pl.col("id_cliente").cast(pl.String) + "@exemplo.com").alias("email"),
            ("119" + (pl.col("id_cliente") % 100_000_000).cast(pl.String)).alias("telefone"),
        )

    start = LOAD_DATE - dt.timedelta(days=120)
    for rule in load_rules(RULES):
        if rule.source == "crm_sends":
            per = rows // CRM_SNAPSHOTS
            parts = []
            for k in range(CRM_SNAPSHOTS):
                base = LOAD_DATE - dt.timedelta(days=7 * k)
                parts.append(
                    frame(per, rule.canal, base - dt.timedelta(days=44), base).with_columns(
                        pl.lit(base).alias("data_base")
                    )
                )
            data = pl.concat(parts)
        elif rule.days is None:
            data = frame(rows, rule.canal, start, LOAD_DATE)
            cleared = pl.Series(rng.random(rows) < 0.3)
            removal = pl.Series(rng.integers(1, 60, rows)).cast(pl.Int64)
            data = data.with_columns(
                pl.when(cleared)
                .then(pl.min_horizontal(pl.col("data_envio") + pl.duration(days=removal), pl.lit(LOAD_DATE)))
                .alias("data_exclus")
            )
        else:
            data = frame(rows, rule.canal, start, LOAD_DATE)
        write_source(lake, rule.source, data)

    # The audience: customers of the pool (about 1 in 3 contacted lately), text columns as a CRM tool writes.
    ids = rng.choice(pool, audience_rows)
    audience = pl.DataFrame({"id_cliente": ids}).with_columns(
        ("Cliente " + (pl.col("id_cliente") % 9973).cast(pl.String)).alias("nome"),
        ("a" + pl.col("id_cliente").cast(pl.String) + "@exemplo.com").alias("email"),
        ("0" + (pl.col("id_cliente") % 100_000_000).cast(pl.String)).alias("telefone"),
        pl.lit("São Paulo").alias("cidade"),
    )
    audience.write_csv(work / "audience.csv")
    return {
        "source_rows": {p.stem: pl.scan_parquet(p).select(pl.len()).collect().item() for p in
                        sorted((lake / "quarantine" / "sources").glob("*.parquet"))},
        "audience_rows": audience_rows,
        "audience_mib": round((work / "audience.csv").stat().st_size / 2**20, 1),
    }  # fmt: skip


# --- the table ---------------------------------------------------------------------------------------------


def ours_table(work: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from quarantine_platform.resources.warehouse import open_warehouse
    from quarantine_platform.storage.quarantine_sources import read_source
    from quarantine_platform.storage.quarantine_warehouse import read_table, replace_load_dates
    from quarantine_platform.transforms.quarantine import load_sources, quarantine_on
    from quarantine_platform.transforms.quarantine_rules import load_rules

    base = peak_rss_mib()
    started, cpu = time.perf_counter(), _cpu_seconds()
    rules = load_rules(RULES)
    sources = {rule.source: read_source(Path(work) / "lake", rule.source) for rule in rules}
    table = quarantine_on(load_sources(sources, rules, LOAD_DATE, LOAD_DATE), LOAD_DATE)
    computed = time.perf_counter() - started
    con = open_warehouse(str(Path(work) / "warehouse.duckdb"))
    replace_load_dates(con, [(LOAD_DATE, table)], "benchmark")
    con.close()
    seconds, cpu, peak = time.perf_counter() - started, _cpu_seconds() - cpu, peak_rss_mib()
    # For the comparison, not timed: the table as the warehouse gives it back (the view over the stored file).
    with contextlib.closing(open_warehouse(str(Path(work) / "warehouse.duckdb"), read_only=True)) as con:
        read_table(con, LOAD_DATE).write_parquet(Path(work) / "ours_table.parquet")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "compute_seconds": computed,
        "rows": table.height,
        "peak_mib": peak,
        "baseline_mib": base,
    }


def pandas_table(work: str) -> dict[str, Any]:
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from quarantine_platform.transforms.quarantine_rules import load_rules

    base = peak_rss_mib()
    started, cpu = time.perf_counter(), _cpu_seconds()
    day = pd.Timestamp(LOAD_DATE)
    parts = []
    for rule in load_rules(RULES):
        df = pd.read_parquet(Path(work) / "lake" / "quarantine" / "sources" / f"{rule.source}.parquet")
        for column in ("data_envio", "data_exclus", "data_base"):
            df[column] = pd.to_datetime(df[column])
        df = df[df["id_cliente"].notna() & df["data_envio"].notna()]
        if df["data_base"].notna().any():  # the snapshot of D, else the latest before D
            bases = df["data_base"][df["data_base"] <= day]
            df = df[df["data_base"] == bases.max()] if len(bases) else df.iloc[0:0]
        df = df[(df["data_envio"] <= day) & (df["data_exclus"].isna() | (df["data_exclus"] > day))]
        df = df.assign(qtd_dias=(day - df["data_envio"]).dt.days.astype("int32"))
        if rule.days is None:
            df = df.assign(saida_prevista=pd.NaT)
        else:
            df = df[df["qtd_dias"] <= rule.days]
            df = df.assign(saida_prevista=df["data_envio"] + pd.Timedelta(days=rule.days))
        parts.append(df)
    table = (
        pd.concat(parts, ignore_index=True)
        .sort_values(
            ["data_envio", "assunto", "email", "telefone"],
            ascending=[False, True, True, True],
            na_position="last",
        )
        .drop_duplicates(["id_cliente", "canal"], keep="first")
        .assign(data_carga=day)
        [["id_cliente", "canal", "email", "telefone", "assunto", "data_envio", "qtd_dias", "saida_prevista",
          "data_carga"]]
    )  # fmt: skip
    table.to_parquet(Path(work) / "pandas_table.parquet", index=False)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "rows": len(table),
        "peak_mib": peak_rss_mib(),
        "baseline_mib": base,
    }


def _spark(memory: str = "6g"):  # noqa: ANN202
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName("QuarentenaGlobal")
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", "4")  # 200 by default: tuned down for 2 cores
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def spark_table(work: str) -> dict[str, Any]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sys.path.insert(0, str(ROOT))
    from quarantine_platform.transforms.quarantine_rules import load_rules

    begun = time.perf_counter()
    spark = _spark()
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - begun
    jvm_pids = _child_pids()
    started, cpu = time.perf_counter(), _cpu_seconds(jvm_pids)
    day = F.lit(LOAD_DATE.isoformat()).cast("date")
    parts = []
    for rule in load_rules(RULES):
        df = spark.read.parquet(
            str(Path(work) / "lake" / "quarantine" / "sources" / f"{rule.source}.parquet")
        )
        df = df.where(F.col("id_cliente").isNotNull() & F.col("data_envio").isNotNull())
        bases = df.agg(
            F.max(F.when(F.col("data_base") <= day, F.col("data_base"))).alias("snapshot"),
            F.count("data_base").alias("based"),
        ).first()
        if bases["based"]:  # the snapshot of D, else the latest before D
            df = df.where(F.col("data_base") == F.lit(bases["snapshot"]))
        df = df.where(
            (F.col("data_envio") <= day) & (F.col("data_exclus").isNull() | (F.col("data_exclus") > day))
        )
        df = df.withColumn("qtd_dias", F.datediff(day, F.col("data_envio")))
        if rule.days is None:
            df = df.withColumn("saida_prevista", F.lit(None).cast("date"))
        else:
            df = df.where(F.col("qtd_dias") <= rule.days).withColumn(
                "saida_prevista", F.date_add(F.col("data_envio"), rule.days)
            )
        parts.append(
            df.select("id_cliente", "canal", "email", "telefone", "assunto", "data_envio", "qtd_dias",
                      "saida_prevista")
        )  # fmt: skip
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    latest = Window.partitionBy("id_cliente", "canal").orderBy(
        F.col("data_envio").desc(), F.col("assunto").asc_nulls_last(), F.col("email").asc_nulls_last(),
        F.col("telefone").asc_nulls_last(),
    )  # fmt: skip
    table = union.withColumn("rn", F.row_number().over(latest)).where("rn = 1").drop("rn")
    table = table.withColumn("data_carga", day)
    out = Path(work) / "spark_table"
    table.write.mode("overwrite").parquet(str(out))
    seconds, cpu = time.perf_counter() - started, _cpu_seconds(jvm_pids) - cpu
    rows = spark.read.parquet(str(out)).count()
    jvm = _children_peak_rss_mib()
    spark.stop()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "startup_seconds": startup,
        "rows": rows,
        "peak_mib": peak_rss_mib() + jvm,
        "python_peak_mib": peak_rss_mib(),
        "jvm_peak_mib": jvm,
    }


# --- the audience ------------------------------------------------------------------------------------------


def ours_audience(work: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    os.environ["QP_WAREHOUSE"] = str(Path(work) / "warehouse.duckdb")
    os.environ["QP_QUARANTINE_RULES"] = str(RULES)
    from quarantine_platform.audience import run_filter_audience

    base = peak_rss_mib()
    args = argparse.Namespace(
        input=str(Path(work) / "audience.csv"), channel=CHANNEL, date=LOAD_DATE,
        output=str(Path(work) / "ours_allowed.csv"),
    )  # fmt: skip
    printed = io.StringIO()
    started, cpu = time.perf_counter(), _cpu_seconds()
    with contextlib.redirect_stdout(printed):
        run_filter_audience(args)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    numbers = {}
    for line in printed.getvalue().splitlines()[1:]:
        label, count = line.rsplit(maxsplit=1)
        if count.replace(",", "").isdigit():  # not the note on customers blocked by several channels
            numbers[label.strip()] = int(count.replace(",", ""))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "counts": numbers,
        "peak_mib": peak_rss_mib(),
        "baseline_mib": base,
        "output_rows": _csv_rows(Path(work) / "ours_allowed.csv"),
    }


def pandas_audience(work: str) -> dict[str, Any]:
    import pandas as pd

    base = peak_rss_mib()
    started, cpu = time.perf_counter(), _cpu_seconds()
    table = pd.read_parquet(Path(work) / "ours_table.parquet", columns=["id_cliente", "canal"])
    blocked = table[table["canal"].isin([CHANNEL, "Restritos", "Fraude"])]
    audience = pd.read_csv(Path(work) / "audience.csv", dtype=str, engine="pyarrow", keep_default_na=False)
    ids = pd.to_numeric(audience["id_cliente"], errors="coerce")
    if ids.isna().any():
        raise ValueError("bad ids")
    removed = ids.isin(blocked["id_cliente"])
    counts = {"rows": len(audience), "kept": int((~removed).sum()), "removed": int(removed.sum())}
    for canal, group in blocked.groupby("canal"):
        counts[f"by {canal}"] = int(ids.isin(group["id_cliente"]).sum())
    audience[~removed].to_csv(Path(work) / "pandas_allowed.csv", index=False)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "counts": counts,
        "peak_mib": peak_rss_mib(),
        "baseline_mib": base,
        "output_rows": _csv_rows(Path(work) / "pandas_allowed.csv"),
    }


def spark_audience(work: str) -> dict[str, Any]:
    from pyspark.sql import functions as F

    begun = time.perf_counter()
    spark = _spark()
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - begun
    jvm_pids = _child_pids()
    started, cpu = time.perf_counter(), _cpu_seconds(jvm_pids)
    table = spark.read.parquet(str(Path(work) / "ours_table.parquet"))
    blocked = table.where(F.col("canal").isin(CHANNEL, "Restritos", "Fraude")).select("id_cliente", "canal")
    blocked_ids = blocked.select(F.col("id_cliente").alias("_id")).distinct()
    audience = spark.read.option("header", True).csv(str(Path(work) / "audience.csv"))
    audience = audience.withColumn("_id", F.col("id_cliente").cast("long")).cache()
    totals = audience.agg(
        F.count("*").alias("rows"), F.sum(F.col("_id").isNull().cast("int")).alias("bad")
    ).first()
    if totals["bad"]:
        raise ValueError("bad ids")
    removed = audience.join(F.broadcast(blocked_ids), "_id", "left_semi").count()
    per_channel = (
        audience.select("_id").join(F.broadcast(blocked.withColumnRenamed("id_cliente", "_id")), "_id")
        .groupBy("canal").count().collect()
    )  # fmt: skip
    kept = audience.join(F.broadcast(blocked_ids), "_id", "left_anti").drop("_id")
    out = Path(work) / "spark_allowed"
    kept.write.mode("overwrite").option("header", True).csv(str(out))
    seconds, cpu = time.perf_counter() - started, _cpu_seconds(jvm_pids) - cpu
    jvm = _children_peak_rss_mib()
    spark.stop()
    counts = {"rows": totals["rows"], "kept": totals["rows"] - removed, "removed": removed}
    counts.update({f"by {row['canal']}": row["count"] for row in per_channel})
    output_rows = sum(_csv_rows(part) for part in out.glob("part-*.csv"))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "startup_seconds": startup,
        "counts": counts,
        "output_rows": output_rows,
        "peak_mib": peak_rss_mib() + jvm,
        "python_peak_mib": peak_rss_mib(),
        "jvm_peak_mib": jvm,
    }


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _csv_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b"")) - 1


# --- comparison and report ---------------------------------------------------------------------------------


def same_tables(work: Path, peers: list[str]) -> dict[str, bool]:
    import polars as pl

    paths = {"ours": work / "ours_table.parquet", "pandas": work / "pandas_table.parquet",
             "pyspark": work / "spark_table" / "*.parquet"}  # fmt: skip

    def load(side: str) -> pl.DataFrame:
        return pl.read_parquet(str(paths[side])).select(
            pl.col("id_cliente").cast(pl.Int64), "canal", "email", "telefone", "assunto",
            pl.col("data_envio").cast(pl.Date), pl.col("qtd_dias").cast(pl.Int32),
            pl.col("saida_prevista").cast(pl.Date), pl.col("data_carga").cast(pl.Date),
        ).sort("canal", "id_cliente")  # fmt: skip

    ours = load("ours")
    return {peer: load(peer).equals(ours) for peer in peers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows per source (default 2,000,000)")
    parser.add_argument("--audience", type=int, default=10_000_000, help="audience rows (default 10,000,000)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated data (printed path)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qp_quarantine_bench_"))
    peers = ["pandas"] + ([] if args.skip_spark else ["pyspark"])
    try:
        began = time.perf_counter()
        data = generate(work, args.rows, args.audience)
        print(f"data generated in {time.perf_counter() - began:.1f} s: {data}", flush=True)
        results: dict[str, dict[str, Any]] = {"table": {}, "audience": {}}
        results["table"]["ours"] = in_fresh_process(ours_table, str(work))
        print("table, ours:", results["table"]["ours"], flush=True)
        results["table"]["pandas"] = in_fresh_process(pandas_table, str(work))
        print("table, pandas:", results["table"]["pandas"], flush=True)
        if "pyspark" in peers:
            results["table"]["pyspark"] = in_fresh_process(spark_table, str(work))
            print("table, pyspark:", results["table"]["pyspark"], flush=True)
        equal = same_tables(work, peers)
        results["audience"]["ours"] = in_fresh_process(ours_audience, str(work))
        print("audience, ours:", results["audience"]["ours"], flush=True)
        results["audience"]["pandas"] = in_fresh_process(pandas_audience, str(work))
        print("audience, pandas:", results["audience"]["pandas"], flush=True)
        if "pyspark" in peers:
            results["audience"]["pyspark"] = in_fresh_process(spark_audience, str(work))
            print("audience, pyspark:", results["audience"]["pyspark"], flush=True)
        ours_counts = results["audience"]["ours"]["counts"]
        counts_equal = {
            peer: results["audience"][peer]["counts"] == ours_counts
            and results["audience"][peer]["output_rows"] == results["audience"]["ours"]["output_rows"]
            for peer in peers
        }
        # pandas writes the same text: the kept rows, in order, byte for byte.
        same_file = _sha256(work / "ours_allowed.csv") == _sha256(work / "pandas_allowed.csv")
        counts_equal["pandas"] = counts_equal["pandas"] and same_file
        load = os.getloadavg()
    finally:
        if args.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"{'job':<10}{'side':<9}{'seconds':>9}{'CPU s':>9}{'peak MiB':>10}{'ours faster':>13}"
        f"{'(CPU)':>8}  same"
    )
    for job in ("table", "audience"):
        ours = results[job]["ours"]
        print(
            f"{job:<10}{'ours':<9}{ours['seconds']:>9.2f}{ours['cpu_seconds']:>9.2f}{ours['peak_mib']:>10.0f}"
        )
        for peer in peers:
            figures = results[job][peer]
            figures["ratio_peer_over_ours"] = figures["seconds"] / ours["seconds"]
            figures["cpu_ratio_peer_over_ours"] = figures["cpu_seconds"] / ours["cpu_seconds"]
            same = (equal if job == "table" else counts_equal)[peer]
            print(
                f"{'':<10}{peer:<9}{figures['seconds']:>9.2f}{figures['cpu_seconds']:>9.2f}"
                f"{figures['peak_mib']:>10.0f}{figures['ratio_peer_over_ours']:>12.1f}x"
                f"{figures['cpu_ratio_peer_over_ours']:>7.1f}x  {same}"
            )
    if "pyspark" in peers:
        print(f"(PySpark session start not counted: {results['table']['pyspark']['startup_seconds']:.1f} s)")
    print(f"(load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs)")
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "arguments": {"rows_per_source": args.rows, "audience_rows": args.audience},
        "data": data,
        "results": results,
        "same_table": equal,
        "same_audience_counts": counts_equal,
        "load_average_at_end": load,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
