"""Chatbot answers and report, as design.md "Chatbot report" states them: one rule per test."""

from __future__ import annotations

import json
import platform
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.transforms import chatbot
from quarantine_platform.transforms.chatbot import (
    ANSWER_SCHEMA,
    REJECTED_SCHEMA,
    REPORT_SCHEMA,
    SESSION_COLUMNS,
    ChatbotInputError,
    ChatbotReadResult,
    chatbot_report,
    empty_chatbot_result,
    flow_table,
    read_chatbot_hour,
    read_chatbot_hours,
)

DATA = Path(__file__).resolve().parents[2] / "data"
SEED_DAY = DATA / "chatbot" / "date=2019-12-16"


def record(
    session: str, time: str, content: dict[str, Any], *, customer: str = "C1", flow: str = "F1"
) -> dict:
    """A record at 2019-12-16 ``time`` UTC."""
    return {
        "customer": customer,
        "flow": flow,
        "session": session,
        "timestamp": f"2019-12-16T{time}+00:00",
        "content": content,
    }


def write_hour(path: Path, records: list[Any], *, crlf: bool = False, bom: bool = False) -> Path:
    text = json.dumps(records, indent=2)
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def ts(time: str) -> datetime:
    return datetime.fromisoformat(f"2019-12-16T{time}").replace(tzinfo=UTC)


def answers(*rows: tuple[str, str, str, str, str, str, str, int, int]) -> pl.DataFrame:
    """Answers from (customer, flow, session, "HH:MM:SS", key, value, file, position, key_index)."""
    return pl.DataFrame(
        [(c, f, s, ts(t), k, v, file, p, i) for c, f, s, t, k, v, file, p, i in rows],
        schema=ANSWER_SCHEMA,
        orient="row",
    )


def rejected(*rows: tuple[str, int, str]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=REJECTED_SCHEMA, orient="row")


def report(*rows: tuple[str, str, str, str, str, str, str, int]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=REPORT_SCHEMA, orient="row")


def table(keys: list[str], *rows: tuple[str | None, ...]) -> pl.DataFrame:
    """An expected wide table: the session columns, then ``keys``."""
    return pl.DataFrame(list(rows), schema=dict.fromkeys([*SESSION_COLUMNS, *keys], pl.String), orient="row")


def day_report(*paths: Path) -> pl.DataFrame:
    result = read_chatbot_hours(paths)
    assert_frame_equal(result.rejected, rejected())
    return chatbot_report(result.answers)


# --- the shipped seed -----------------------------------------------------------------------------


def test_seed_hours_give_the_design_tables() -> None:
    long = day_report(SEED_DAY / "hour=13.json", SEED_DAY / "hour=14.json")

    assert_frame_equal(
        flow_table(long, "F1000"),
        table(
            ["name", "cpf", "delivery_confirmed"],
            (
                "C1000",
                "F1000",
                "S1000",
                "2019-12-16T13:59:58",
                "2019-12-16T14:00:01",
                "maria",
                "305.584.960-40",
                "true",
            ),
            (
                "C1000",
                "F1000",
                "S2000",
                "2019-12-16T13:59:59",
                "2019-12-16T14:00:00",
                "joao",
                "733.600.420-26",
                "false",
            ),
        ),
    )
    assert_frame_equal(
        flow_table(long, "F2000"),
        table(
            ["recomenda", "nota"],
            ("C2000", "F2000", "S3000", "2019-12-16T13:59:59", "2019-12-16T14:00:01", "Simmmmmmm", "9"),
        ),
    )


def test_no_key_is_named_in_the_code() -> None:
    source = Path(chatbot.__file__).read_text()

    for key in ("name", "cpf", "delivery_confirmed", "recomenda", "nota"):
        assert f'"{key}"' not in source and f"'{key}'" not in source


# --- reading an hour -------------------------------------------------------------------------------


def test_read_gives_one_row_per_answer_with_its_place_in_the_file(tmp_path: Path) -> None:
    path = write_hour(
        tmp_path / "hour=13.json",
        [
            record("S1", "13:00:05", {"a": "x", "b": " y "}),
            {**record("S2", "13:00:01", {}), "timestamp": "2019-12-16T10:00:01-03:00"},
            record("S2", "13:00:02", {"a": ""}),
        ],
    )

    result = read_chatbot_hour(path)

    file = str(path)
    assert_frame_equal(
        result.answers,
        answers(
            ("C1", "F1", "S1", "13:00:05", "a", "x", file, 0, 0),
            ("C1", "F1", "S1", "13:00:05", "b", " y ", file, 0, 1),
            ("C1", "F1", "S2", "13:00:02", "a", "", file, 2, 0),
        ),
    )
    assert_frame_equal(result.rejected, rejected())
    assert not result.missing


def test_the_file_column_holds_the_name_given(tmp_path: Path) -> None:
    path = write_hour(tmp_path / "x.json", [record("S1", "13:00:00", {"a": "1"})])

    result = read_chatbot_hour(path, name="hour=13.json")

    assert result.answers["file"].to_list() == ["hour=13.json"]


def test_crlf_and_a_bom_read_like_a_plain_file(tmp_path: Path) -> None:
    records = [record("S1", "13:00:00", {"a": "x\r\ny"}), record("S2", "13:00:01", {"b": "z"})]
    plain = write_hour(tmp_path / "plain.json", records)
    windows = write_hour(tmp_path / "windows.json", records, crlf=True, bom=True)

    assert_frame_equal(
        read_chatbot_hour(windows).answers.drop("file"), read_chatbot_hour(plain).answers.drop("file")
    )
    assert read_chatbot_hour(windows).answers["value"].to_list() == ["x\r\ny", "z"]


def test_a_missing_hour_is_an_empty_result_not_an_error(tmp_path: Path) -> None:
    result = read_chatbot_hour(tmp_path / "hour=03.json")

    assert_frame_equal(result.answers, pl.DataFrame(schema=ANSWER_SCHEMA))
    assert_frame_equal(result.rejected, rejected())
    assert result.missing
    assert_frame_equal(result.answers, empty_chatbot_result().answers)
    with pytest.raises(FileNotFoundError):
        read_chatbot_hour(tmp_path / "hour=03.json", missing_ok=False)


def test_a_day_with_missing_hours_reads_the_hours_present(tmp_path: Path) -> None:
    path = write_hour(tmp_path / "hour=13.json", [record("S1", "13:00:00", {"a": "1"})])

    result = read_chatbot_hours([tmp_path / "hour=12.json", path])

    assert_frame_equal(result.answers, answers(("C1", "F1", "S1", "13:00:00", "a", "1", str(path), 0, 0)))
    assert not result.missing


def test_records_breaking_the_schema_are_rejected_with_file_position_and_reason(tmp_path: Path) -> None:
    good = record("S1", "13:00:00", {"a": "kept"})
    path = write_hour(
        tmp_path / "hour=13.json",
        [
            {k: v for k, v in record("S1", "13:00:00", {"a": "1"}).items() if k != "session"},
            record("S1", "13:00:00", ["a", "1"]),  # type: ignore[arg-type]
            record("S1", "13:00:00", {"a": 1, "b": "ok", "c": None}),
            {**record("S1", "13:00:00", {"a": "1"}), "timestamp": "yesterday"},
            {**record("S1", "13:00:00", {"a": "1"}), "timestamp": "2019-12-16T13:00:00"},
            {**record("S1", "13:00:00", {"a": "1"}), "customer": 1000},
            good,
            "not a record",
            {**record("", "13:00:00", {"a": "1"}), "flow": None, "content": None},
        ],
    )

    result = read_chatbot_hour(path)

    file = str(path)
    assert_frame_equal(
        result.rejected,
        rejected(
            (file, 0, "no session"),
            (file, 1, "content is not an object (got array)"),
            (
                file,
                2,
                "content value of 'a' is not a string (got number); "
                "content value of 'c' is not a string (got null)",
            ),
            (file, 3, "timestamp is not ISO 8601: 'yesterday'"),
            (file, 4, "timestamp has no UTC offset: '2019-12-16T13:00:00'"),
            (file, 5, "customer is not a string (got number)"),
            (file, 7, "record is not an object (got string)"),
            (file, 8, "no flow; session is empty; no content"),
        ),
    )
    assert_frame_equal(result.answers, answers(("C1", "F1", "S1", "13:00:00", "a", "kept", file, 6, 0)))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "line 1: file is empty (expected a JSON array)"),
        ("\r\n  \r\n", "line 3: file is empty (expected a JSON array)"),
        ('{"customer": "C1"}', "line 1: not a JSON array"),
        (
            '[\n  {"customer": "C1",}\n]',
            "line 2: invalid JSON: Expecting property name enclosed in double quotes",
        ),
        (
            '[\n  {"customer": "C1"}\n  {"customer": "C2"}\n]',
            "line 3: invalid JSON: expected ',' or ']' after an array element",
        ),
        ('[\n  {"customer": "C1"},\n', "line 3: invalid JSON: Expecting value"),
        ('[\n  {"customer": "C1"}\n', "line 3: invalid JSON: the array is not closed"),
        ("[]\n[]", "line 2: invalid JSON: data after the end of the array"),
    ],
)
@pytest.mark.parametrize("chunk", [2, 1 << 20])
def test_a_file_that_is_not_a_json_array_is_an_error_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str, chunk: int
) -> None:
    path = tmp_path / "hour=13.json"
    path.write_text(text)
    # Line numbers stay right however the file is cut into chunks.
    monkeypatch.setattr(chatbot, "_CHUNK", chunk)

    with pytest.raises(ChatbotInputError) as error:
        read_chatbot_hour(path)

    assert str(error.value) == f"{path}, {problem}"


def test_an_empty_array_has_no_answers(tmp_path: Path) -> None:
    path = tmp_path / "hour=13.json"
    path.write_text(" [ ] \n")

    assert_frame_equal(read_chatbot_hour(path).answers, pl.DataFrame(schema=ANSWER_SCHEMA))


def test_a_file_is_streamed_in_chunks_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [record(f"S{i}", f"13:00:{i:02d}", {"a": f"{i}" * i, "b": "é\u00e7"}) for i in range(40)]
    records.append({**record("S9", "13:00:00", {}), "extra": [1, 2.5e3, 123456789, True, None]})
    path = write_hour(tmp_path / "hour=13.json", records, crlf=True, bom=True)
    whole = read_chatbot_hour(path)

    # Windows of a few characters force every element to straddle chunk boundaries.
    monkeypatch.setattr(chatbot, "_CHUNK", 3)
    streamed = read_chatbot_hour(path)

    assert streamed.answers.height == 80
    assert_frame_equal(streamed.answers, whole.answers)
    assert_frame_equal(streamed.rejected, whole.rejected)


# --- the report ------------------------------------------------------------------------------------


def test_the_long_report_has_session_times_latest_values_and_key_order() -> None:
    long = chatbot_report(
        answers(
            ("C1", "F1", "S1", "13:00:00", "a", "1", "h13", 0, 0),
            ("C1", "F1", "S1", "13:00:00", "b", "2", "h13", 0, 1),
            ("C1", "F1", "S1", "13:05:00", "a", "3", "h13", 1, 0),
        )
    )

    assert_frame_equal(
        long,
        report(
            ("C1", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:05:00", "a", "3", 1),
            ("C1", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:05:00", "b", "2", 2),
        ),
    )


def test_empty_and_blank_values_are_not_answers_and_values_are_trimmed() -> None:
    long = chatbot_report(
        answers(
            ("C1", "F1", "S1", "13:00:00", "a", " ", "h13", 0, 0),  # not an answer: not the first time
            ("C1", "F1", "S1", "13:00:01", "a", "  maria  ", "h13", 1, 0),
            ("C1", "F1", "S1", "13:00:02", "a", "", "h13", 2, 0),  # does not erase maria
            ("C1", "F1", "S1", "13:00:03", "b", "\t", "h13", 3, 0),  # no column b from blanks only
            ("C1", "F1", "S2", "13:00:04", "a", "", "h13", 4, 0),  # S2: no valid answer, no row
        )
    )

    assert_frame_equal(
        flow_table(long, "F1"),
        table(["a"], ("C1", "F1", "S1", "2019-12-16T13:00:01", "2019-12-16T13:00:01", "maria")),
    )


def test_values_keep_their_text_inside() -> None:
    long = chatbot_report(answers(("C1", "F1", "S1", "13:00:00", "a", " Sim,  SIM ", "h13", 0, 0)))

    assert long["value"].to_list() == ["Sim,  SIM"]


def test_the_latest_answer_wins_whatever_the_order_in_the_file(tmp_path: Path) -> None:
    path = write_hour(
        tmp_path / "hour=13.json",
        [record("S1", "13:00:09", {"a": "later"}), record("S1", "13:00:01", {"a": "earlier"})],
    )

    assert_frame_equal(
        flow_table(day_report(path), "F1"),
        table(["a"], ("C1", "F1", "S1", "2019-12-16T13:00:01", "2019-12-16T13:00:09", "later")),
    )


def test_a_tie_goes_to_the_later_record_in_file_order() -> None:
    long = chatbot_report(
        answers(
            ("C1", "F1", "S1", "13:59:59", "a", "second in hour 13", "h13", 1, 0),
            ("C1", "F1", "S1", "13:59:59", "a", "first in hour 13", "h13", 0, 0),
            ("C1", "F1", "S2", "13:59:59", "a", "in hour 14", "h14", 0, 0),
            ("C1", "F1", "S2", "13:59:59", "a", "in hour 13", "h13", 7, 0),
        )
    )

    assert long.select("session", "value").rows() == [("S1", "second in hour 13"), ("S2", "in hour 14")]


def test_a_session_spanning_two_hours_is_one_row(tmp_path: Path) -> None:
    h13 = write_hour(tmp_path / "hour=13.json", [record("S1", "13:59:58", {"a": "1"})])
    h14 = write_hour(tmp_path / "hour=14.json", [record("S1", "14:00:03", {"b": "2"})])

    assert_frame_equal(
        flow_table(day_report(h13, h14), "F1"),
        table(["a", "b"], ("C1", "F1", "S1", "2019-12-16T13:59:58", "2019-12-16T14:00:03", "1", "2")),
    )


def test_keys_are_ordered_by_their_first_valid_answer_within_the_flow_ties_in_file_order() -> None:
    long = chatbot_report(
        answers(
            ("C1", "F1", "S1", "13:00:05", "late", "x", "h13", 0, 0),
            ("C1", "F1", "S1", "13:00:05", "first", "x", "h13", 1, 1),
            ("C1", "F1", "S1", "13:00:05", "second", "x", "h13", 1, 2),
            ("C1", "F1", "S2", "13:00:01", "early", "x", "h13", 2, 0),
            ("C1", "F1", "S2", "13:00:00", "blank", " ", "h13", 3, 0),
            ("C1", "F1", "S2", "13:00:09", "blank", "y", "h13", 4, 0),
        )
    )

    assert flow_table(long, "F1").columns == [*SESSION_COLUMNS, "early", "late", "first", "second", "blank"]


def test_a_new_flow_with_new_keys_gets_its_own_table_without_code_changes(tmp_path: Path) -> None:
    path = write_hour(
        tmp_path / "hour=13.json",
        [
            record("S1", "13:00:00", {"a": "1"}, flow="F1"),
            record("S7", "13:00:02", {"colour": "blue", "size": "M"}, customer="C9", flow="F3000"),
            record("S8", "13:00:01", {"size": "L"}, customer="C9", flow="F3000"),
        ],
    )
    long = day_report(path)

    assert_frame_equal(
        flow_table(long, "F3000"),
        table(
            ["size", "colour"],
            ("C9", "F3000", "S7", "2019-12-16T13:00:02", "2019-12-16T13:00:02", "M", "blue"),
            ("C9", "F3000", "S8", "2019-12-16T13:00:01", "2019-12-16T13:00:01", "L", None),
        ),
    )
    assert flow_table(long, "F1").columns == [*SESSION_COLUMNS, "a"]


def test_the_wide_table_is_sorted_by_customer_then_session() -> None:
    long = chatbot_report(
        answers(
            ("C2", "F1", "S1", "13:00:00", "a", "1", "h13", 0, 0),
            ("C1", "F1", "S9", "13:00:01", "a", "2", "h13", 1, 0),
            ("C1", "F1", "S2", "13:00:02", "a", "3", "h13", 2, 0),
        )
    )

    assert flow_table(long, "F1").select("customer", "session").rows() == [
        ("C1", "S2"),
        ("C1", "S9"),
        ("C2", "S1"),
    ]


def test_report_times_are_utc_whatever_the_zone_of_the_answers() -> None:
    rows = answers(("C1", "F1", "S1", "13:00:00", "a", "1", "h13", 0, 0))
    in_sao_paulo = rows.with_columns(pl.col("timestamp").dt.convert_time_zone("America/Sao_Paulo"))

    assert chatbot_report(in_sao_paulo).select("first_answer_dt", "last_answer_dt").row(0) == (
        "2019-12-16T13:00:00",
        "2019-12-16T13:00:00",
    )


@pytest.mark.parametrize("packed_bits", [64, 0], ids=["packed-with-positions", "stable-arg-sort"])
def test_the_report_sorts_keep_equal_values_in_their_order(
    monkeypatch: pytest.MonkeyPatch, packed_bits: int
) -> None:
    monkeypatch.setattr(chatbot, "_PACKED_BITS", packed_bits)
    values = pl.Series([5, 3, 5, 0, 3, 7, 0], dtype=pl.UInt64)

    order, ordered = chatbot._stable_sort(values)

    assert order.to_list() == [3, 6, 1, 4, 0, 2, 5]
    assert ordered.to_list() == [0, 0, 3, 3, 5, 5, 7]


def test_a_sort_with_nulls_or_nothing_to_sort_takes_the_stable_arg_sort() -> None:
    order, ordered = chatbot._stable_sort(pl.Series([2, None, 1, 2], dtype=pl.UInt64))
    assert (order.to_list(), ordered.to_list()) == ([1, 2, 0, 3], [None, 1, 2, 2])
    order, ordered = chatbot._stable_sort(pl.Series([], dtype=pl.UInt64))
    assert (order.to_list(), ordered.to_list()) == ([], [])


@pytest.mark.parametrize("last", [2_000_000, 10**17], ids=["seconds-looked-up", "seconds-formatted-each"])
def test_report_times_are_the_second_of_each_instant_also_before_1970(last: int) -> None:
    # A narrow span of seconds is formatted once per second and looked up; a wide one instant by instant.
    micros = pl.Series([-1, 0, 999_999, 1_000_000, -1_000_001, None, last], dtype=pl.Int64)

    texts = chatbot._utc_texts(micros)

    assert texts.to_list()[:6] == [
        "1969-12-31T23:59:59",
        "1970-01-01T00:00:00",
        "1970-01-01T00:00:00",
        "1970-01-01T00:00:01",
        "1969-12-31T23:59:58",
        None,
    ]
    assert_frame_equal(
        texts.to_frame("t"), pl.from_epoch(micros, "us").dt.strftime("%Y-%m-%dT%H:%M:%S").to_frame("t")
    )


def test_no_answers_give_an_empty_report_and_an_unknown_flow_an_empty_table() -> None:
    long = chatbot_report(pl.DataFrame(schema=ANSWER_SCHEMA))

    assert_frame_equal(long, pl.DataFrame(schema=REPORT_SCHEMA))
    assert_frame_equal(flow_table(long, "F1"), table([]))


def test_a_key_named_like_a_report_column_is_refused() -> None:
    long = chatbot_report(answers(("C1", "F1", "S1", "13:00:00", "session", "x", "h13", 0, 0)))

    with pytest.raises(
        ValueError, match=r"flow 'F1': key\(s\) \['session'\] collide with the report's own columns"
    ):
        flow_table(long, "F1")


# --- the native reader gives what the streaming reader gives ---------------------------------------------


def both_readers(path: Path) -> tuple[ChatbotReadResult, ChatbotReadResult]:
    return read_chatbot_hour(path), read_chatbot_hour(path, fast=False)


def test_python_whitespace_is_what_the_native_reader_strips() -> None:
    assert set(chatbot._PY_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def test_a_valid_file_is_read_natively_with_the_same_result(tmp_path: Path) -> None:
    records = [
        record("S1", "13:00:05", {"b": " y ", "a": "x", "c": ""}),
        {**record("S2", "13:00:01", {"é\n": 'q"uote\\', "emoji": "\U0001f600"}), "extra": [1, {"z": None}]},
        {**record("S3", "13:00:02", {}), "timestamp": "2019-12-16T10:00:01.25-03:00"},
        {**record("S4", "13:00:03", {"a": "1"}), "timestamp": "2019-12-16T13:00:03Z"},
        {**record("S5", "13:00:04", {"a": "2"}), "timestamp": "2019-12-16 13:00:04+01:30"},
    ]
    path = write_hour(tmp_path / "hour=13.json", records, crlf=True, bom=True)

    native = chatbot._read_native(path, str(path))
    fast, streamed = both_readers(path)

    assert native is not None
    assert_frame_equal(native.answers, streamed.answers)
    assert_frame_equal(fast.answers, streamed.answers)
    assert fast.answers.height == 7


@pytest.mark.parametrize(
    "bad",
    [
        {"customer": "C1", "flow": "F1", "timestamp": "2019-12-16T13:00:00+00:00", "content": {"a": "1"}},
        record("S1", "13:00:00", {"a": 1}),
        record("S1", "13:00:00", {"a": None}),
        record("S1", "13:00:00", ["a"]),  # type: ignore[arg-type]
        {**record("S1", "13:00:00", {"a": "1"}), "customer": " \u3000 "},
        {**record("S1", "13:00:00", {"a": "1"}), "session": 12},
        {**record("S1", "13:00:00", {"a": "1"}), "timestamp": "2019-02-30T13:00:00+00:00"},
        {**record("S1", "13:00:00", {"a": "1"}), "timestamp": "2019-12-16T13:00:00"},
        {**record("S1", "13:00:00", {"a": "1"}), "content": None},
        "a string",
        None,
        # a non-string where a string belongs, which the plain read (fields as text) must not take for one
        record("S1", "13:00:00", {"a": "1", "b": 2}),
        record("S1", "13:00:00", {"a": 1.5e300}),
        record("S1", "13:00:00", {"a": "1", "b": None}),
        record("S1", "13:00:00", {"a": {"b": "c"}}),
        record("S1", "13:00:00", {"a": "x", "b": {"c": "d"}, "e": "f"}),
        record("S1", "13:00:00", {"a": ["b"]}),
        record("S1", "13:00:00", {"a": True}),
        {**record("S1", "13:00:00", {}), "content": '{"a":"b"}'},  # JSON text in a string is not an object
        {**record("S1", "13:00:00", {"a": "1"}), "customer": 123},
        {**record("S1", "13:00:00", {"a": "1"}), "flow": False},
        {**record("S1", "13:00:00", {"a": "1"}), "session": None},
        {**record("S1", "13:00:00", {"a": "1"}), "session": {"s": "1"}},
        {**record("S1", "13:00:00", {"a": "1"}), "timestamp": 1576501200},
        {**record("S1", "13:00:00", {"a": "1"}), "timestamp": ["2019-12-16T13:00:00+00:00"]},
        {**record("S1", "13:00:00", {"a": "1"}), "customer": "\t\x1c "},
    ],
)
def test_a_file_with_a_bad_record_is_left_to_the_streaming_reader(tmp_path: Path, bad: Any) -> None:
    path = write_hour(tmp_path / "hour=13.json", [record("S0", "13:00:00", {"k": "v"}), bad])

    fast, streamed = both_readers(path)

    assert plain_read(path) is None
    assert chatbot._read_native(path, str(path)) is None
    assert fast.rejected.height == 1
    assert_frame_equal(fast.rejected, streamed.rejected)
    assert_frame_equal(fast.answers, streamed.answers)


def test_the_report_does_not_depend_on_the_order_of_the_rows() -> None:
    rows = answers(
        ("C1", "F1", "S1", "13:00:00", "a", "first", "h13", 0, 0),
        ("C1", "F1", "S1", "13:00:00", "b", "x", "h13", 0, 1),
        ("C1", "F1", "S1", "13:00:00", "a", "tie, later in the file", "h13", 1, 0),
        ("C1", "F1", "S2", "13:00:00", "b", "y", "h14", 0, 0),
    )
    expected = report(
        ("C1", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "a", "tie, later in the file", 1),
        ("C1", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "b", "x", 2),
        ("C1", "F1", "S2", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "b", "y", 2),
    )

    assert chatbot._in_file_order(rows)
    assert_frame_equal(chatbot_report(rows), expected)
    for seed in range(5):
        shuffled = rows.sample(fraction=1.0, shuffle=True, seed=seed)
        assert_frame_equal(chatbot_report(shuffled), expected)
        assert_frame_equal(chatbot_report(shuffled.lazy()), expected)


@pytest.mark.parametrize("packed", [True, False], ids=["ids packed in one integer", "ids too wide to pack"])
def test_sessions_are_whole_triples_in_text_order_however_the_ids_are_built(
    monkeypatch, packed: bool
) -> None:
    if not packed:  # what a day with too many customers, flows, sessions or keys to pack takes
        monkeypatch.setattr(chatbot, "_PACKED_BITS", 0)
        monkeypatch.setattr(chatbot, "_KEY_TABLE_LIMIT", 0)
    rows = answers(
        ("C2", "F1", "S9", "13:00:00", "b", "late customer first", "h13", 0, 0),
        ("C10", "F1", "S9", "13:00:01", "a", "same session text, other customer", "h13", 1, 0),
        ("C10", "F2", "S9", "13:00:02", "z", "same again, other flow", "h13", 2, 0),
        ("C10", "F1", "S10", "13:00:03", "b", "x", "h13", 3, 0),
        ("C2", "F1", "S9", "13:00:04", "a", "y", "h13", 4, 0),
        ("C10", "F1", "S9", "13:00:05", "b", "", "h13", 5, 0),
    )

    assert_frame_equal(
        chatbot_report(rows),
        report(
            ("C10", "F1", "S10", "2019-12-16T13:00:03", "2019-12-16T13:00:03", "b", "x", 1),
            (
                "C10",
                "F1",
                "S9",
                "2019-12-16T13:00:01",
                "2019-12-16T13:00:01",
                "a",
                "same session text, other customer",
                2,
            ),
            (
                "C10",
                "F2",
                "S9",
                "2019-12-16T13:00:02",
                "2019-12-16T13:00:02",
                "z",
                "same again, other flow",
                1,
            ),
            ("C2", "F1", "S9", "2019-12-16T13:00:00", "2019-12-16T13:00:04", "b", "late customer first", 1),
            ("C2", "F1", "S9", "2019-12-16T13:00:00", "2019-12-16T13:00:04", "a", "y", 2),
        ),
    )


def test_flow_tables_gives_every_flows_table_at_once(tmp_path: Path) -> None:
    path = write_hour(
        tmp_path / "hour=13.json",
        [
            record("S1", "13:00:00", {"a": "1"}, flow="F1"),
            record("S7", "13:00:02", {"colour": "blue", "size": "M"}, customer="C9", flow="F3000"),
            record("S8", "13:00:01", {"size": "L"}, customer="C9", flow="F3000"),
        ],
    )
    long = day_report(path)

    tables = chatbot.flow_tables(long)

    assert list(tables) == ["F1", "F3000"]
    for flow, wide in tables.items():
        assert_frame_equal(wide, flow_table(long, flow))


# --- reading side by side, and the wide tables without a pivot --------------------------------------------


def test_read_ahead_yields_in_order_and_raises_where_the_bad_read_stands() -> None:
    import threading
    import time

    started: list[int] = []
    lock = threading.Lock()

    def read(n: int) -> int:
        with lock:
            started.append(n)
        time.sleep(0.02 * (5 - n))  # the later reads finish first
        if n == 3:
            raise ValueError("file 3 is bad")
        return n

    results = chatbot.read_ahead((lambda n=n: read(n)) for n in range(6))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="file 3 is bad"):
        next(results)
    results.close()
    assert max(started) <= 3 + chatbot.READ_WORKERS  # reads ahead a bounded number, not the whole list


def test_hours_read_side_by_side_equal_hours_read_one_by_one(tmp_path: Path) -> None:
    paths = [
        write_hour(
            tmp_path / f"hour={h:02d}.json",
            [
                record(f"S{h}", f"{h:02d}:00:0{i}", {"a": str(i), "b": f"{h}"}, flow=f"F{i % 2}")
                for i in range(3)
            ],
        )
        for h in range(8)
    ]
    bad = write_hour(tmp_path / "hour=08.json", [record("S8", "08:00:00", {"a": 1})])

    together = read_chatbot_hours([*paths, bad, tmp_path / "hour=09.json"])

    one_by_one = [read_chatbot_hour(p) for p in [*paths, bad]]
    assert_frame_equal(together.answers, pl.concat([r.answers for r in one_by_one]))
    assert_frame_equal(
        together.rejected, rejected((str(bad), 0, "content value of 'a' is not a string (got number)"))
    )


def _long_report_of_several_flows() -> pl.DataFrame:
    return chatbot_report(
        answers(
            ("C2", "F1", "S1", "13:00:00", "a", "1", "h13", 0, 0),
            ("C1", "F2", "S5", "13:00:01", "x", "5", "h13", 1, 0),
            ("C1", "F2", "S5", "13:00:01", "y", "6", "h13", 1, 1),
            ("C1", "F1", "S9", "13:00:02", "b", "2", "h13", 2, 0),
            ("C1", "F1", "S2", "13:00:03", "a", "3", "h13", 3, 0),
            ("C1", "F1", "S2", "13:00:04", "b", " ", "h13", 4, 0),
            ("C3", "F2", "S6", "13:00:05", "y", "7", "h13", 5, 0),
        )
    )


def test_wide_tables_of_a_sorted_report_are_built_without_the_pivot_and_equal_it() -> None:
    long = _long_report_of_several_flows()

    fast = chatbot._wide_tables(long)

    assert fast is not None
    assert_frame_equal(
        fast["F1"],
        table(
            ["a", "b"],
            ("C1", "F1", "S2", "2019-12-16T13:00:03", "2019-12-16T13:00:03", "3", None),
            ("C1", "F1", "S9", "2019-12-16T13:00:02", "2019-12-16T13:00:02", None, "2"),
            ("C2", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "1", None),
        ),
    )
    assert_frame_equal(
        fast["F2"],
        table(
            ["x", "y"],
            ("C1", "F2", "S5", "2019-12-16T13:00:01", "2019-12-16T13:00:01", "5", "6"),
            ("C3", "F2", "S6", "2019-12-16T13:00:05", "2019-12-16T13:00:05", None, "7"),
        ),
    )
    shuffled = long.sample(fraction=1.0, shuffle=True, seed=3)
    assert chatbot._wide_tables(shuffled) is None  # not in report order: the pivot path builds them
    from_pivot = chatbot.flow_tables(shuffled)
    assert list(from_pivot) == ["F1", "F2"]
    for flow, wide in fast.items():
        assert_frame_equal(from_pivot[flow], wide)
        assert_frame_equal(chatbot.flow_table(shuffled, flow), wide)
        assert_frame_equal(chatbot.flow_table(long, flow), wide)


def test_a_long_table_with_two_keys_at_one_key_order_goes_to_the_pivot() -> None:
    long = report(
        ("C1", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "a", "1", 1),
        ("C1", "F1", "S2", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "b", "2", 1),
    )

    assert chatbot._wide_tables(long) is None
    assert_frame_equal(
        flow_table(long, "F1"),
        table(
            ["a", "b"],
            ("C1", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "1", None),
            ("C1", "F1", "S2", "2019-12-16T13:00:00", "2019-12-16T13:00:00", None, "2"),
        ),
    )


# --- the plain native read: taken only where it gives exactly what the exact readers give -----------------


def plain_read(path: Path) -> pl.DataFrame | None:
    """What the plain query and its split make of a file (None: left to the mapped query or, when DuckDB
    refuses the file, to the streaming reader)."""
    try:
        records = chatbot._native_connection().sql(chatbot._PLAIN_QUERY, params=[str(path)]).pl()
    except duckdb.Error:
        return None
    return chatbot._plain_answers(records, str(path))


def test_a_plain_file_is_split_from_its_text_with_the_streaming_result(tmp_path: Path) -> None:
    records = [
        record("S1", "13:00:05", {"b": " y ", "a": "x", "c": ""}),
        record("S2", "13:00:01", {"a,b": "c:d", "e": "f,g", "h:i": "{j}", "k": "[l]"}),
        record("S3", "13:00:02", {"é": "\u00e7\u00e3o \U0001f600", "emoji\u2028": "-"}),  # written as \u
        record("S4", "13:00:03", {}),
        # In content a string keeps its quotes: one that reads like a number or a literal is still plain.
        record("S5", "13:00:04", {"a": "12", "b": "-1.5e3", "c": "123.456.789-00", "d": "true", "e": "null"}),
        record("S7", "13:00:07", {"a": "NaN", "b": "{}", "c": "[1]", "d": "{x: 1}"}),
        record("S8", "13:00:08", {"a": ":", "": "", "b:": "x", "c": ","}),  # ":" and "," beside quotes
        {**record("S6", "13:00:06", {"a": "1"}), "customer": "C 2", "extra": [1, {"z": None}]},
    ]
    path = write_hour(tmp_path / "hour=13.json", records, crlf=True, bom=True)

    plain = plain_read(path)
    fast, streamed = both_readers(path)

    assert plain is not None
    assert_frame_equal(plain, streamed.answers)
    assert_frame_equal(fast.answers, streamed.answers)
    assert fast.answers.select("key", "value").rows()[3:9] == [
        ("a,b", "c:d"),
        ("e", "f,g"),
        ("h:i", "{j}"),
        ("k", "[l]"),
        ("é", "ção \U0001f600"),
        ("emoji\u2028", "-"),
    ]


@pytest.mark.parametrize(
    "tricky",
    [
        record("S1", "13:00:00", {'q"uote': 'v"al\\ue', "tab": "a\tb"}),  # escapes stay in the minified text
        record("S1", "13:00:00", {"a": ",", "b": "c"}),  # "," between two quotes looks like a separator
        {**record("S1", "13:00:00", {"a": "1"}), "customer": "123"},  # a field read as text could be a number
        {**record("S1", "13:00:00", {"a": "1"}), "flow": "false"},
        {**record("S1", "13:00:00", {"a": "1"}), "session": '{"s": 1}'},
        {**record("S1", "13:00:00", {"a": "1"}), "session": "-Infinity"},
    ],
    ids=[
        "escapes",
        "comma value",
        "numeric customer",
        "boolean-like flow",
        "object-like session",
        "infinity-like session",
    ],
)
def test_a_valid_file_the_split_cannot_vouch_for_is_read_by_the_mapped_query(
    tmp_path: Path, tricky: dict
) -> None:
    path = write_hour(tmp_path / "hour=13.json", [record("S0", "13:00:00", {"k": "v"}), tricky])

    fast, streamed = both_readers(path)

    assert plain_read(path) is None
    assert chatbot._read_native(path, str(path)) is not None
    assert streamed.rejected.height == 0
    assert_frame_equal(fast.answers, streamed.answers)


def test_a_key_repeated_in_one_content_is_not_split_but_read_as_python_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "hour=13.json"
    path.write_text(
        '[{"customer": "C1", "flow": "F1", "session": "S1", "timestamp": "2019-12-16T13:00:00+00:00", '
        '"content": {"a": "first", "b": "x", "a": "last"}}, '
        '{"customer": "C1", "flow": "F1", "session": "S2", "timestamp": "2019-12-16T13:00:00+00:00", '
        '"content": {"a": "only"}}]'
    )

    fast, streamed = both_readers(path)

    assert plain_read(path) is None
    assert_frame_equal(fast.answers, streamed.answers)
    assert fast.answers.select("session", "key", "value", "key_index").rows() == [
        ("S1", "a", "last", 0),
        ("S1", "b", "x", 1),
        ("S2", "a", "only", 0),
    ]


def test_a_field_repeated_in_one_record_is_read_as_python_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "hour=13.json"
    path.write_text(
        '[{"customer": "C1", "flow": "F1", "session": "S1", "session": "S2", '
        '"timestamp": "2019-12-16T13:00:00+00:00", "content": {"a": "x"}}]'
    )

    fast, streamed = both_readers(path)

    assert chatbot._read_native(path, str(path)) is None
    assert_frame_equal(fast.answers, streamed.answers)
    assert fast.answers["session"].to_list() == ["S2"]


# --- session ids built in parts of whole customers -------------------------------------------------------


def _answers_of_many_customers() -> pl.DataFrame:
    """600 answers: 20 customers sharing session texts, 3 flows, 4 keys, ties, blanks, keys answered again."""
    pick = random.Random(5)
    rows = []
    for n in range(600):
        # Sessions of ~5 answers; a quarter of the answers under another customer with the same session text.
        number = pick.randrange(120)
        customer = f"C{number % 20 if pick.random() < 0.75 else pick.randrange(20)}"
        flow, session = f"F{number % 3}", f"S{number}"
        time = f"13:{pick.randrange(60):02d}:{pick.randrange(2):02d}"
        value = "" if n % 17 == 0 else f" v{n} "
        rows.append((customer, flow, session, time, pick.choice("abcd"), value, f"h{n // 200}", n % 200, 0))
    return answers(*rows)


@pytest.mark.parametrize("parts", [2, 3, 8])
@pytest.mark.parametrize("packed", [True, False], ids=["ids packed in one integer", "ids too wide to pack"])
def test_session_ids_built_in_parts_give_the_report_of_one_part(
    monkeypatch, parts: int, packed: bool
) -> None:
    rows = _answers_of_many_customers()
    if not packed:
        monkeypatch.setattr(chatbot, "_PACKED_BITS", 0)
        monkeypatch.setattr(chatbot, "_KEY_TABLE_LIMIT", 0)
    monkeypatch.setattr(chatbot, "SESSION_PARTS", 1)
    whole = chatbot_report(rows)

    monkeypatch.setattr(chatbot, "SESSION_PARTS", parts)
    monkeypatch.setattr(chatbot, "_PART_ROWS", 0)
    part = chatbot._customer_part(rows["customer"])

    assert part is not None
    if parts <= 3:
        assert sorted(part.unique()) == list(range(parts))  # the 20 customers fall in every part
    else:
        assert part.n_unique() < parts  # some part holds no customer: an empty part adds no session
    # A customer's rows are all in one part.
    parts_of = (
        pl.DataFrame({"customer": rows["customer"], "part": part})
        .group_by("customer")
        .agg(pl.n_unique("part"))
    )
    assert parts_of["part"].max() == 1
    assert_frame_equal(chatbot_report(rows), whole)
    assert whole.height > 100


@pytest.mark.parametrize("parts", [1, 2])
def test_texts_seen_only_in_blank_answers_change_nothing(monkeypatch, parts: int) -> None:
    # The report's ids are made on every row, blank answers included (only the ids are filtered): a
    # customer, flow, session or key that only ever had blank answers must leave no trace in the report.
    monkeypatch.setattr(chatbot, "SESSION_PARTS", parts)
    monkeypatch.setattr(chatbot, "_PART_ROWS", 0)
    blank_only = [
        ("A0", "F1", "S1", "13:00:00", "nome", " ", "h", 0, 0),  # customer before all others
        ("C1", "A1", "S1", "13:00:01", "nome", "", "h", 1, 0),  # flow before all others
        ("C1", "F1", "S0", "13:00:02", "nome", "\t", "h", 2, 0),  # session before all others
        ("C1", "F1", "S1", "13:00:03", "a-first", "", "h", 3, 0),  # key answered first, but blank
        ("Z9", "Z9", "Z9", "13:00:04", "zz", "", "h", 4, 0),  # every text after all others
    ]
    valid = [
        ("C1", "F1", "S1", "13:00:05", "nome", " Ana ", "h", 5, 0),
        ("C1", "F1", "S1", "13:00:05", "nota", "9", "h", 5, 1),
        ("C2", "F1", "S2", "13:00:06", "nota", "7", "h", 6, 0),
        ("C2", "F2", "S2", "13:00:07", "a-first", "x", "h", 7, 0),
    ]

    assert_frame_equal(
        chatbot_report(answers(*blank_only, *valid)),
        report(
            ("C1", "F1", "S1", "2019-12-16T13:00:05", "2019-12-16T13:00:05", "nome", "Ana", 1),
            ("C1", "F1", "S1", "2019-12-16T13:00:05", "2019-12-16T13:00:05", "nota", "9", 2),
            ("C2", "F1", "S2", "2019-12-16T13:00:06", "2019-12-16T13:00:06", "nota", "7", 2),
            ("C2", "F2", "S2", "2019-12-16T13:00:07", "2019-12-16T13:00:07", "a-first", "x", 1),
        ),
    )
    assert_frame_equal(chatbot_report(answers(*blank_only)), pl.DataFrame(schema=REPORT_SCHEMA))


@pytest.mark.parametrize("parts", [1, 8])
@pytest.mark.parametrize("column", ["customer", "flow", "session", "key", "timestamp"])
def test_an_answer_with_a_null_name_or_time_is_an_error_unless_its_value_is_blank(
    monkeypatch, column: str, parts: int
) -> None:
    # Readers and the warehouse never give one; a caller's frame with one gets an error naming the column
    # (also while the session parts are being queued on the report's threads).
    monkeypatch.setattr(chatbot, "SESSION_PARTS", parts)
    monkeypatch.setattr(chatbot, "_PART_ROWS", 0)
    rows = answers(
        ("C1", "F1", "S1", "13:00:00", "nome", "Ana", "h", 0, 0),
        ("C1", "F1", "S1", "13:00:01", "nota", "9", "h", 1, 0),
    )
    null_name = rows.with_columns(
        pl.when(pl.col("position") == 1).then(None).otherwise(pl.col(column)).alias(column)
    )

    with pytest.raises(ValueError, match=f"1 answer\\(s\\) with no {column}"):
        chatbot_report(null_name)
    blank = null_name.with_columns(
        pl.when(pl.col("position") == 1).then(pl.lit(" ")).otherwise("value").alias("value")
    )
    assert_frame_equal(
        chatbot_report(blank),
        report(("C1", "F1", "S1", "2019-12-16T13:00:00", "2019-12-16T13:00:00", "nome", "Ana", 1)),
    )


def _cell(customer: str, session: str, key: str, order: int) -> tuple[str, str, str, str, str, str, str, int]:
    return (customer, "F1", session, "2019-12-16T13:00:00", "2019-12-16T13:00:00", key, "v", order)


@pytest.mark.parametrize(
    "rows",
    [
        [_cell("C1", "S2", "a", 1), _cell("C1", "S1", "a", 1)],  # sessions descending
        [_cell("C2", "S1", "a", 1), _cell("C1", "S2", "a", 1)],  # customers descending
        [_cell("C1", "S1", "a", 1), _cell("C1", "S2", "a", 1), _cell("C1", "S1", "b", 2)],  # a session split
        [_cell("C1", "S1", "b", 2), _cell("C1", "S1", "a", 1)],  # key_order descending in a session
        [_cell("C1", "S1", "a", 1), _cell("C1", "S1", "a", 1)],  # one cell twice
    ],
    ids=["sessions descending", "customers descending", "session split", "keys descending", "cell twice"],
)
def test_wide_tables_refuse_rows_out_of_report_order(rows: list[tuple]) -> None:
    # Sorted rows take the fast path; any other order goes to the pivot path, which sorts (or words an error).
    assert chatbot._wide_tables(report(*rows)) is None
    assert chatbot._wide_tables(report(*sorted(set(rows), key=lambda r: (r[0], r[2], r[7])))) is not None


# --- the report's integer steps (session 7: no sort by time, runs reduced by numpy) ----------------------


@pytest.mark.parametrize("packed", [True, False], ids=["time and row packed", "rank of a stable sort"])
def test_the_place_in_time_orders_by_time_then_row(monkeypatch, packed: bool) -> None:
    if not packed:
        monkeypatch.setattr(chatbot, "_PACKED_BITS", 0)
    micros = pl.Series([5, 3, 5, 3, 9, -2], dtype=pl.Int64)

    when = chatbot._time_order(micros)

    # By time, ties in row order: rows 5 (-2), 1 (3), 3 (3), 0 (5), 2 (5), 4 (9).
    assert when.dtype == pl.UInt64
    assert when.rank("ordinal").cast(pl.Int64).to_list() == [4, 2, 5, 3, 6, 1]
    if not packed:
        assert when.to_list() == [3, 1, 4, 2, 5, 0]


def test_run_maxima_are_where_each_run_holds_its_largest_value() -> None:
    values = pl.Series([4, 9, 1, 7, 2, 8, 3, 5], dtype=pl.UInt64)
    run_start = pl.Series([True, False, False, True, False, True, True, False])

    # Runs [4, 9, 1], [7, 2], [8], [3, 5]: their largest values stand at 1, 3, 5 and 7.
    assert chatbot._run_maxima(values, run_start).to_list() == [1, 3, 5, 7]


def test_run_maxima_read_through_rows_and_with_runs_of_one_row_only() -> None:
    # Row i's value is values[rows[i]]: the runs [values 9, 1], [8], [4, 7], [2], [5, 3].
    values = pl.Series([4, 9, 1, 7, 2, 8, 3, 5], dtype=pl.UInt64)
    rows = pl.Series([1, 2, 5, 0, 3, 4, 7, 6], dtype=pl.UInt32)
    run_start = pl.Series([True, False, True, True, False, True, True, False])

    assert chatbot._run_maxima(values, run_start, rows).to_list() == [0, 2, 4, 5, 6]
    # Every run one row long: each row is its run's maximum.
    alone = pl.Series([True] * 4)
    assert chatbot._run_maxima(values.head(4), alone).to_list() == [0, 1, 2, 3]
    assert chatbot._run_maxima(values, alone.head(4), rows.head(4)).to_list() == [0, 1, 2, 3]


@pytest.mark.parametrize("packed", [True, False], ids=["ids packed in one integer", "dense rank"])
def test_session_ids_order_by_customer_flow_session_then_the_low_bits(monkeypatch, packed: bool) -> None:
    if not packed:
        monkeypatch.setattr(chatbot, "_PACKED_BITS", 0)
    customer = pl.Series([1, 0, 1, 1, 0, 1], dtype=pl.UInt32)
    flow = pl.Series([0, 1, 0, 0, 1, 1], dtype=pl.UInt32)
    session = pl.Series([2, 0, 2, 1, 0, 0], dtype=pl.UInt32)
    low = pl.Series([3, 1, 0, 2, 1, 1], dtype=pl.UInt32)

    ids = chatbot._session_ids(customer, flow, 2, session, 3, 2, low)

    # (customer, flow, session, low): row 1 = row 4 < row 3 < row 2 < row 0 < row 5.
    assert ids.dtype == pl.UInt64
    assert ids.rank("dense").cast(pl.Int64).to_list() == [4, 1, 3, 2, 1, 5]
    assert (ids % 4).to_list() == low.cast(pl.UInt64).to_list()
    without_low = chatbot._session_ids(customer, flow, 2, session, 3, 2)
    assert (without_low // 4).to_list() == (ids // 4).to_list()
    assert (without_low % 4).to_list() == [0] * 6


def test_merged_session_ids_follow_the_parts_and_name_their_texts() -> None:
    texts = pl.Series(["S2", "S9", "S1", "S2", "S5", "S9", None])
    part_rows = [pl.Series([0, 2, 3, 6], dtype=pl.UInt32), pl.Series([1, 4, 5], dtype=pl.UInt32)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = [pool.submit(chatbot._part_session_ids, texts, rows) for rows in part_rows]
        ids, distinct = chatbot._merged_ids(parts, len(texts))

    # Part 0 ranks S1 < S2 (ids 0, 1); part 1 ranks S5 < S9, raised by part 0's two texts (ids 2, 3).
    assert ids.to_list() == [1, 3, 0, 1, 2, 3, None]
    assert distinct.to_list() == ["S1", "S2", "S5", "S9"]
    assert distinct.gather(ids.drop_nulls()).to_list() == texts.drop_nulls().to_list()
    # One part: the ranks of all the texts.
    with ThreadPoolExecutor(max_workers=1) as pool:
        whole = [pool.submit(chatbot._part_session_ids, texts, None)]
        ids, distinct = chatbot._merged_ids(whole, len(texts))
    assert (ids.to_list(), distinct.to_list()) == ([1, 3, 0, 1, 2, 3, None], ["S1", "S2", "S5", "S9"])


@pytest.mark.parametrize("count", [3, 300], ids=["few ids (radix sort)", "many ids (integer sort)"])
def test_grouped_rows_are_in_row_order_within_each_id(count: int) -> None:
    ids = pl.Series([2, 0, 1, 0, 2, 2], dtype=pl.UInt32)

    order, bounds = chatbot._grouped(ids, count)

    assert order.to_list() == [1, 3, 2, 0, 4, 5]
    assert bounds == [0, 2, 3] + [6] * (count - 2)


def test_texts_of_ids_come_from_a_row_of_each_id_or_from_nowhere() -> None:
    texts = pl.Series(["b", "a", "b", "c"])

    assert chatbot._texts_of_ids(texts, pl.Series([0, 1, 0, 2], dtype=pl.UInt32)).to_list() == ["b", "a", "c"]
    # An id with no row, or a row with no id (a null text): the caller reads the categories instead.
    assert chatbot._texts_of_ids(texts, pl.Series([0, 1, 0, 3], dtype=pl.UInt32)) is None
    assert chatbot._texts_of_ids(texts, pl.Series([0, 1, None, 2], dtype=pl.UInt32)) is None
    ids, distinct = chatbot._ids(pl.Series(["b", None, "b", "a"]), many=True)
    assert ids.to_list() == [0, None, 0, 1]
    assert distinct.to_list() == ["b", "a"]


def test_the_native_reader_keeps_freed_c_heap_memory_on_glibc() -> None:
    assert chatbot._keep_c_heap() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize(
    ("places", "in_order"),
    [
        ([("h13", 0, 0), ("h13", 0, 1), ("h13", 1, 0), ("h14", 0, 0)], True),
        ([("h13", 1, 0), ("h13", 0, 1)], False),  # positions descending within a file
        ([("h13", 0, 1), ("h13", 0, 0)], False),  # key indexes descending within a record
        ([("h13", 0, 0), ("h13", 0, 0)], False),  # one answer twice
        ([("h14", 0, 0), ("h13", 1, 0)], False),  # files descending
        ([("h13", 5, 0), ("h14", 0, 0)], True),  # a new file starts its positions again
        ([(None, 0, 0), ("h13", 1, 0)], True),  # a null file: compared as before (a null is no evidence)
    ],
)
def test_file_order_is_checked_strictly_on_file_position_and_key_index(places: list, in_order: bool) -> None:
    rows = answers(*[("C1", "F1", "S1", "13:00:00", "a", "v", f, p, i) for f, p, i in places])

    assert chatbot._in_file_order(rows) is in_order


@pytest.mark.parametrize("broken_at", [None, 0, 99_999, 100_000, 131_071, 250_000, 299_998])
def test_file_order_is_checked_across_chunks_and_batches(broken_at: int | None) -> None:
    # The check runs in Polars' streaming engine, which cuts the rows into batches: a step back between two
    # batches or two chunks (the hours arrive as chunks) must be seen like any other.
    size = 300_000
    position = pl.int_range(0, size, dtype=pl.Int64, eager=True)
    if broken_at is not None:
        position = position.scatter(broken_at + 1, broken_at)  # the next row repeats this one's place
    chunks = [
        pl.DataFrame({"file": ["h13"] * 100_000, "position": position.slice(start, 100_000), "key_index": 0})
        for start in range(0, size, 100_000)
    ]
    rows = pl.concat(chunks, rechunk=False)
    assert rows.n_chunks() == 3

    assert chatbot._in_file_order(rows) is (broken_at is None)
