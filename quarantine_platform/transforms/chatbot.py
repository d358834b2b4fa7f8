"""Chatbot answers: read hourly JSON files and build the per-session report.

Pure Polars (no Dagster). The service is flow-agnostic: keys come from the data, none is named here.

Two readers give the same result. The fast one is DuckDB's native JSON reader (an in-memory connection,
no warehouse): it reads a file whose every record is valid several times faster than Python can. It
tries a plain query first (fields as text, content split from its minified text), kept only where no
text could be anything but the strings Python would decode, then an exact mapped query. Any
doubt (a record breaking the schema, malformed JSON, an empty file, a duplicate key, an element larger
than its buffer) hands the file to the streaming reader, which decodes one array element at a time and
says exactly which record is wrong and why. So rejections and errors always come from one place.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, TextIO, TypeVar

import duckdb
import numpy as np
import polars as pl

__all__ = [
    "ANSWER_SCHEMA",
    "REJECTED_SCHEMA",
    "REPORT_SCHEMA",
    "SESSION_COLUMNS",
    "ChatbotInputError",
    "ChatbotReadResult",
    "chatbot_report",
    "empty_chatbot_result",
    "flow_table",
    "flow_tables",
    "read_ahead",
    "read_chatbot_hour",
    "read_chatbot_hours",
]

UTC_DATETIME = pl.Datetime("us", "UTC")
ANSWER_SCHEMA = pl.Schema(
    {
        "customer": pl.String,
        "flow": pl.String,
        "session": pl.String,
        "timestamp": UTC_DATETIME,
        "key": pl.String,
        "value": pl.String,
        "file": pl.String,
        "position": pl.Int64,
        "key_index": pl.Int64,
    }
)
REJECTED_SCHEMA = pl.Schema({"file": pl.String, "position": pl.Int64, "reason": pl.String})
SESSION_COLUMNS: tuple[str, ...] = ("customer", "flow", "session", "first_answer_dt", "last_answer_dt")
REPORT_SCHEMA = pl.Schema(
    {**dict.fromkeys(SESSION_COLUMNS, pl.String), "key": pl.String, "value": pl.String, "key_order": pl.Int64}
)
# "Later in file order" breaks ties between answers with the same timestamp.
FILE_ORDER: tuple[str, ...] = ("file", "position", "key_index")
DT_FORMAT = "%Y-%m-%dT%H:%M:%S"
# The report packs integer ids into one UInt64 sort key while they fit; a (flow, key) lookup table is used
# while it stays this small (else a join).
_PACKED_BITS = 64
_KEY_TABLE_LIMIT = 1 << 24

# Files read side by side (read_ahead): one per core, up to 4.
READ_WORKERS = max(1, min(4, os.cpu_count() or 1))
_Read = TypeVar("_Read")

_CHUNK = 1 << 20
_SPACES = re.compile(r"[ \t\r\n]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ChatbotInputError(ValueError):
    """The file is not a JSON array at all (bad JSON, not UTF-8): nothing in it can be trusted."""

    def __init__(self, file: str, line: int | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        where = file if line is None else f"{file}, line {line}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ChatbotReadResult:
    """One row per answer (``ANSWER_SCHEMA``) and the records set aside (``REJECTED_SCHEMA``)."""

    answers: pl.DataFrame
    rejected: pl.DataFrame
    missing: bool = False


def empty_chatbot_result(missing: bool = True) -> ChatbotReadResult:
    """The result of an hour with no file: no answers, no rejections (an hour may have no traffic)."""
    return ChatbotReadResult(
        answers=pl.DataFrame(schema=ANSWER_SCHEMA),
        rejected=pl.DataFrame(schema=REJECTED_SCHEMA),
        missing=missing,
    )


def read_chatbot_hour(
    path: str | Path, *, name: str | None = None, missing_ok: bool = True, fast: bool = True
) -> ChatbotReadResult:
    """Read one hourly file: a JSON array of ``{customer, flow, session, timestamp, content}``.

    The file is read in bounded buffers (DuckDB's reader, or the streaming reader), so its size does
    not bound memory beyond the answers. CRLF, a UTF-8 BOM and any record order are accepted. Records
    breaking the schema are returned in ``rejected`` (file, position, reason); a file that is not a JSON
    array raises ``ChatbotInputError``. A missing file gives an empty result unless ``missing_ok`` is
    False. ``name`` is what the ``file`` column and error messages hold (default: the path as given).
    ``fast=False`` skips the native reader (the result is the same, only slower).
    """
    path = Path(path)
    file = name if name is not None else str(path)
    if missing_ok and not path.exists():
        return empty_chatbot_result()
    if fast and path.is_file() and (result := _read_native(path, file)) is not None:
        return result
    return _read_streaming(path, file)


def _read_streaming(path: Path, file: str) -> ChatbotReadResult:
    builder = _AnswerBuilder(file)
    try:
        # utf-8-sig drops a BOM; CR is JSON whitespace, so CRLF files need nothing more.
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for position, record in enumerate(_iter_json_array(fh, file)):
                builder.add(position, record)
    except UnicodeDecodeError as exc:
        raise ChatbotInputError(file, None, f"not valid UTF-8 ({exc.reason})") from exc
    return builder.result()


def read_ahead(reads: Iterable[Callable[[], _Read]], workers: int | None = None) -> Iterator[_Read]:
    """Run ``reads`` (each reads one file) on ``workers`` threads and yield their results in the given order.

    DuckDB and Polars release the GIL while they parse, so files read side by side use the cores; at most
    ``workers`` results are read ahead of the one the caller holds, which bounds memory. An exception is
    raised where its read stands in the order (later reads are not waited for).
    """
    workers = workers or READ_WORKERS
    pending: deque[Future[_Read]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chatbot-read") as pool:
        try:
            for read in reads:
                pending.append(pool.submit(read))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def read_chatbot_hours(paths: Iterable[str | Path]) -> ChatbotReadResult:
    """A day's hours together (missing hours contribute nothing), read side by side."""
    results = list(read_ahead(partial(read_chatbot_hour, p) for p in paths))
    if not results:
        return empty_chatbot_result()
    return ChatbotReadResult(
        answers=pl.concat([r.answers for r in results]),
        rejected=pl.concat([r.rejected for r in results]),
        missing=all(r.missing for r in results),
    )


# The characters Python's str.strip() removes: the native reader blanks exactly what _check_record blanks.
_PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Two native queries. The plain one reads every field as text and content as its minified JSON text: the
# cheapest read, but a number or object field arrives as its JSON text too, so it is trusted only where
# no text could be anything but a string (below). The mapped one reads every field as raw JSON text (a
# number or null is seen for what it is) and content as an ordered map whose values are raw JSON text:
# slower, exact for any valid file. In both, a record that is not an object or a duplicate key in a
# record makes DuckDB refuse the file (the mapped one also a duplicate key in content or a content that
# is not an object).
_PLAIN_QUERY = """
select ordinality - 1 as position, customer, flow, session, timestamp, content
from read_json(?, format = 'array', maximum_object_size = 67108864, columns = {
    customer: 'VARCHAR', flow: 'VARCHAR', session: 'VARCHAR', timestamp: 'VARCHAR', content: 'JSON'})
    with ordinality
"""
_MAPPED_QUERY = """
select ordinality - 1 as position, customer, flow, session, timestamp, content
from read_json(?, format = 'array', maximum_object_size = 67108864, columns = {
    customer: 'JSON', flow: 'JSON', session: 'JSON', timestamp: 'JSON', content: 'MAP(VARCHAR, JSON)'})
    with ordinality
"""
# The usual spelling of an instant with an offset, that Polars parses in bulk exactly as Python does.
_PLAIN_INSTANT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]([01]\d|2[0-3]):[0-5]\d$"
# What DuckDB makes of a number, boolean, object or array read as text: the plain reader leaves a field
# that looks like one of these to the mapped reader (a null arrives as null). Wider than needed on purpose.
_LITERAL = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[+-]?(?i:nan|inf|infinity)|true|false|null|[\[{].*"
_NOT_SURELY_STRING = f"(?s)^(?:{_LITERAL})$"
# A name must also not be blank: one regex (one pass over the column) says "not surely a name".
_BLANK = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _PY_WHITESPACE) + "]*"
_NOT_SURELY_NAME = f"(?s)^(?:{_LITERAL}|{_BLANK})$"


_NATIVE = threading.local()


def _native_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection per thread, kept: opening one costs more than reading a small file."""
    con = getattr(_NATIVE, "connection", None)
    if con is None:
        _keep_c_heap()
        # One thread: the array is parsed on one core anyway, and files are read side by side (read_ahead).
        con = _NATIVE.connection = duckdb.connect(config={"preserve_insertion_order": True, "threads": 1})
    return con


# glibc malloc's mmap threshold and heap trim threshold for the native reader (below).
_C_HEAP_MMAP_THRESHOLD = 256 << 20
_C_HEAP_TRIM_THRESHOLD = 512 << 20


@lru_cache(maxsize=1)
def _keep_c_heap() -> bool:
    """Let glibc's malloc keep freed memory for reuse; whether it could be set (glibc only).

    DuckDB hands each query's result over in buffers from the C allocator: with glibc's defaults, blocks
    over its mmap threshold are mapped fresh and unmapped when freed, so every file read faults ~40 MB of
    pages in again (on this VM a fresh page costs ~3.5 µs of kernel time, ~1 s per GiB). With the block
    size thresholds raised, freed result buffers are reused by the next file's (benchmarks/README.md).
    Process-wide, set once; the heap may then keep up to ``_C_HEAP_TRIM_THRESHOLD`` bytes free."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc: nothing to tune
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(
        mallopt(m_mmap_threshold, _C_HEAP_MMAP_THRESHOLD)
        and mallopt(m_trim_threshold, _C_HEAP_TRIM_THRESHOLD)
    )


def _read_native(path: Path, file: str) -> ChatbotReadResult | None:
    """The file read by DuckDB when every record is valid, else None (the streaming reader decides).

    The plain read first; a file it cannot vouch for (an escape or a non-string in a content, a field
    that might be a number, ...) is read again by the mapped query, which decides exactly."""
    con = _native_connection()
    try:
        records = con.sql(_PLAIN_QUERY, params=[str(path)]).pl()
    except duckdb.Error:
        # Malformed JSON, a record that is not an object, ... : the streaming reader names the place.
        return None
    if records.height == 0 or not records["position"].is_sorted():
        return None  # an empty file is an error the streaming reader words; order must be file order
    answers = _plain_answers(records, file)
    if answers is None:
        answers = _mapped_answers(con, path, file)
    if answers is None:
        return None
    return ChatbotReadResult(answers=answers, rejected=pl.DataFrame(schema=REJECTED_SCHEMA))


def _plain_answers(records: pl.DataFrame, file: str) -> pl.DataFrame | None:
    """The answers of the plain query's records, or None when some record is not surely of the plain kind:
    four string fields (none null, none that could be a number, boolean, object or array turned to text,
    no blank name) and a content whose minified JSON text is exactly ``{"k":"v",...}`` with no backslash
    and no repeated key. Such a text is split on its fixed separators: with no backslash every quote
    delimits a string, so a piece with exactly two quotes, those of ``":"``, is one key and one value."""
    content = pl.col("content")
    plain = (
        ~pl.col("session").str.contains(_NOT_SURELY_NAME)
        & ((content.str.starts_with('{"') & content.str.ends_with('"}')) | (content == "{}"))
        & ~content.str.contains("\\", literal=True)
    )
    # A null anywhere (a null or missing session or content) makes the row null: not plain.
    if not records.select(plain.fill_null(False).all()).item():
        return None
    # Customers, flows and timestamps repeat from record to record: each distinct text is checked once.
    if not all(_surely_names(records[f]) for f in ("customer", "flow")):
        return None
    fields = _record_fields(records, refused=_NOT_SURELY_STRING)
    if fields is None:
        return None
    pairs = pl.col("pair")
    entries = (
        records.select(
            *fields,
            pl.when(content != "{}")
            .then(content.str.strip_prefix('{"').str.strip_suffix('"}').str.split('","'))
            .alias("pair"),
        )
        .with_columns(
            pl.int_ranges(0, pairs.list.len(), dtype=pl.Int64).alias("key_index"),
            pairs.list.len().alias("keys"),
        )
        # A record with an empty content has no answer.
        .explode("pair", "key_index", empty_as_null=False, keep_nulls=False)
    )
    entries = entries.with_columns(pairs.str.split_exact('":"', 1).struct.rename_fields(["key", "value"]))
    entries = entries.unnest("pair")
    # A piece is one key and one value when it holds '":"' (else its value is null) and neither side holds a
    # quote: its only two quotes are then the separator's.
    quoted = pl.any_horizontal(pl.col(side).str.contains('"', literal=True) for side in ("key", "value"))
    if not entries.select((~quoted).fill_null(False).all()).item():
        return None
    several = entries.filter(pl.col("keys") > 1)
    if several.select(pl.struct("position", "key").n_unique() != pl.len()).item():
        return None  # a key repeated in one content: Python keeps its first place and last value
    return _answer_rows(entries, file)


def _mapped_answers(con: duckdb.DuckDBPyConnection, path: Path, file: str) -> pl.DataFrame | None:
    """The answers of the mapped query when every record is valid, else None."""
    try:
        records = con.sql(_MAPPED_QUERY, params=[str(path)]).pl()
    except duckdb.Error:
        return None
    if records.height == 0 or not records["position"].is_sorted():
        return None
    fields = ("customer", "flow", "session", "timestamp")
    if not records.select(pl.all_horizontal(_is_json_string(f) for f in fields).all()).item():
        return None
    records = records.with_columns(_json_strings(records[f]) for f in fields)
    names_ok = pl.all_horizontal(pl.col(f).str.strip_chars(_PY_WHITESPACE) != "" for f in fields[:3])
    if not records.select(names_ok.all() & pl.col("content").is_not_null().all()).item():
        return None
    fields = _record_fields(records)
    if fields is None:
        return None
    entries = (
        records.select(
            *fields,
            pl.col("content").map.entries().alias("entry"),
            pl.int_ranges(0, pl.col("content").map.len(), dtype=pl.Int64).alias("key_index"),
        )
        .explode("entry", "key_index")
        .filter(pl.col("key_index").is_not_null())  # a record with an empty content has no answer
        .unnest("entry")
    )
    if not entries.select(_is_json_string("value").all()).item():
        return None  # a value that is not a string: the streaming reader lists which
    return _answer_rows(entries.with_columns(_json_strings(entries["value"])), file)


def _surely_names(texts: pl.Series) -> bool:
    """Whether no text is null, blank or could be a number, boolean, object or array turned to text."""
    return texts.null_count() == 0 and not texts.unique().str.contains(_NOT_SURELY_NAME).any()


def _record_fields(records: pl.DataFrame, refused: str | None = None) -> list[str | pl.Series] | None:
    """The fields a native read's answers carry from their record (timestamps as epoch microseconds), or None
    when a timestamp is null, matches the pattern ``refused`` or is not an instant by Python's rule (the
    other readers then decide). Each distinct timestamp text is checked and parsed once (a file's records
    share few instants), and each row gathers its text's instant."""
    ids, texts = _ids(records["timestamp"])
    if ids.null_count() or (refused is not None and texts.str.contains(refused).any()):
        return None
    micros = _instants(texts).gather(ids)
    if micros.null_count():
        return None
    return ["customer", "flow", "session", micros.alias("timestamp"), "position"]


def _answer_rows(entries: pl.DataFrame, file: str) -> pl.DataFrame:
    """A native read's entries (timestamps in epoch microseconds, keys and values decoded) as ANSWER_SCHEMA
    rows of `file`."""
    return entries.with_columns(
        pl.col("timestamp").cast(UTC_DATETIME), pl.lit(file, pl.String).alias("file")
    ).select(ANSWER_SCHEMA.names())


def _is_json_string(column: str) -> pl.Expr:
    return pl.col(column).str.starts_with('"').fill_null(False)


def _json_strings(raw: pl.Series) -> pl.Series:
    """Decode JSON string literals; most carry no escape and only lose their quotes."""
    plain = raw.str.strip_prefix('"').str.strip_suffix('"')
    escaped = raw.str.contains("\\", literal=True)
    if not escaped.any():
        return plain
    decoded = raw.filter(escaped).str.json_decode(pl.String)
    return plain.scatter(escaped.arg_true(), decoded)


def _instants(text: pl.Series) -> pl.Series:
    """Microseconds since the epoch per timestamp text; null where Python's rule rejects it."""
    plain = pl.col("text").str.contains(_PLAIN_INSTANT)
    parsed = text.to_frame("text").with_columns(
        pl.when(plain)
        .then(pl.col("text").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", strict=False))
        .dt.epoch("us")
        .alias("micros")
    )
    # Anything else (a "Z", a space for the "T", an impossible date ...) is decided by Python's parser.
    rest = parsed.filter(pl.col("micros").is_null())["text"].to_list()
    if rest:
        decided = {t: _parse_timestamp(t) for t in rest}
        parsed = parsed.with_columns(
            pl.col("micros").fill_null(
                pl.col("text").replace_strict(
                    {t: (m if isinstance(m, int) else None) for t, m in decided.items()},
                    default=None,
                    return_dtype=pl.Int64,
                )
            )
        )
    return parsed["micros"]


class _AnswerBuilder:
    """Collects answers column by column (cheaper than one dict per row) and the rejections."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.columns: dict[str, list[Any]] = {c: [] for c in ANSWER_SCHEMA if c != "file"}
        self.rejected: dict[str, list[Any]] = {"position": [], "reason": []}

    def add(self, position: int, record: Any) -> None:
        problems, parsed = _check_record(record)
        if problems:
            self.rejected["position"].append(position)
            self.rejected["reason"].append("; ".join(problems))
            return
        customer, flow, session, micros, content = parsed
        cols = self.columns
        for key_index, (key, value) in enumerate(content.items()):
            cols["customer"].append(customer)
            cols["flow"].append(flow)
            cols["session"].append(session)
            cols["timestamp"].append(micros)
            cols["key"].append(key)
            cols["value"].append(value)
            cols["position"].append(position)
            cols["key_index"].append(key_index)

    def result(self) -> ChatbotReadResult:
        # Timestamps travel as epoch microseconds: building a Datetime column from ints is cheap.
        schema = {c: pl.Int64 if c == "timestamp" else t for c, t in ANSWER_SCHEMA.items() if c != "file"}
        answers = (
            pl.DataFrame(self.columns, schema=schema)
            .with_columns(pl.col("timestamp").cast(UTC_DATETIME), pl.lit(self.file, pl.String).alias("file"))
            .select(ANSWER_SCHEMA.names())
        )
        rejected = pl.DataFrame(self.rejected, schema={"position": pl.Int64, "reason": pl.String}).select(
            pl.lit(self.file, pl.String).alias("file"), "position", "reason"
        )
        return ChatbotReadResult(answers=answers, rejected=rejected)


def _check_record(record: Any) -> tuple[list[str], Any]:
    if not isinstance(record, dict):
        return [f"record is not an object (got {_json_type(record)})"], None
    problems: list[str] = []
    for field in ("customer", "flow", "session"):
        value = record.get(field)
        if field not in record or value is None:
            problems.append(f"no {field}")
        elif not isinstance(value, str):
            problems.append(f"{field} is not a string (got {_json_type(value)})")
        elif not value.strip():
            problems.append(f"{field} is empty")
    timestamp = record.get("timestamp")
    micros: int | None = None
    if timestamp is None:
        problems.append("no timestamp")
    elif not isinstance(timestamp, str):
        problems.append(f"timestamp is not a string (got {_json_type(timestamp)})")
    else:
        parsed = _parse_timestamp(timestamp)
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            micros = parsed
    content = record.get("content")
    if content is None:
        problems.append("no content")
    elif not isinstance(content, dict):
        problems.append(f"content is not an object (got {_json_type(content)})")
    else:
        problems.extend(
            f"content value of {key!r} is not a string (got {_json_type(value)})"
            for key, value in content.items()
            if not isinstance(value, str)
        )
    if problems:
        return problems, None
    return [], (record["customer"], record["flow"], record["session"], micros, content)


@lru_cache(maxsize=1 << 16)
def _parse_timestamp(text: str) -> int | str:
    """Microseconds since the epoch (UTC), or the reason it is not an instant. Cached: hours repeat."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return f"timestamp is not ISO 8601: {text!r}"
    # Without an offset the instant is ambiguous; guessing a zone would shift answers silently.
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return f"timestamp has no UTC offset: {text!r}"
    return (parsed.astimezone(UTC) - _EPOCH) // _MICROSECOND


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class _Stream:
    """A growing text window over the file, enough to decode one array element at a time."""

    def __init__(self, fh: TextIO, file: str) -> None:
        self.fh = fh
        self.file = file
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number of buf[0], for error messages

    def fill(self, size: int | None = None) -> bool:
        if self.eof:
            return False
        chunk = self.fh.read(size or _CHUNK)
        if not chunk:
            # Keep the window as it is: an error's position still points into it.
            self.eof = True
            return False
        self.line += self.buf.count("\n", 0, self.pos)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-blank character, or "" at the end of the file."""
        while True:
            self.pos = _SPACES.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def value(self) -> Any:
        size = _CHUNK
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # Most likely the element continues in the next chunk; read more (doubling, so a
                # huge element costs linear time) and fail only at the end of the file.
                if self.fill(size):
                    size *= 2
                    continue
                raise self.error(f"invalid JSON: {exc.msg}", exc.pos) from exc
            # A number at the window's edge may continue in the next chunk.
            if end == len(self.buf) and self.fill(size):
                continue
            self.pos = end
            return obj

    def error(self, problem: str, at: int | None = None) -> ChatbotInputError:
        at = self.pos if at is None else at
        return ChatbotInputError(self.file, self.line + self.buf.count("\n", 0, at), problem)


def _iter_json_array(fh: TextIO, file: str) -> Iterator[Any]:
    stream = _Stream(fh, file)
    first = stream.peek()
    if first == "":
        raise stream.error("file is empty (expected a JSON array)")
    if first != "[":
        raise stream.error("not a JSON array")
    stream.pos += 1
    if stream.peek() == "]":
        stream.pos += 1
    else:
        while True:
            stream.peek()
            yield stream.value()
            sep = stream.peek()
            if sep == "":
                raise stream.error("invalid JSON: the array is not closed")
            if sep not in ",]":
                raise stream.error("invalid JSON: expected ',' or ']' after an array element")
            stream.pos += 1
            if sep == "]":
                break
    if stream.peek() != "":
        raise stream.error("invalid JSON: data after the end of the array")


def chatbot_report(answers: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per (customer, flow, session) with at least one valid answer, in long form.

    Columns: customer, flow, session, first_answer_dt, last_answer_dt (UTC, ``YYYY-MM-DDTHH:MM:SS``),
    key, value (the key's latest valid answer, trimmed) and key_order (the key's column position
    within its flow, from 1), sorted by customer, flow, session, key_order. ``flow_table`` turns one
    flow into the wide table.

    Strings are hashed once into integer ids; the rest is one integer sort of the valid answers by (session,
    key_order) and reductions over its runs (each cell's latest answer, each session's first and last time),
    and a group-by of (flow, key) for the column order: no join on strings.
    """
    frame = answers.collect() if isinstance(answers, pl.LazyFrame) else answers
    if not _in_file_order(frame):
        frame = frame.sort(FILE_ORDER, maintain_order=True)
    # The text columns are not copied into a frame of the valid answers (at 10M answers every full-size copy
    # costs its fresh memory's page faults): their ids are made on the whole columns, chunked as they came,
    # blank answers included (ids only need to order the texts), and only the ids are filtered; texts are
    # gathered back where the report shows them.
    # The Series operations below each run on one core: the session ids (the costliest, ~1.9M distinct texts
    # at 10M answers) are built on other threads meanwhile (Polars releases the GIL), in parts that each hold
    # whole customers: a session's rank within its part then orders it within its customer, which is all the
    # (customer, flow, session) ids below need. More parts than threads: a part's smaller hash table costs
    # less per text (~55 against ~83 ns at 8 parts of ~1.2M texts); rows are grouped by part in one pass.
    part = _customer_part(frame["customer"])
    parts = 1 if part is None else SESSION_PARTS
    with ThreadPoolExecutor(
        max_workers=min(parts, SESSION_THREADS), thread_name_prefix="chatbot-report"
    ) as pool:

        def submit_parts(
            part: pl.Series | None,
        ) -> list[Future[tuple[pl.Series | None, pl.Series, pl.Series]]]:
            """Group the rows by part, then queue each part's session ids (on a pool thread: this thread
            trims the values meanwhile)."""
            if part is None:
                return [pool.submit(_part_session_ids, frame["session"], None)]
            part_rows, bounds = _grouped(part, parts)
            texts = frame["session"].rechunk()
            return [
                pool.submit(_part_session_ids, texts, part_rows.slice(bounds[n], bounds[n + 1] - bounds[n]))
                for n in range(parts)
            ]

        queued = pool.submit(submit_parts, part)
        # Surrounding blanks are not part of the answer; an empty or blank value is no answer at all.
        # In one chunk (the answers arrive in many: one per hour, per DuckDB batch) for the kept values'
        # random gather below, which costs ~15x more over many chunks; trimmed in one pass.
        value = frame["value"].rechunk().str.strip_chars()
        answered = (value != "").fill_null(False)
        source_row = answered.arg_true()  # each valid answer's row in ``frame``
        # Waited for here, before any return: the parts are queued before the pool shuts down.
        session_ids = queued.result()
        if len(source_row) == 0:
            return pl.DataFrame(schema=REPORT_SCHEMA)
        for column in ("customer", "flow", "session", "key", "timestamp"):
            # Readers and the warehouse never give a null name or time; a null would get no id (no place in
            # time) below.
            if frame[column].null_count() and (missing := (frame[column].is_null() & answered).sum()):
                raise ValueError(f"{missing} answer(s) with no {column} (a null {column})")
        # The customer and flow ids wait in the pool behind the session parts: its threads take them once the
        # sessions are done, while this thread makes the times and the key ids (no core left idle).
        lexical = [pool.submit(_lexical_ids, frame[c], answered) for c in ("customer", "flow")]
        # Report times are UTC whatever zone the answers carry (naive ones are UTC): epoch microseconds. One
        # chunk: the answers arrive in many (one per hour, per DuckDB batch), and the random gathers below
        # are several times slower over a chunked column.
        micros = frame["timestamp"].dt.epoch("us").filter(answered).rechunk()
        key, key_texts = _ids(frame["key"], answered)
        keys = len(key_texts)
        when = _time_order(micros)
        (customer, customer_texts), (flow, flow_texts) = (ids.result() for ids in lexical)
        flows = len(flow_texts)
        session, session_texts = _merged_ids(session_ids, frame.height)
        sessions = len(session_texts)
        session = session.filter(answered)
    del part, session_ids, queued
    # A key's column position within its flow: the order of the keys' first valid answers.
    flow_key = flow.cast(pl.UInt64) * keys + key.cast(pl.UInt64)
    firsts = (
        pl.DataFrame({"flow_key": flow_key, "when": when})
        .group_by("flow_key")
        .agg(pl.col("when").min())
        .sort("when")
        .with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over(pl.col("flow_key") // keys).alias("order")
        )
    )
    if flows * keys <= _KEY_TABLE_LIMIT:
        table = pl.zeros(flows * keys, dtype=pl.UInt32, eager=True).scatter(
            firsts["flow_key"], firsts["order"]
        )
        key_order = table.gather(flow_key)
    else:
        key_order = flow_key.to_frame("flow_key").join(
            firsts, on="flow_key", how="left", maintain_order="left"
        )["order"]
    # Rows stably sorted by (session, key_order): each (session, key)'s rows are together, and these runs
    # come in the report's order.
    order_bits = _bits(int(firsts["order"].max()))
    # Each step below drops what it no longer needs: freed pages are reused by the next columns, where fresh
    # ones would cost their page faults.
    del flow_key, firsts
    session_id = _session_ids(customer, flow, flows, session, sessions, order_bits, key_order)
    rows, cell = _stable_sort(session_id)
    del session_id
    # One expression: the shifted and divided columns are not materialised each (fresh pages at 10M rows).
    cell_runs = cell.to_frame("cell").select(
        (pl.col("cell") != pl.col("cell").shift(1)).fill_null(True).alias("new_cell"),
        (pl.col("cell") // (1 << order_bits)).alias("session"),
    )
    del cell
    new_cell = cell_runs["new_cell"]
    new_session = cell_runs.select(
        (pl.col("session") != pl.col("session").shift(1)).fill_null(True)
    ).to_series()
    del cell_runs

    def per_session() -> pl.DataFrame:
        """Each session's texts and its first and last time: a min and a max over each run of its rows
        (numpy's reduceat is one pass over the sorted rows, where a group-by hashes them)."""
        starts = new_session.arg_true()
        bounds = starts.cast(pl.Int64).to_numpy()
        times = micros.gather(rows).to_numpy()
        first_row = rows.gather(starts)
        return pl.DataFrame(
            [
                # Every text from its table of distinct texts (one chunk, the sessions' from their parts).
                customer_texts.gather(customer.gather(first_row)).alias("customer"),
                flow_texts.gather(flow.gather(first_row)).alias("flow"),
                session_texts.gather(session.gather(first_row)).alias("session"),
                _utc_texts(pl.Series(np.minimum.reduceat(times, bounds))).alias("first_answer_dt"),
                _utc_texts(pl.Series(np.maximum.reduceat(times, bounds))).alias("last_answer_dt"),
            ]
        )

    def kept_keys(kept: pl.Series) -> pl.DataFrame:
        return pl.DataFrame(
            [
                key_texts.gather(key.gather(kept)).alias("key"),
                key_order.gather(kept).cast(pl.Int64).alias("key_order"),
            ]
        )

    # The sessions, the kept keys and the kept values are independent: built side by side.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="chatbot-report") as pool:
        sessions = pool.submit(per_session)
        # Each (session, key)'s answer is its latest: the row of the run's largest place in time.
        kept_at = _run_maxima(when, new_cell, rows)
        del when, new_cell
        kept = rows.gather(kept_at)
        keys = pool.submit(kept_keys, kept)
        values = value.gather(source_row.gather(kept))
        session_index = (new_session.cum_sum() - 1).gather(kept_at)
        session_columns = sessions.result()[session_index]
        return pl.concat([session_columns, values.to_frame(), keys.result()], how="horizontal").select(
            REPORT_SCHEMA.names()
        )


# Session ids are built in this many parts, on this many threads, once a day has this many answers (below
# it one part costs less than the threads).
SESSION_PARTS = 8
SESSION_THREADS = 2
_PART_ROWS = 1 << 20


def _customer_part(customer: pl.Series) -> pl.Series | None:
    """Each row's part (0 .. ``SESSION_PARTS`` - 1) by its customer text's hash, so that a customer's rows are
    all in one part; None for one part."""
    if SESSION_PARTS < 2 or len(customer) < _PART_ROWS:
        return None
    return customer.hash() % SESSION_PARTS


def _part_session_ids(
    texts: pl.Series, rows: pl.Series | None
) -> tuple[pl.Series | None, pl.Series, pl.Series]:
    """One part's rows (None: all of them), their texts' ranks among the part's distinct texts, and those
    distinct texts in rank order."""
    if rows is None:
        ranks, distinct = _lexical_ids(texts, many=True)
        return None, ranks, distinct
    if len(rows) == 0:
        return rows, pl.Series(dtype=pl.UInt32), pl.Series(dtype=pl.String)
    ranks, distinct = _lexical_ids(texts.gather(rows), many=True)
    return rows, ranks, distinct


def _merged_ids(
    parts: list[Future[tuple[pl.Series | None, pl.Series, pl.Series]]], size: int
) -> tuple[pl.Series, pl.Series]:
    """Each part's ids, raised by the parts' counts before it, put back at their rows' places; and the text
    of each merged id (the parts' distinct texts one after the other, in one chunk). Within a part the ids
    still order the texts, so they order a customer's sessions (a customer is in one part)."""
    all_rows, all_ids, texts = [], [], []
    for future in parts:
        rows, ids, distinct = future.result()
        if rows is None:
            return ids, distinct
        all_rows.append(rows)
        all_ids.append(ids + sum(len(t) for t in texts))
        texts.append(distinct)
    merged = pl.zeros(size, dtype=pl.UInt32, eager=True).scatter(pl.concat(all_rows), pl.concat(all_ids))
    return merged, pl.concat(texts, rechunk=True)


def _session_ids(
    customer: pl.Series,
    flow: pl.Series,
    flows: int,
    session: pl.Series,
    sessions: int,
    spare_bits: int,
    low: pl.Series | None = None,
) -> pl.Series:
    """(customer, flow, session) ranks as one integer ordered like the three texts, shifted ``spare_bits``
    up, plus ``low`` (each below ``1 << spare_bits``; default 0): the three ranks packed side by side, or
    their dense rank when they do not fit. One expression, so no intermediate column is materialised."""
    flow_bits, session_bits = _bits(flows - 1), _bits(sessions - 1)
    triples = pl.DataFrame({"c": customer, "f": flow, "s": session})
    c, f, s = (pl.col(name).cast(pl.UInt64) for name in ("c", "f", "s"))
    if _bits(int(customer.max())) + flow_bits + session_bits + spare_bits <= _PACKED_BITS:  # type: ignore[arg-type]
        ids = (c * (1 << (flow_bits + session_bits)) + f * (1 << session_bits) + s) * (1 << spare_bits)
    else:
        ids = (pl.struct("c", "f", "s").rank("dense").cast(pl.UInt64) - 1) * (1 << spare_bits)
    if low is not None:
        triples = triples.with_columns(low.alias("low"))
        ids = ids + pl.col("low").cast(pl.UInt64)
    return _streamed(triples, ids).to_series()


def _stable_sort(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """The stable sorting permutation of UInt64 ``values`` and the sorted values. While each value and its
    position fit in 64 bits side by side, the packed integers are sorted (all distinct, so any sort is
    stable, and a plain sort of integers is cheaper than a stable arg sort) and split again."""
    position_bits = _bits(len(values) - 1)
    packs = len(values) > 0 and values.null_count() == 0
    if not packs or _bits(int(values.max())) + position_bits > _PACKED_BITS:  # type: ignore[arg-type]
        order = values.to_frame("v").select(pl.arg_sort_by("v", maintain_order=True)).to_series()
        return order, values.gather(order)
    # One expression each way: no intermediate column is materialised (fresh pages at 10M rows).
    v = pl.col("v")
    packed = values.to_frame("v").select(
        (v * (1 << position_bits) + pl.int_range(0, pl.len(), dtype=pl.UInt64)).sort()
    )
    split = packed.select(
        (v % (1 << position_bits)).cast(pl.UInt32).alias("order"), v // (1 << position_bits)
    )
    return split["order"], split["v"]


def _time_order(micros: pl.Series) -> pl.Series:
    """Each row's place in time as a UInt64, ties in row order (the rows are in file order): the time since
    the earliest and the row number packed side by side while they fit, else the rank of a stable sort."""
    row_bits = _bits(len(micros) - 1)
    t = pl.col("t")
    if micros.null_count() == 0 and _bits(int(micros.max()) - int(micros.min())) + row_bits <= _PACKED_BITS:  # type: ignore[arg-type]
        # One expression: no intermediate column is materialised (fresh pages at 10M rows).
        return (
            micros.to_frame("t")
            .select(
                (t - t.min()).cast(pl.UInt64) * (1 << row_bits) + pl.int_range(0, pl.len(), dtype=pl.UInt64)
            )
            .to_series()
        )
    offset = (micros - micros.min()).cast(pl.UInt64)
    in_time, _ = _stable_sort(offset)
    return _inverse(in_time).cast(pl.UInt64)


def _run_maxima(values: pl.Series, run_start: pl.Series, rows: pl.Series | None = None) -> pl.Series:
    """Where each run's largest value is (row i's value is ``values[rows[i]]``, default ``values[i]``;
    distinct, not null; a run starts where ``run_start``). A run of one row is its own maximum; the rows of
    longer runs (few: an answer given again) are reduced by numpy's reduceat, then the rows holding the
    maxima are marked among the single ones."""
    alone = run_start.to_frame("start").select(pl.col("start") & pl.col("start").shift(-1, fill_value=True))
    alone = alone.to_series()
    shared = (~alone).arg_true()
    if len(shared) == 0:
        return alone.arg_true()
    shared_rows = shared if rows is None else rows.gather(shared)
    maxima = _shared_run_maxima(values.gather(shared_rows), run_start.gather(shared))
    return alone.scatter(shared.gather(maxima), True).arg_true()


def _shared_run_maxima(values: pl.Series, run_start: pl.Series) -> pl.Series:
    """``_run_maxima`` by numpy's reduceat over every run: one pass for the maxima, then their rows."""
    starts = run_start.arg_true().cast(pl.Int64).to_numpy()
    run = run_start.cum_sum() - 1
    maxima = pl.Series(np.maximum.reduceat(values.to_numpy(), starts))
    return (values == maxima.gather(run)).arg_true()


def _utc_texts(micros: pl.Series) -> pl.Series:
    """``DT_FORMAT`` text of each epoch-microsecond instant (UTC). The text is that of the instant's second,
    so while the seconds span no more values than there are instants (a day: 86,400 seconds for ~2M
    sessions), each second is formatted once and the texts are gathered: formatting is the costly part."""
    seconds = micros // 1_000_000  # floor: an instant before 1970 belongs to the second that starts before it
    low = int(seconds.min() or 0)  # type: ignore[arg-type]
    span = int(seconds.max() or 0) - low + 1  # type: ignore[arg-type]
    if span > max(len(micros), 1 << 16):
        return pl.from_epoch(micros, "us").dt.strftime(DT_FORMAT)
    table = pl.from_epoch(pl.int_range(low, low + span, eager=True), "s").dt.strftime(DT_FORMAT)
    return table.gather(seconds - low)  # a null instant gathers a null text


def _grouped(ids: pl.Series, count: int) -> tuple[pl.Series, list[int]]:
    """Row numbers grouped by id (0 .. ``count`` - 1), ascending within an id, and where each id's rows start
    (``count`` + 1 bounds): id i's rows are ``[bounds[i], bounds[i + 1])``."""
    if count <= 1 << 8 and ids.null_count() == 0:
        # A few ids (flows): numpy's stable sort of bytes is a radix sort, one pass (~4x cheaper).
        small = ids.cast(pl.UInt8).to_numpy()
        bounds = np.concatenate([[0], np.cumsum(np.bincount(small, minlength=count))])
        return pl.Series(np.argsort(small, kind="stable")).cast(pl.UInt32), bounds.tolist()
    order, grouped = _stable_sort(ids.cast(pl.UInt64))
    targets = pl.int_range(0, count + 1, dtype=pl.UInt64, eager=True)
    return order, grouped.search_sorted(targets, side="left").to_list()


def _bits(largest: int) -> int:
    return max(largest.bit_length(), 1)


def _streamed(frame: pl.DataFrame, *exprs: pl.Expr) -> pl.DataFrame:
    """``frame.select(*exprs)`` run by Polars' streaming engine: row-wise steps over 10M rows then run in
    batches on every core, where the eager ``select`` runs one column's expression on one core and
    materialises each intermediate column (fresh pages). Same rows, same order."""
    return frame.lazy().select(*exprs).collect(engine="streaming")


def _ids(
    texts: pl.Series, kept: pl.Series | None = None, *, many: bool = False
) -> tuple[pl.Series, pl.Series]:
    """A dense integer per distinct text (0, 1, ... in order of first appearance; one hashing pass) for the
    rows ``kept`` (default all, in one chunk), and the text of each integer. ``many``: the texts are expected
    to be many (sessions), so that one row of each id is cheaper to gather than the mapping to read."""
    categories = pl.Categories.random()
    categorical = texts.cast(pl.Categorical(categories))
    ids = categorical.to_physical()
    distinct = _texts_of_ids(texts, ids) if many else None
    if distinct is None:
        # The mapping lives while a column of its type does: read it before the column goes.
        distinct = categories.to_series()
    if kept is not None:
        ids = ids.filter(kept)
    return ids.rechunk(), distinct


def _texts_of_ids(texts: pl.Series, ids: pl.Series) -> pl.Series | None:
    """The text of each id (0 .. the largest), from one of its rows: ~2x cheaper than reading the
    categories' mapping for ~1M distinct texts. None when some id has no row or a row no id (a null text)."""
    if len(ids) == 0 or ids.null_count():
        return None
    one_row = pl.repeat(None, int(ids.max()) + 1, dtype=pl.UInt32, eager=True).scatter(  # type: ignore[arg-type]
        ids, pl.int_range(0, len(ids), dtype=pl.UInt32, eager=True)
    )
    if one_row.null_count():
        return None
    return texts.gather(one_row)


def _inverse(permutation: pl.Series) -> pl.Series:
    size = len(permutation)
    return pl.zeros(size, dtype=pl.UInt32, eager=True).scatter(
        permutation, pl.int_range(0, size, dtype=pl.UInt32, eager=True)
    )


def _lexical_ids(
    texts: pl.Series, kept: pl.Series | None = None, *, many: bool = False
) -> tuple[pl.Series, pl.Series]:
    """Per row (of those ``kept``, default all), the rank of its text among the distinct texts (so integers
    sort as the texts do), and the distinct texts in rank order. Only the distinct texts are sorted."""
    ids, distinct = _ids(texts, kept, many=many)
    by_text = distinct.arg_sort()
    return _inverse(by_text).gather(ids), distinct.gather(by_text)


def _in_file_order(answers: pl.DataFrame) -> bool:
    """Whether the rows are sorted by ``FILE_ORDER`` (one vectorized pass, much cheaper than a sort)."""
    file, position, key_index = (pl.col(c) for c in FILE_ORDER)
    before = [c.shift(1) for c in (file, position, key_index)]
    if answers["file"].null_count() == 0 and answers["file"].is_sorted():
        # Files ascending (a cheap check, often known from the columns' flags): only the places within one
        # file are left to compare, and no text more than once per row.
        later = (
            (file != before[0]) | (position > before[1]) | ((position == before[1]) & (key_index > before[2]))
        )
        return bool(_streamed(answers, later.fill_null(True).all()).item())
    later = (file > before[0]) | (
        (file == before[0]) & ((position > before[1]) | ((position == before[1]) & (key_index > before[2])))
    )
    return bool(_streamed(answers, later.fill_null(True).all()).item())


def _ascending(columns: tuple[str, ...]) -> pl.Expr:
    """Whether each row's ``columns``, as a tuple, come strictly after those of the row before (null where a
    value or the row before is missing)."""
    later = pl.lit(False)
    for c in reversed(columns):
        later = (pl.col(c) > _before(c)) | ((pl.col(c) == _before(c)) & later)
    return later


def _before(column: str) -> pl.Expr:
    """The column's value in the row before (null in the first row)."""
    return pl.col(column).shift(1)


def flow_table(report_long: pl.DataFrame, flow: str) -> pl.DataFrame:
    """One flow's report, wide: the session columns, then one column per key in ``key_order``."""
    return _wide(report_long.filter(pl.col("flow") == flow), flow)


def flow_tables(report_long: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every flow's wide table, by flow."""
    tables = _wide_tables(report_long)
    if tables is not None:
        return tables
    parts = report_long.partition_by("flow", as_dict=True)
    return {flow: _wide(parts[(flow,)], flow) for flow in sorted(flow for (flow,) in parts)}


def _wide(rows: pl.DataFrame, flow: str) -> pl.DataFrame:
    tables = _wide_tables(rows)
    if tables is not None and flow in tables:
        return tables[flow]
    keys: list[str] = rows.select("key", "key_order").unique().sort("key_order", "key")["key"].to_list()
    clash = [k for k in keys if k in SESSION_COLUMNS]
    if clash:
        raise ValueError(f"flow {flow!r}: key(s) {clash} collide with the report's own columns")
    if not keys:
        return pl.DataFrame(schema=dict.fromkeys(SESSION_COLUMNS, pl.String))
    # One row per (session, key) in the report, so the pivot never has two values for a cell.
    return (
        rows.pivot(on="key", index=list(SESSION_COLUMNS), values="value")
        .sort("customer", "session")
        .select(*SESSION_COLUMNS, *(pl.col(k).cast(pl.String) for k in keys))
    )


def _wide_tables(rows: pl.DataFrame) -> dict[str, pl.DataFrame] | None:
    """Every flow's wide table without a pivot, for rows as ``chatbot_report`` and the warehouse give them:
    sorted by (customer, flow, session, key_order), one row per cell, one key per (flow, key_order), the
    session columns the same on every row of a session. A session is then a run of rows and a
    (flow, key_order) a column, so the tables are integer gathers. None when the rows are not like that:
    the pivot path decides (and words the errors)."""
    if rows.height == 0:
        return None
    rows = rows.rechunk()
    order = rows["key_order"]
    if order.null_count() or int(order.min()) < 0:  # type: ignore[arg-type]
        return None
    same = pl.all_horizontal(pl.col(c) == _before(c) for c in SESSION_COLUMNS[:3])
    same_times = pl.all_horizontal(pl.col(c) == _before(c) for c in SESSION_COLUMNS[3:])
    nulls = any(rows[c].null_count() for c in SESSION_COLUMNS)
    if nulls:
        ordered = _ascending((*SESSION_COLUMNS[:3], "key_order")).fill_null(True).all()
    else:
        # Without nulls, (customer, flow, session, key_order) ascend when key_order ascends within each
        # session and (customer, flow, session) from each session to the next: the texts are then compared
        # on the sessions' first rows only (below), not on every row.
        ordered = (~same | (pl.col("key_order") > _before("key_order"))).fill_null(True).all()
    checks = _streamed(
        rows,
        same.fill_null(False).alias("same"),
        ordered.alias("ordered"),
        (~same | same_times).fill_null(True).all().alias("consistent"),
    )
    if not (checks["ordered"][0] and checks["consistent"][0]):
        return None
    new = ~checks["same"]
    session_of_row = new.cast(pl.UInt32).cum_sum() - 1
    sessions = rows.filter(new).select(SESSION_COLUMNS)
    if not nulls:
        names = sessions.select(SESSION_COLUMNS[:3])
        if not names.select(_ascending(SESSION_COLUMNS[:3]).fill_null(True).all()).item():
            return None
    session_flow, flow_texts = _ids(sessions["flow"])
    flows, orders = len(flow_texts), int(order.max()) + 1  # type: ignore[arg-type]
    if flows * orders > _KEY_TABLE_LIMIT:
        return None
    row_flow = session_flow.gather(session_of_row)
    # Rows and sessions grouped by flow with one stable sort each (not one scan of all rows per flow): on
    # another thread, while the key checks below run here (Polars and numpy release the GIL).
    with ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="chatbot-tables") as pool:
        row_groups = pool.submit(_grouped, row_flow, flows)
        session_groups = pool.submit(_grouped, session_flow, flows)
        # (flow, key_order) as one integer; any row of it names its key, and every row must carry that key.
        cell = row_flow.cast(pl.Int64) * orders + order
        # One row of each cell (a scatter into the small table of cells: where rows share a cell, any one of
        # them), and the cells present, in (flow, key_order) order: a column each.
        row_of_cell = pl.repeat(None, flows * orders, dtype=pl.UInt32, eager=True).scatter(
            cell, pl.int_range(0, rows.height, dtype=pl.UInt32, eager=True)
        )
        present = row_of_cell.is_not_null()
        columns = (
            rows.select("flow", "key")[row_of_cell.filter(present)]
            .with_columns(present.arg_true().alias("cell"))
            .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over("flow").alias("column"))
        )
        refused = pl.col("key").is_in(SESSION_COLUMNS).any() | pl.struct("flow", "key").is_duplicated().any()
        if columns.select(refused).item():
            return None
        # Each cell's column number among the cells present (absent cells are never gathered).
        slot = (present.cast(pl.UInt32).cum_sum() - 1).gather(cell)
        if not (rows["key"] == columns["key"].gather(slot)).all():
            return None
        column_of_row = columns["column"].gather(slot)
        # Each session's row number within its flow's table.
        local = session_flow.to_frame("flow").select(pl.int_range(pl.len(), dtype=pl.UInt32).over("flow"))
        local = local.to_series()
        values = rows["value"]
        row_by_flow, row_bounds = row_groups.result()
        session_by_flow, session_bounds = session_groups.result()

        def flow_table(flow: str, keys: list[str], flow_id: int) -> tuple[str, pl.DataFrame]:
            span = session_bounds[flow_id], session_bounds[flow_id + 1] - session_bounds[flow_id]
            table = sessions[session_by_flow.slice(*span)]
            flow_rows = row_by_flow.slice(row_bounds[flow_id], row_bounds[flow_id + 1] - row_bounds[flow_id])
            # Each row's place in the table's cells laid out row by row (its session's row times the width,
            # plus its column): one scatter places every row, and each column is every width-th slot.
            width = len(keys)
            row_local = local.gather(session_of_row.gather(flow_rows)).cast(pl.Int64)
            place = row_local * width + column_of_row.gather(flow_rows)
            row_at = pl.repeat(None, table.height * width, dtype=pl.UInt32, eager=True).scatter(
                place, flow_rows
            )
            return flow, table.with_columns(
                values.gather(row_at.gather_every(width, j)).alias(key) for j, key in enumerate(keys)
            )

        per_flow = columns.group_by("flow", maintain_order=True).agg(
            "key", (pl.col("cell") // orders).first().alias("flow_id")
        )
        # Flows are independent: built side by side (Polars releases the GIL).
        tables = dict(pool.map(lambda flow: flow_table(*flow), per_flow.iter_rows()))
    return dict(sorted(tables.items()))
