"""Notification stream benchmark: Kafka -> bronze -> minute counts, ours against quixstreams, same stream.

    python benchmarks/notification_stream.py [--messages N]

One run starts the embedded broker (`qp broker`) and measures, each part in its own child process:

1. ours: the deterministic demo stream (`DemoSpec`, `generate`, `produce`) of N/4, N/2 and N messages, each
   into its own topic, produced --slice messages at a time (the embedded broker keeps only the last 5 MiB of
   each partition); after each slice `ingest()` stores it in bronze (exactly once, fsync'd), at the end
   `minute_counts()` counts the whole day. events/s = messages / (ingest + counts seconds), and the child's
   peak RSS (VmHWM);
2. the peer: a quixstreams Application (exactly-once) doing a tumbling one-minute count per customer on the
   event time, deduplicating by message_id with per-key state, reading the first slice of the same N stream
   from the same topic (with its own consumer group) before ours does;
3. freshness: a live stream (event time = now) produced at a steady rate while a loop does what the sensors
   do (ingest, `summaries_since`, `plan_minutes`, `minute_counts`); per closed minute, seconds from
   minute end + 10 s lateness until its count is computed.

Prints a table and writes benchmarks/out/notification_stream.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

DAY = dt.date(2026, 11, 22)
LATENESS_S = 10
OUT = Path(__file__).resolve().parent / "out" / "notification_stream.json"
SPAWN = mp.get_context("spawn")


def _quiet(_: str) -> None:
    """Log sink for `ingest` (its per-chunk lines would swamp the benchmark output)."""


# --- process helpers ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def embedded_broker() -> Iterator[str]:
    """`qp broker` on a free port, as a subprocess; yields its bootstrap address."""
    address = f"127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "quarantine_platform.cli", "broker", "--bootstrap", address],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("BROKER READY"):
            raise RuntimeError(f"the embedded broker did not start on {address}: {line.strip()!r}")
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM: peak RSS, VmRSS: current RSS) in MiB. Not
    `quarantine_platform.process_memory`: the quixstreams peer runs this file where the package is absent."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# --- the stream --------------------------------------------------------------------------------------------


def produce_slice(bootstrap: str, topic: str, messages: Iterator[Any]) -> int:
    """Produce the next slice of a demo stream with the package's own producer; returns messages sent."""
    from quarantine_platform.demo.stream import produce

    return sum(produce(bootstrap, topic, messages).values())


def ours_worker(conn: Connection, bootstrap: str, topic: str, group: str) -> None:
    """Ours, in a child process driven over `conn`: "ingest" stores what the broker holds now in bronze
    (exactly once; answers the messages read), "finish" counts the whole day's minutes and answers the
    figures, peak RSS (VmHWM) included."""
    from quarantine_platform.kafka.ingest import ingest, worker_count
    from quarantine_platform.storage.bronze_window import bronze_files, scan_window
    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.transforms.notifications import minute_counts

    day_start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    baseline = _status_mib("VmRSS")
    totals = {"messages": 0, "events": 0, "dead_letters": 0, "files": 0, "ingest_calls": 0}
    ingest_s = 0.0
    workers = worker_count(os.environ.get("QP_INGEST_WORKERS", "auto"))
    workers_peak = 0.0  # the worker processes' peak RSS, summed (they live as long as this child)
    workers_used = 1
    with tempfile.TemporaryDirectory(prefix="qp-bench-lake-") as root:
        lake = NotificationLake(root)
        while conn.recv() == "ingest":
            started = time.perf_counter()
            report = ingest(lake, bootstrap, topic, group, log=_quiet, workers=workers)
            ingest_s += time.perf_counter() - started
            workers_peak = max(workers_peak, sum(report.worker_peak_rss_mib))
            workers_used = max(workers_used, report.workers)
            totals["messages"] += report.messages
            totals["events"] += report.events
            totals["dead_letters"] += report.dead_letters
            totals["files"] += len(report.files)
            totals["ingest_calls"] += 1
            conn.send(report.messages)
        peak_ingest = _status_mib("VmHWM") + workers_peak
        started = time.perf_counter()
        day_end = day_start + dt.timedelta(days=1)
        # As the counts asset reads bronze: the day's files, with their stored message keys.
        counts = minute_counts(
            scan_window(bronze_files(lake, None), day_start, day_end), day_start, day_end, "UTC"
        )
        counts_s = time.perf_counter() - started
    conn.send(
        {
            "topic": topic,
            **totals,
            "count_rows": counts.height,
            "notifications_counted": int(counts["notifications"].sum() or 0),
            "ingest_s": ingest_s,
            "counts_s": counts_s,
            "total_s": ingest_s + counts_s,
            "events_per_s": totals["messages"] / (ingest_s + counts_s),
            "ingest_events_per_s": totals["messages"] / ingest_s,
            "rss_baseline_mib": baseline,
            "ingest_processes": workers_used,
            "peak_rss_workers_mib": workers_peak,
            "peak_rss_ingest_mib": peak_ingest,
            "peak_rss_mib": max(peak_ingest, _status_mib("VmHWM") + workers_peak),
        }
    )


def run_ours(
    bootstrap: str,
    size: int,
    slice_messages: int,
    on_first_slice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Produce the demo stream of `size` messages slice by slice into a new topic; after each slice, ours (a
    child process) ingests it; at the end, ours counts the day. `on_first_slice(topic)` runs once the first
    slice is in the broker (the peer reads it there). Only ours' own calls are timed."""
    from quarantine_platform.demo.stream import DemoSpec, generate

    topic, group = f"bench-{size}", f"ours-{size}"
    stream = generate(DemoSpec(day=DAY, messages=size))
    parent, child = SPAWN.Pipe()
    worker = SPAWN.Process(target=ours_worker, args=(child, bootstrap, topic, group))
    worker.start()
    produced = produce_s = 0.0
    try:
        while True:
            started = time.perf_counter()
            sent = produce_slice(bootstrap, topic, itertools.islice(stream, slice_messages))
            produce_s += time.perf_counter() - started
            if not sent:
                break
            if produced == 0 and on_first_slice is not None:
                on_first_slice(topic)
            produced += sent
            parent.send("ingest")
            read = parent.recv()
            if read != sent:
                raise RuntimeError(f"{topic}: produced {sent:,} messages but ours read {read:,}")
        parent.send("finish")
        result = parent.recv()
    finally:
        worker.join(60)
    return {**result, "produced": int(produced), "produce_s": produce_s}


# --- the peer: quixstreams ---------------------------------------------------------------------------------


def _mock_broker_admin_shims() -> None:
    """librdkafka's mock cluster (our embedded broker) answers neither DescribeConfigs nor CreateTopics
    ("waiting for controller"); quixstreams needs both for its changelog topics. Describe from metadata
    instead, and create by auto-creation (a metadata request for the name: 4 partitions, like every topic
    there). Control plane only: the data path (consume, state, changelog, transactions) is untouched."""
    from confluent_kafka import Producer
    from quixstreams.models.topics.admin import TopicAdmin
    from quixstreams.models.topics.topic import TopicConfig

    def inspect_topics(self: TopicAdmin, topic_names: list[str], timeout: float = 30) -> dict:
        found = self.list_topics(timeout=timeout)
        extra = {"retention.ms": str(7 * 86_400_000), "retention.bytes": "-1"}
        return {
            t: TopicConfig(len(found[t].partitions), 1, extra_config=extra) if t in found else None
            for t in topic_names
        }

    def create_topics(
        self: TopicAdmin, topics: list, timeout: float = 30, finalize_timeout: float = 60
    ) -> None:
        producer = Producer({"bootstrap.servers": self._config["bootstrap.servers"]})
        for t in topics:
            producer.list_topics(t.name, timeout=10)

    TopicAdmin.inspect_topics = inspect_topics  # type: ignore[method-assign]
    TopicAdmin.create_topics = create_topics  # type: ignore[method-assign]


def run_peer(bootstrap: str, topic: str, group: str, prefix_messages: int) -> dict[str, Any]:
    """quixstreams, exactly-once: validate, dedup by message_id (per-key state), tumbling 1-minute count per
    customer on event time. Reads the first `prefix_messages` of the topic (the same share of every
    partition) and stops. Runs in a child process."""
    warnings.filterwarnings("ignore")
    import orjson
    from confluent_kafka import Consumer, TopicPartition
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer
    from quixstreams.models.serializers.exceptions import IgnoreMessage

    _mock_broker_admin_shims()
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group + "-probe"})
    partitions = sorted(probe.list_topics(topic, timeout=10).topics[topic].partitions)
    marks = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    probe.close()
    total = sum(high - low for low, high in marks.values())
    share = min(1.0, prefix_messages / total)
    targets = {p: low + math.ceil((high - low) * share) for p, (low, high) in marks.items()}

    class NotificationDeserializer(Deserializer):
        """The same validation rules as ours, per message; invalid messages are skipped."""

        def __call__(self, value: bytes, ctx: Any) -> dict:
            try:
                record = orjson.loads(value)
                when = dt.datetime.fromisoformat(record["event_datetime"])
                ok = (
                    when.tzinfo is not None
                    and type(record["customer_id"]) is int
                    and all(
                        type(record[f]) is str for f in ("message_id", "customer_name", "channel", "payload")
                    )
                    and len(record["payload"].encode()) <= 64 * 1024
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise IgnoreMessage()
            record["_ts_ms"] = int(when.timestamp() * 1000)
            return record

    with tempfile.TemporaryDirectory(prefix="qp-bench-quix-") as state_dir:
        last: dict[int, int] = {}
        clock: dict[str, float] = {}
        windows = {"emitted": 0, "counted": 0, "late_dropped": 0}

        app = Application(
            broker_address=bootstrap,
            consumer_group=group,
            auto_offset_reset="earliest",
            processing_guarantee="exactly-once",
            state_dir=state_dir,
            loglevel="WARNING",
        )

        def processed(_topic: str, partition: int, offset: int) -> None:
            clock.setdefault("first", time.perf_counter())
            last[partition] = offset
            if all(last.get(p, -1) >= t - 1 for p, t in targets.items()):
                clock.setdefault("prefix_done", time.perf_counter())
                app.stop()

        app._on_message_processed = processed  # noqa: SLF001 - set after the app exists, to stop it

        source = app.topic(
            topic,
            key_deserializer="str",
            value_deserializer=NotificationDeserializer(),
            timestamp_extractor=lambda value, _h, ts, _tt: value["_ts_ms"] if value else ts,
        )

        def first_copy(value: dict, state: Any) -> bool:
            mid = value["message_id"]
            if state.exists(mid):
                return False
            state.set(mid, 1)
            return True

        def late(*_: Any) -> bool:
            windows["late_dropped"] += 1
            return False  # counted here instead of one warning line each

        def emitted(window: dict) -> None:
            windows["emitted"] += 1
            windows["counted"] += window["value"]

        sdf = app.dataframe(source)
        sdf = sdf.filter(lambda value: value is not None)  # null values (tombstones)
        sdf = sdf.filter(first_copy, stateful=True)
        sdf = sdf.tumbling_window(
            dt.timedelta(minutes=1), grace_ms=dt.timedelta(seconds=LATENESS_S), on_late=late
        )
        sdf = sdf.count().final()
        sdf = sdf.update(emitted)
        started = time.perf_counter()
        app.run(timeout=15, collect=False)
        ended = time.perf_counter()
    consumed = sum(last[p] - marks[p][0] + 1 for p in last)
    seconds = ended - clock.get("first", started)
    return {
        "topic": topic,
        "prefix_share": share,
        "messages": consumed,
        "topic_messages": total,
        "startup_s": clock.get("first", ended) - started,
        "seconds": seconds,
        "events_per_s": consumed / seconds,
        "windows_emitted": windows["emitted"],
        "notifications_counted": windows["counted"],
        "late_dropped": windows["late_dropped"],
        "peak_rss_mib": _status_mib("VmHWM"),
    }


def run_peer_in_its_env(bootstrap: str, topic: str, group: str, prefix_messages: int) -> dict[str, Any]:
    """quixstreams pins confluent-kafka < 2.13, ours uses a newer one: the peer runs in its own environment
    (QP_BENCH_PEER_PYTHON, set up by scripts/bench.sh from benchmarks/requirements-peer-stream.txt), as a
    child process of this script, and answers its figures as one JSON line."""
    python = os.environ.get("QP_BENCH_PEER_PYTHON") or sys.executable
    done = subprocess.run(
        [python, __file__, "--run-peer", bootstrap, topic, group, str(prefix_messages)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the quixstreams peer failed ({python}); set QP_BENCH_PEER_PYTHON to a Python with "
            f"benchmarks/requirements-peer-stream.txt installed:\n{done.stderr[-3000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- freshness ---------------------------------------------------------------------------------------------


def produce_live(bootstrap: str, topic: str, rate: int, seconds: float) -> dict[str, Any]:
    """A steady live stream whose event times are now: `rate` messages/s for `seconds`. Runs in a child."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": False})
    customers = [(1_000_000 + i, f"Live {i:03d}") for i in range(300)]
    started = time.time()
    sent = 0
    while (now := time.time()) < started + seconds:
        due = int((now - started) * rate)
        while sent < due:
            cid, name = customers[sent % len(customers)]
            record = {
                "customer_id": cid,
                "message_id": f"LIVE{sent:010d}",
                "customer_name": name,
                "channel": "Whatsapp",
                "payload": f"Seu código de verificação é {sent % 10_000:04d}",
                "event_datetime": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            }
            producer.produce(topic, key=str(cid).encode(), value=json.dumps(record).encode())
            sent += 1
        producer.poll(0)
        time.sleep(0.01)
    producer.flush(30)
    return {"sent": sent, "started": started, "ended": time.time()}


def run_freshness(bootstrap: str, rate: int, seconds: float, poll: float) -> dict[str, Any]:
    """Produce a live stream in a child process while this process loops like the two sensors do."""
    from quarantine_platform.kafka.ingest import ingest
    from quarantine_platform.storage.bronze_window import bronze_files, scan_window
    from quarantine_platform.storage.notification_lake import NotificationLake
    from quarantine_platform.transforms.minute_scheduling import MinuteState, plan_minutes
    from quarantine_platform.transforms.notifications import local_day_start, minute_counts

    topic, group = "bench-live", "bench-live-ours"
    computed: dict[int, float] = {}  # minute -> wall time its count was first computed
    ingest_times: list[float] = []
    count_times: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="qp-bench-live-") as root,
        ProcessPoolExecutor(max_workers=1, mp_context=SPAWN) as pool,
    ):
        lake = NotificationLake(root)
        live = pool.submit(produce_live, bootstrap, topic, rate, seconds)
        earliest = int(time.time()) // 60 * 60
        state = MinuteState()
        while True:
            t0 = time.perf_counter()
            ingest(lake, bootstrap, topic, group, log=_quiet)
            ingest_times.append(time.perf_counter() - t0)
            summaries = lake.summaries_since(topic, state.seq)
            times = [s.max_event_time for s in summaries if s.max_event_time is not None]
            plan = plan_minutes(
                state,
                new_seq=max((s.committed.seq for s in summaries), default=state.seq),
                touched={m for s in summaries for m in s.minutes},
                max_event_time=max(times) // 1_000_000 if times else None,
                now=int(time.time()),
                lateness=LATENESS_S,
                earliest=earliest,
            )
            state = plan.state
            for first, last in plan.ranges:
                t0 = time.perf_counter()
                window_start = dt.datetime.fromtimestamp(first, dt.UTC)
                window_end = dt.datetime.fromtimestamp(last + 60, dt.UTC)
                events = scan_window(
                    bronze_files(lake, topic), local_day_start(window_start, "UTC"), window_end
                )
                minute_counts(events, window_start, window_end, "UTC")
                count_times.append(time.perf_counter() - t0)
                done = time.time()
                for minute in range(first, last + 60, 60):
                    computed.setdefault(minute, done)
            if live.done():
                produced = live.result()
                last_minute = int(produced["ended"]) // 60 * 60
                if state.next_minute is not None and state.next_minute > last_minute:
                    break
            time.sleep(poll)
    first_minute = int(produced["started"]) // 60 * 60
    delays = {
        m: t - (m + 60 + LATENESS_S) for m, t in sorted(computed.items()) if first_minute <= m <= last_minute
    }
    return {
        "rate": rate,
        "seconds": seconds,
        "poll_s": poll,
        "sent": produced["sent"],
        "minutes": len(delays),
        "delays_s": [round(d, 3) for d in delays.values()],
        "median_s": statistics.median(delays.values()) if delays else None,
        "max_s": max(delays.values()) if delays else None,
        "ingest_call_median_s": statistics.median(ingest_times),
        "counts_call_median_s": statistics.median(count_times) if count_times else None,
    }


# --- main --------------------------------------------------------------------------------------------------


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000_000, help="size N of the main stream")
    parser.add_argument(
        "--slice",
        type=int,
        default=250_000,
        help="messages produced per round before ours ingests them: the embedded broker (librdkafka's mock "
        "cluster) keeps only the last 5 MiB of each partition (~100k demo messages), older data is deleted",
    )
    parser.add_argument(
        "--peer-messages",
        type=int,
        default=250_000,
        help="quixstreams reads this prefix of the N-message stream (at most one slice; it is >10x slower)",
    )
    parser.add_argument("--live-rate", type=int, default=2_000, help="freshness: messages per second")
    parser.add_argument("--live-seconds", type=float, default=90.0, help="freshness: seconds of live stream")
    parser.add_argument("--poll", type=float, default=1.0, help="freshness: pause between sensor-loop rounds")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the JSON results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-peer"]:  # the peer's own process (see run_peer_in_its_env)
        bootstrap, topic, group, prefix = argv[1:5]
        print(json.dumps(run_peer(bootstrap, topic, group, int(prefix))), flush=True)
        return 0
    args = _args(argv)
    n = args.messages
    sizes = {"N/4": n // 4, "N/2": n // 2, "N": n}
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "messages": n,
    }
    started = time.perf_counter()
    with embedded_broker() as bootstrap:
        print(
            f"broker {bootstrap}; streams of {', '.join(f'{k}={v:,}' for k, v in sizes.items())} messages,"
            f" produced {args.slice:,} at a time"
        )
        peer: dict[str, Any] = {}

        def peer_on(topic: str) -> None:
            prefix = min(args.peer_messages, args.slice, n)
            peer.update(run_peer_in_its_env(bootstrap, topic, "peer-quixstreams", prefix))
            print(
                f"quixstreams: first {peer['messages']:,} messages of the N stream in {peer['seconds']:.1f}s"
                f" = {peer['events_per_s']:,.0f} ev/s (startup {peer['startup_s']:.1f}s not counted);"
                f" peak RSS {peer['peak_rss_mib']:.0f} MiB"
            )

        ours: dict[str, dict[str, Any]] = {}
        for k, size in sizes.items():
            ours[k] = o = run_ours(bootstrap, size, args.slice, peer_on if k == "N" else None)
            print(
                f"ours {k}: {o['messages']:,} messages in {o['ingest_calls']} ingest calls"
                f" {o['ingest_s']:.2f}s + counts {o['counts_s']:.2f}s = {o['events_per_s']:,.0f} ev/s;"
                f" peak RSS {o['peak_rss_mib']:.0f} MiB (after ingest {o['peak_rss_ingest_mib']:.0f}, of it"
                f" {o['ingest_processes']} worker processes {o['peak_rss_workers_mib']:.0f};"
                f" baseline {o['rss_baseline_mib']:.0f})"
            )
        results["ours"] = ours
        results["peer"] = peer
        scope = "the whole stream" if peer["messages"] >= ours["N"]["messages"] else "a prefix"

        print(f"freshness: {args.live_rate:,} msg/s live for {args.live_seconds:.0f}s, sensor loop ...")
        fresh = run_freshness(bootstrap, args.live_rate, args.live_seconds, args.poll)
        results["freshness"] = fresh
    results["wall_s"] = time.perf_counter() - started
    results["ratio"] = ours["N"]["events_per_s"] / peer["events_per_s"]

    print()
    print("=== notification stream benchmark ===")
    o = ours["N"]
    print(
        f"ours        {o['events_per_s']:>10,.0f} ev/s  (N={o['messages']:,}: ingest {o['ingest_s']:.2f}s at "
        f"{o['ingest_events_per_s']:,.0f} ev/s in {o['ingest_processes']} process(es) + counts "
        f"{o['counts_s']:.2f}s; exactly-once bronze)"
    )
    print(
        f"quixstreams {peer['events_per_s']:>10,.0f} ev/s  ({peer['messages']:,} messages, {scope} of the "
        "same stream, rate scaled as messages / seconds; exactly-once)"
    )
    print(f"ratio       {results['ratio']:>10,.1f} x")
    print(
        "peak RSS    ours "
        + ", ".join(f"{ours[k]['peak_rss_mib']:.0f} MiB at {k} ({sizes[k]:,})" for k in sizes)
        + f"; quixstreams {peer['peak_rss_mib']:.0f} MiB"
    )
    if fresh["median_s"] is not None:
        print(
            f"freshness   median {fresh['median_s']:.1f}s, max {fresh['max_s']:.1f}s after minute end + "
            f"{LATENESS_S}s lateness ({fresh['minutes']} minutes, {fresh['sent']:,} live messages)"
        )
    print(f"wall time   {results['wall_s']:.0f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results     {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
