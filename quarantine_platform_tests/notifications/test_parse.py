"""Validation of raw notification messages (design.md, "Notifications")."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
from polars.testing import assert_frame_equal

from quarantine_platform.transforms.notifications import parse_notifications

UTC = dt.UTC


def msg(**changes: object) -> bytes:
    record = {
        "customer_id": 7494212,
        "message_id": "5B81FF24A1",
        "customer_name": "Acme",
        "channel": "Whatsapp",
        "payload": "Olá XXXXX, seja muito bem-vindo!",
        "event_datetime": "2020-02-03T14:00:01.001+00:00",
    }
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not ...}, ensure_ascii=False).encode()


def parse(values: list[bytes | None]):
    return parse_notifications(values, [0] * len(values), list(range(len(values))), "notifications")


def test_valid_messages_keep_every_field_and_normalize_time_to_utc():
    out = parse(
        [msg(), msg(message_id="A61D178E73", event_datetime="2020-02-03T11:00:01.099-03:00", extra=[1])]
    )
    expected = pl.DataFrame(
        {
            "topic": ["notifications"] * 2,
            "partition": pl.Series([0, 0], dtype=pl.Int32),
            "offset": [0, 1],
            "customer_id": [7494212, 7494212],
            "message_id": ["5B81FF24A1", "A61D178E73"],
            "customer_name": ["Acme", "Acme"],
            "channel": ["Whatsapp", "Whatsapp"],
            "payload": ["Olá XXXXX, seja muito bem-vindo!"] * 2,
            "event_datetime": ["2020-02-03T14:00:01.001+00:00", "2020-02-03T11:00:01.099-03:00"],
            "event_time": pl.Series(
                [dt.datetime(2020, 2, 3, 14, 0, 1, 1000, UTC), dt.datetime(2020, 2, 3, 14, 0, 1, 99000, UTC)],
                dtype=pl.Datetime("us", "UTC"),
            ),
        }
    )
    assert_frame_equal(out.events, expected)
    assert out.dead_letters.is_empty()


def test_each_malformation_is_a_dead_letter_with_its_reason_and_the_rest_lands():
    bad = [
        b"not json",
        None,
        b"",
        b"[1, 2]",
        msg(customer_id="7494212"),
        msg(customer_id=1.5),
        msg(customer_id=True),
        msg(message_id=123),
        msg(channel=None),
        msg(payload=...),
        msg(payload="x" * (64 * 1024 + 1)),
        msg(event_datetime="2020-02-03T14:00:01"),
        msg(event_datetime="2020-02-30T14:00:01+00:00"),
        b"\xff\xfe{}",
    ]
    out = parse([msg(message_id="ok-1"), *bad, msg(message_id="ok-2")])
    assert out.events["message_id"].to_list() == ["ok-1", "ok-2"]
    assert out.events["offset"].to_list() == [0, len(bad) + 1]
    reasons = out.dead_letters.select("offset", pl.col("reason").str.split(":").list.first()).rows()
    assert reasons == [
        (1, "not JSON"),
        (2, "null value"),
        (3, "empty value"),
        (4, "not a JSON object (a list)"),
        (5, "customer_id is not an integer"),
        (6, "customer_id is not an integer"),
        (7, "customer_id is not an integer"),
        (8, "field(s) not a string"),
        (9, "null field(s)"),
        (10, "missing field(s)"),
        (11, "payload over 65536 bytes"),
        (12, "bad event_datetime"),
        (13, "bad event_datetime"),
        (14, "not JSON"),
    ]
    assert out.dead_letters["raw_value"].to_list() == bad
    assert out.dead_letters["reason"][7] == "field(s) not a string: message_id"
    assert out.dead_letters["reason"][9] == "missing field(s): payload"


def test_non_string_values_beside_customer_id_are_judged_exactly():
    # The bulk path takes a line with one non-string value (customer_id's); every other line is judged by
    # the reference rules: extra non-string fields are kept out of the event but do not reject it, and a
    # string field's non-string value is rejected whatever customer_id holds or however the line is spaced.
    spaced = json.dumps(json.loads(msg(payload=5)), separators=(" , ", " : ")).encode()
    quoted = 'say ": 5 and \\": 6'  # looks like a key and a number inside the text
    values = [
        msg(message_id="extras", extra_n=5, extra_b=True, extra_null=None, extra_s="x"),
        msg(message_id="quoted", payload=quoted),
        msg(customer_id="7494212", payload=5),
        msg(customer_id=..., payload=5),
        msg(customer_id=1.5, channel=False),
        spaced,
        msg(message_id="last"),
    ]
    out = parse(values)
    assert out.events["message_id"].to_list() == ["extras", "quoted", "last"]
    assert out.events["payload"][1] == quoted
    assert out.dead_letters.select("offset", "reason").rows() == [
        (2, "customer_id is not an integer: str"),
        (3, "missing field(s): customer_id"),
        (4, "customer_id is not an integer: float"),
        (5, "field(s) not a string: payload"),
    ]


def test_a_value_with_line_breaks_or_nesting_is_still_parsed_exactly():
    pretty = json.dumps(json.loads(msg(message_id="pretty")), indent=2).encode()
    nested = msg(message_id="nested", meta={"message_id": "x", "list": [1]})
    out = parse([pretty, nested, msg(message_id="plain")])
    assert out.events["message_id"].to_list() == ["pretty", "nested", "plain"]
    assert out.dead_letters.is_empty()


def test_large_batch_with_scattered_bad_rows_keeps_every_good_row():
    values = [msg(message_id=f"m{i}") for i in range(5000)]
    for i in range(0, 5000, 97):
        values[i] = b"{broken"
    out = parse(values)
    bad = set(range(0, 5000, 97))
    assert out.events["offset"].to_list() == [i for i in range(5000) if i not in bad]
    assert out.dead_letters["offset"].to_list() == sorted(bad)


def test_an_escaped_lone_surrogate_is_not_json_while_an_escaped_pair_is_its_character():
    lone = b'{"customer_id": 1, "message_id": "m\\ud800x", "customer_name": "A", "channel": "Whatsapp", ' + (
        b'"payload": "p", "event_datetime": "2020-02-03T14:00:01+00:00"}'
    )
    pair = lone.replace(b"m\\ud800x", b"m\\ud83d\\ude00").replace(b'"p"', b'"\\uD83D\\uDE00 ok"')
    out = parse([msg(message_id="ok"), lone, pair])
    assert out.events.select("offset", "message_id", "payload").rows() == [
        (0, "ok", "Olá XXXXX, seja muito bem-vindo!"),
        (2, "m\U0001f600", "\U0001f600 ok"),
    ]
    assert out.dead_letters.select("offset", pl.col("reason").str.split(":").list.first()).rows() == [
        (1, "not JSON")
    ]
    assert out.dead_letters["raw_value"].to_list() == [lone]
