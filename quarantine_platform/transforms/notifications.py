"""Notification messages: validation of raw Kafka values and per-minute counts. Pure Polars, no Dagster.

Parsing is done in batches (one NDJSON read per batch) because per-message Python work is the ceiling of
throughput; only the rare suspicious message goes through the exact per-message path, which also names the
reason a message is dead-lettered.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

MAX_PAYLOAD_BYTES = 64 * 1024
STRING_FIELDS = ("message_id", "customer_name", "channel", "payload", "event_datetime")
FIELDS = ("customer_id", *STRING_FIELDS)
WHATSAPP = "whatsapp"

_JSON_SCHEMA = {"customer_id": pl.Int64, **{f: pl.String for f in STRING_FIELDS}}
UTC_US = pl.Datetime("us", "UTC")

EVENTS_SCHEMA = pl.Schema(
    {
        "topic": pl.String,
        "partition": pl.Int32,
        "offset": pl.Int64,
        "customer_id": pl.Int64,
        "message_id": pl.String,
        "customer_name": pl.String,
        "channel": pl.String,
        "payload": pl.String,
        "event_datetime": pl.String,
        "event_time": UTC_US,
    }
)
DEAD_LETTERS_SCHEMA = pl.Schema(
    {
        "topic": pl.String,
        "partition": pl.Int32,
        "offset": pl.Int64,
        "reason": pl.String,
        "raw_value": pl.Binary,
    }
)
COUNTS_SCHEMA = pl.Schema(
    {
        "minute": UTC_US,
        "customer_id": pl.Int64,
        "customer_name": pl.String,
        "channel": pl.String,
        "notifications": pl.Int64,
    }
)


# --- message_key: a 64-bit hash of message_id that bronze files store beside it ----------------------------

MESSAGE_KEY = "message_key"
MESSAGE_KEY_SEED = 20200203
PARALLEL_SORT_MIN = 2_000_000  # keys past which `repeated_values` sorts in two threads
COUNT_SLICE_ROWS = 500_000  # rows of a window counted at a time by `minute_counts`
# Strings of the different lengths Polars hashes differently (empty, inline up to 12 bytes, longer).
_KEY_PROBES = ("", "a", "123456789012", "1234567890123", "f47ac10b-58cc-4372-a567-0e02b2c3d479", "x" * 100)


def message_key(message_id: pl.Expr) -> pl.Expr:
    """A UInt64 hash of message_id: equal ids have equal keys; different ids rarely do, so whoever
    deduplicates on it must settle equal keys on message_id itself."""
    return message_id.hash(MESSAGE_KEY_SEED).alias(MESSAGE_KEY)


def message_key_recipe() -> str:
    """What identifies the keys this process computes. Polars guarantees its hash only within one version
    (and build), so a file records the recipe of its keys and a reader uses them only when its own recipe
    is the same; otherwise it recomputes the keys from message_id."""
    probes = pl.Series(_KEY_PROBES, dtype=pl.String).hash(MESSAGE_KEY_SEED).to_list()
    return f"polars-hash seed={MESSAGE_KEY_SEED} probes={','.join(map(str, probes))}"


@dataclass(frozen=True)
class ParsedBatch:
    events: pl.DataFrame
    dead_letters: pl.DataFrame


# --- per-message exact path ------------------------------------------------------------------------------


def repeated_values(values: pl.Series) -> pl.Series:
    """The values that occur more than once, sorted. numpy's sort of 8-byte keys (AVX2) is faster here than
    Polars' hash-based `is_duplicated`/`unique` or its multi-threaded sort, measured at 10M-100M keys. Past
    PARALLEL_SORT_MIN values, `np.partition` first puts the lower half before the upper half (~0.2 CPU-s at
    100M keys, in place), then each half is sorted and searched for repeats in its own thread (numpy
    releases the GIL), so a day's 100M keys use both cores for about the CPU time of one sort."""
    keys = values.to_numpy(writable=True)  # a copy: the caller's series stays as it was
    if len(keys) < max(PARALLEL_SORT_MIN, 2):
        found = _sorted_repeats(keys)
    else:
        middle = len(keys) // 2
        keys.partition(middle)  # keys[:middle] <= keys[middle] <= keys[middle + 1:]
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="qp-sort") as pool:
            low, high = pool.map(_sorted_repeats, [keys[:middle], keys[middle:]])
        # A value on both sides of the middle: the largest of the low half equals the smallest of the high.
        across = keys[middle - 1 : middle] if keys[middle - 1] == keys[middle] else keys[:0]
        found = np.unique(np.concatenate([low, across, high]))
    return pl.Series(values.name, found, dtype=values.dtype)


def _sorted_repeats(keys: np.ndarray) -> np.ndarray:
    """Sorts `keys` in place; returns the values that occur more than once, sorted, each once."""
    keys.sort()
    twice = keys[1:][keys[1:] == keys[:-1]]  # sorted, a value repeated k times appears k - 1 times
    return twice[np.concatenate(([True], twice[1:] != twice[:-1]))] if len(twice) else twice


def message_problem(value: bytes | None) -> tuple[str | None, dict | None]:
    """(reason, None) for a dead letter, (None, record) for a valid message. The reference rules."""
    if value is None:
        return "null value", None
    if not value.strip():
        return "empty value", None
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {str(exc)[:120]}", None
    if not isinstance(record, dict):
        return f"not a JSON object (a {type(record).__name__})", None
    missing = [f for f in FIELDS if f not in record]
    if missing:
        return f"missing field(s): {', '.join(missing)}", None
    nulls = [f for f in FIELDS if record[f] is None]
    if nulls:
        return f"null field(s): {', '.join(nulls)}", None
    cid = record["customer_id"]
    if type(cid) is not int:
        return f"customer_id is not an integer: {type(cid).__name__}", None
    if not -(2**63) <= cid < 2**63:
        return "customer_id out of 64-bit range", None
    mistyped = [f for f in STRING_FIELDS if type(record[f]) is not str]
    if mistyped:
        return f"field(s) not a string: {', '.join(mistyped)}", None
    return None, {f: record[f] for f in FIELDS}


# --- batch path ------------------------------------------------------------------------------------------


# A key followed by a value that is not a string. A valid line has exactly one: customer_id's integer (the
# bulk reader gives null for any other customer_id value, which sends the line to the exact path). Counting
# this short pattern was ~0.08 µs a line cheaper than searching for each string field's key (0.18 vs 0.25).
_KEY_WITH_OTHER_VALUE = r'"\s*:\s*[^"\s]'
# An escaped UTF-16 surrogate: the reference rules refuse a lone one (not valid UTF-8) where the bulk reader
# would store a replacement; such lines (a valid pair too, which the exact path accepts) take the exact path.
# Its own pass: ~0.03 µs a line, half the cost of an alternation in the key regex.
_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"


def _key_checks(line: pl.Expr) -> pl.Expr:
    """True when the line (the raw text plus its newline) is a flat JSON object on one line (one pair of
    braces, no brackets, no other line break) in which one key at most holds a non-string value. Flat means a
    key can only be a top-level key. The one non-string value allowed is customer_id's: a line whose
    customer_id is not an integer is read with a null customer_id and takes the exact path, and a line with
    a numeric customer_id and another non-string value has two. So no string field reaches the bulk reader
    with a non-string value (it would turn `"message_id": 123` into the string "123"); a line with an extra
    non-string field takes the exact path, which gives it the same outcome. An escaped surrogate goes to the
    exact path too. Anything else (and null: no value, or not UTF-8) takes the exact path."""
    shape = line.str.count_matches(r"[\[\]{}\n\r]") == 3
    one_other_value = line.str.count_matches(_KEY_WITH_OTHER_VALUE) == 1
    return (shape & one_other_value & ~line.str.contains(_SURROGATE_ESCAPE)).fill_null(False)


def _parse_fast(values: list[bytes | None]) -> tuple[pl.DataFrame, np.ndarray]:
    """Parse flat, well-formed JSON values in bulk. Returns (rows with `_i`, the index of their value; the
    indices of values that need the exact path).

    The values go into Polars once (no Python loop over them); each becomes a line ending in a newline, and
    the flat lines, filtered and laid out contiguously by Arrow, are exactly an NDJSON document, read in one
    call. Values that are null or not UTF-8 become nulls and take the exact path."""
    n = len(values)
    if n == 0:
        return _empty_rows(), np.empty(0, dtype=np.int64)
    try:
        text = pl.Series("line", values, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.ComputeError:  # some value is not UTF-8 (rare): those become nulls
        text = pl.Series("line", [None if v is None or _not_utf8(v) else v for v in values], dtype=pl.Binary)
        text = text.cast(pl.String)
    lines = pl.DataFrame({"line": text}).select(pl.col("line") + "\n")
    flat = lines.select(_key_checks(pl.col("line"))).to_series().to_numpy()
    idx = np.arange(n, dtype=np.int64)
    kept = lines.filter(pl.Series(flat)).to_series().to_arrow()
    rows, bad = _read_bisect(kept, idx[flat])
    return rows, np.concatenate([idx[~flat], bad])


def _not_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema={**_JSON_SCHEMA, "_i": pl.Int64})


def _ndjson_of(lines: pa.Array) -> memoryview:
    """The bytes of consecutive newline-terminated lines: one slice of the Arrow data buffer, no copy."""
    lines = lines.cast(pa.large_string()) if lines.type != pa.large_string() else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def _read_bisect(lines: pa.Array, idx: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
    """NDJSON-read the lines (`idx`: their value indices); a chunk the reader rejects (malformed JSON) is
    split until the bad values are isolated for the exact path."""
    if len(idx) == 0:
        return _empty_rows(), idx
    try:
        df = pl.read_ndjson(io.BytesIO(_ndjson_of(lines)), schema=_JSON_SCHEMA, ignore_errors=True)
    except pl.exceptions.PolarsError:
        df = None
    if df is not None and df.height == len(idx):
        return df.with_columns(_i=pl.Series(idx)), np.empty(0, dtype=np.int64)
    if len(idx) <= 64:
        return _empty_rows(), idx
    half = len(idx) // 2
    left, left_bad = _read_bisect(lines.slice(0, half), idx[:half])
    right, right_bad = _read_bisect(lines.slice(half), idx[half:])
    return pl.concat([left, right]), np.concatenate([left_bad, right_bad])


def parse_event_datetime(text: pl.Expr) -> pl.Expr:
    """ISO 8601 / RFC 3339 with an explicit offset (or Z) to a UTC instant; null when it is not a real
    instant or has no offset."""
    return text.str.to_datetime("%+", strict=False, time_unit="us").dt.convert_time_zone("UTC")


def parse_notifications(
    values: Sequence[bytes | None],
    partitions: Sequence[int] | np.ndarray,
    offsets: Sequence[int] | np.ndarray,
    topic: str,
) -> ParsedBatch:
    """Validate a batch of raw Kafka values (design.md, "Notifications"). Every input lands in exactly one of
    the two outputs: valid events, or dead letters with their reason and raw bytes."""
    part = np.asarray(partitions, dtype=np.int32)
    offs = np.asarray(offsets, dtype=np.int64)
    values = list(values)
    fast_rows, slow = _parse_fast(values)

    # Rows the bulk reader accepted but left a null in (mistyped or null fields) get the exact path too.
    fast_nulls = fast_rows.select(pl.any_horizontal(pl.col(FIELDS).is_null())).to_series()
    if fast_nulls.any():
        slow = np.concatenate([slow, fast_rows.filter(fast_nulls)["_i"].to_numpy()])
        fast_rows = fast_rows.filter(~fast_nulls)

    slow_records: list[dict] = []
    dead_idx: list[int] = []
    dead_reasons: list[str] = []
    for i in np.sort(slow).tolist():
        reason, record = message_problem(values[i])
        if reason is None:
            assert record is not None
            record["_i"] = i
            slow_records.append(record)
        else:
            dead_idx.append(i)
            dead_reasons.append(reason)
    rows = pl.concat(
        [fast_rows, pl.DataFrame(slow_records, schema={**_JSON_SCHEMA, "_i": pl.Int64})], how="vertical"
    )

    checked = rows.with_columns(event_time=parse_event_datetime(pl.col("event_datetime"))).with_columns(
        _reason=pl.when(pl.col("payload").str.len_bytes() > MAX_PAYLOAD_BYTES)
        .then(pl.lit(f"payload over {MAX_PAYLOAD_BYTES} bytes"))
        .when(pl.col("event_time").is_null())
        .then(pl.lit("bad event_datetime: not an ISO 8601 instant with an offset"))
    )
    rejected = checked.filter(pl.col("_reason").is_not_null())
    dead_idx.extend(rejected["_i"].to_list())
    dead_reasons.extend(rejected["_reason"].to_list())

    good = checked.filter(pl.col("_reason").is_null()).sort("_i")
    gi = good["_i"].to_numpy()
    events = good.select(
        pl.lit(topic).alias("topic"),
        pl.Series("partition", part[gi], dtype=pl.Int32),
        pl.Series("offset", offs[gi], dtype=pl.Int64),
        *FIELDS,
        pl.col("event_time").cast(UTC_US),
    )
    order = np.argsort(np.asarray(dead_idx, dtype=np.int64), kind="stable")
    di = np.asarray(dead_idx, dtype=np.int64)[order]
    dead_letters = pl.DataFrame(
        {
            "topic": [topic] * len(di),
            "partition": part[di],
            "offset": offs[di],
            "reason": [dead_reasons[k] for k in order.tolist()],
            "raw_value": [values[i] for i in di.tolist()],
        },
        schema=DEAD_LETTERS_SCHEMA,
    )
    return ParsedBatch(events=events.match_to_schema(EVENTS_SCHEMA), dead_letters=dead_letters)


# --- minute counts ---------------------------------------------------------------------------------------


def first_copies(events: pl.LazyFrame, timezone: str) -> pl.LazyFrame:
    """Keep, per (day in `timezone`, message_id), the first copy: the earliest event time, ties broken by
    (partition, offset). A message_id re-sent later the same day is the same notification."""
    keyed = events.with_columns(
        _day=pl.col("event_time").dt.convert_time_zone(timezone).dt.date(),
        _pos=(pl.col("partition").cast(pl.Int64) * (1 << 40)) + pl.col("offset"),
    )
    group = ["_day", "message_id"]
    return (
        keyed.filter(pl.col("event_time") == pl.col("event_time").min().over(group))
        .filter(pl.col("_pos") == pl.col("_pos").min().over(group))
        .drop("_day", "_pos")
    )


def later_copies(day: pl.LazyFrame, timezone: str, key_buckets: int = 1) -> pl.DataFrame:
    """(partition, offset, event_time) of the rows of `day` (one local day of one topic, or a part of it
    such as one customer's rows, with their message_key) that are not first copies (`first_copies`: a
    message_id re-sent the same day counts once). Only the 8-byte keys are read for every row, sorted in
    `key_buckets` buckets (by key modulo, so that at most a bucket's keys are held at once); the rows whose
    key repeats are settled by `later_copies_among`."""
    key = pl.col(MESSAGE_KEY)
    repeated = []
    for bucket in range(key_buckets):
        keys = day.select(key)
        if key_buckets > 1:
            keys = keys.filter(key % key_buckets == bucket)
        repeated.append(repeated_values(keys.collect(engine="streaming").to_series()))
    return later_copies_among(day, pl.concat(repeated), timezone, ("partition", "offset"))


def later_copies_among(
    day: pl.LazyFrame, repeated: pl.Series, timezone: str, place: tuple[str, ...]
) -> pl.DataFrame:
    """(*place, event_time) of the rows of `day` whose message_key is in `repeated` (keys seen more than once:
    re-sends, and the rare hash collision) that are not first copies. They are settled exactly on
    message_id (`first_copies`), so two ids with the same key are both kept. `place` names a row (with
    partition and offset)."""
    if repeated.is_empty():
        return pl.DataFrame(schema=day.select(*place, "event_time").collect_schema())
    candidates = (
        day.filter(pl.col(MESSAGE_KEY).is_in(repeated.implode()))
        .select(*place, "event_time", "message_id")
        .collect(engine="streaming")
    )
    firsts = first_copies(candidates.lazy(), timezone).select(place).collect()
    return candidates.join(firsts, on=list(place), how="anti").drop("message_id")


def minute_counts(events: pl.LazyFrame, start: datetime, end: datetime, timezone: str) -> pl.DataFrame:
    """Notifications per (minute, customer, channel) for minutes in [start, end), deduplicated by message_id:
    a message counts once a day (in `timezone`), in the minute, customer and channel of its first copy
    (`first_copies`); the name is that of the group's latest counted event.

    `events` must hold every event of the dedup days that reach into the window up to `end` (earlier copies
    decide which copy counts); the caller may pass more, it is filtered here. Its `message_key` column (as
    `scan_window` gives it) is used when present, else computed. Only the 8-byte keys of the day so far are
    read for all rows: the window's keys that occur more than once that day (re-sends, ~1%, and rare hash
    collisions) are the only rows settled exactly, on message_id; the window's other rows are counted as
    they are, COUNT_SLICE_ROWS at a time, so that a day's backfill holds 16 bytes a row and one slice."""
    day_start = local_day_start(start, timezone)
    day = events.filter((pl.col("event_time") >= day_start) & (pl.col("event_time") < end))
    if MESSAGE_KEY not in day.collect_schema():
        day = day.with_columns(message_key(pl.col("message_id")))
    window = day.filter(pl.col("event_time") >= start)
    minute = pl.col("event_time").dt.truncate("1m")
    seen = window.select(MESSAGE_KEY, minute=minute).collect(engine="streaming")
    if seen.is_empty():
        return pl.DataFrame(schema=COUNTS_SCHEMA)
    window_keys = seen[MESSAGE_KEY]
    if start <= day_start:  # the window is the day so far: its keys are all the day's keys
        candidates = window_keys
    else:  # the day's keys that repeat a window key: few for a minute, however long the day already is
        candidates = (
            day.filter(pl.col(MESSAGE_KEY).is_in(window_keys.unique().implode()))
            .select(MESSAGE_KEY)
            .collect(engine="streaming")
            .to_series()
        )
    # A message's identity across topics: (topic, partition, offset).
    later = later_copies_among(day, repeated_values(candidates), timezone, ("topic", "partition", "offset"))
    minutes = seen.group_by("minute").agg(rows=pl.len()).sort("minute")
    # Slice by slice: memory follows COUNT_SLICE_ROWS, not the window, even for a day's backfill.
    counted = [
        _count_slice(window.filter(pl.col("event_time").is_between(a, b, closed="left")), later)
        for a, b in time_slices(minutes, start, end, COUNT_SLICE_ROWS)
    ]
    return pl.concat(counted).sort("minute", "customer_id", "channel").match_to_schema(COUNTS_SCHEMA)


def _count_slice(rows: pl.LazyFrame, later_copies: pl.DataFrame) -> pl.DataFrame:
    """The counts of `rows` (all in whole minutes) without the later copies of re-sent messages. A group's
    name is that of its latest row by (event_time, topic, partition, offset). Picking it per group was half
    of the count's CPU, so the groups are counted without it, with the slice's distinct names per customer
    in the same pass: a customer with one name there has it in all of its groups, and only the rows of
    customers with several names in the slice (a rename) are grouped again with the exact pick."""
    row = ["topic", "partition", "offset"]
    if later_copies.height:
        rows = rows.join(later_copies.lazy(), on=row, how="anti")
    group = {
        "minute": pl.col("event_time").dt.truncate("1m"),
        "customer_id": "customer_id",
        "channel": pl.col("channel").str.to_lowercase(),
    }
    groups, names = pl.collect_all(
        [
            rows.group_by(**group).agg(pl.len().cast(pl.Int64).alias("notifications")),
            rows.group_by("customer_id", "customer_name").agg(),
        ],
        engine="streaming",
    )
    renamed = names.filter(pl.col("customer_id").is_duplicated())["customer_id"].unique()
    single = names.filter(~pl.col("customer_id").is_in(renamed.implode()))
    named = groups.join(single, on="customer_id", nulls_equal=True)
    counted = [named.select(COUNTS_SCHEMA.names())]
    if renamed.len():
        picked = (
            rows.filter(pl.col("customer_id").is_in(renamed.implode()))
            .group_by(**group)
            .agg(
                pl.col("customer_name").sort_by("event_time", *row).last(),
                pl.len().cast(pl.Int64).alias("notifications"),
            )
            .select(COUNTS_SCHEMA.names())
            .collect(engine="streaming")
        )
        counted.append(picked)
    return pl.concat(counted) if len(counted) > 1 else counted[0]


def time_slices(
    minutes: pl.DataFrame, start: datetime, end: datetime, max_rows: int
) -> list[tuple[datetime, datetime]]:
    """Consecutive [a, b) covering [start, end), cut at minute boundaries so that each holds at most
    `max_rows` rows (or a single minute). `minutes`: (minute, rows), sorted by minute."""
    cuts = [start]
    held = 0
    for minute, rows in minutes.filter(pl.col("minute") < end).iter_rows():
        if held and held + rows > max_rows and minute > cuts[-1]:
            cuts.append(minute)
            held = 0
        held += rows
    cuts.append(end)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def local_day_start(instant: datetime, timezone: str) -> datetime:
    local = pl.Series([instant], dtype=UTC_US).dt.convert_time_zone(timezone).dt.truncate("1d")
    return local.dt.convert_time_zone("UTC")[0]


def touched_minutes(events: pl.DataFrame) -> list[int]:
    """The distinct event minutes of a batch, as epoch seconds: which minutes a batch may change."""
    if events.is_empty():
        return []
    minutes = events.select(pl.col("event_time").dt.truncate("1m").dt.epoch("s").unique().sort()).to_series()
    return minutes.to_list()
