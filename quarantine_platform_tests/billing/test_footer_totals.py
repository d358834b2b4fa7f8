"""Each events file's footer holds its rows per (customer, channel, name); billing adds these up for the files
wholly inside the day instead of reading their rows, and reads the others (straddling files, files written
without the totals) row by row. Either way the day's counts are the same."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from polars.testing import assert_frame_equal

from quarantine_platform.storage.bronze_window import bronze_files, scan_window_parts
from quarantine_platform.storage.notification_lake import (
    CUSTOMER_ROWS_SCHEMA,
    NotificationLake,
    customer_rows_frame,
)
from quarantine_platform.transforms.billing import DAY_COUNTS_SCHEMA, day_bounds, whatsapp_day_counts
from quarantine_platform_tests.billing.bronze import TOPIC, commit, event

DAY = dt.date(2020, 2, 3)
ROWS_KEY = b"quarantine_platform.customer_rows"


def _day(root: Path) -> None:
    """Three files wholly inside 2020-02-03 (UTC) and one straddling its end."""
    commit(
        root,
        [
            event(1, "a", "2020-02-03T08:00:00+00:00", name="Acme"),
            event(1, "b", "2020-02-03T08:01:00+00:00", channel="SMS", name="Acme"),
            event(2, "c", "2020-02-03T08:02:00+00:00", name="Beta"),
            event(1, "d", "2020-02-03T08:03:00+00:00", name="Acme"),
        ],
    )
    commit(
        root,
        [
            event(1, "a", "2020-02-03T09:00:00+00:00", name="Acme"),  # a re-send: counts once
            event(2, "e", "2020-02-03T09:01:00+00:00", channel="WhatsApp", name="Beta Ltda"),
        ],
        partition=1,
    )
    commit(root, [event(3, "f", "2020-02-03T10:00:00+00:00", name="Gama")])
    commit(
        root,
        [
            event(2, "g", "2020-02-03T23:59:00+00:00", name="Beta Ltda"),
            event(2, "h", "2020-02-04T00:00:00+00:00", name="Beta Ltda"),
        ],
    )


def _expected() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "customer_name": ["Acme", "Beta Ltda", "Gama"],
            "notifications": [2, 3, 1],
        },
        schema=DAY_COUNTS_SCHEMA,
    )


def _rewrite_footer(path: str, totals: dict | None) -> None:
    """Rewrite a file with the same rows and metadata but these footer totals (None: none, as a file
    committed before footers held them)."""
    meta = {k: v for k, v in pq.read_metadata(path).metadata.items() if k != ROWS_KEY}
    if totals is not None:
        meta[ROWS_KEY] = json.dumps(totals).encode()
    pq.write_table(pq.read_table(path).replace_schema_metadata(meta), path, compression="zstd")


def _counts(root: Path) -> pl.DataFrame:
    files = bronze_files(NotificationLake(root), TOPIC)
    return whatsapp_day_counts(scan_window_parts(files, *day_bounds(DAY, "UTC")), DAY, "UTC")


def test_a_commit_stores_its_rows_per_customer_channel_and_name_in_the_footer(tmp_path):
    _day(tmp_path)
    first = NotificationLake(tmp_path).committed(TOPIC)[0]
    summary = NotificationLake.summary(first)
    assert summary.customer_rows is not None
    expected = pl.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "channel": ["SMS", "Whatsapp", "Whatsapp"],
            "customer_name": ["Acme", "Acme", "Beta"],
            "rows": [1, 2, 1],
        },
        schema=CUSTOMER_ROWS_SCHEMA,
    )
    assert_frame_equal(customer_rows_frame(summary.customer_rows), expected)
    # kept out of the summary's JSON, which the sensors parse for every new file
    info = json.loads(pq.read_metadata(first.path).metadata[b"quarantine_platform"])
    assert "customer_rows" not in info and summary.minutes


def test_billing_with_footer_totals_equals_billing_the_rows(tmp_path):
    _day(tmp_path)
    files = bronze_files(NotificationLake(tmp_path), TOPIC)
    scan = scan_window_parts(files, *day_bounds(DAY, "UTC"))
    assert len(scan.inside_files) == 3 and all(f.has_customer_rows for f in scan.inside_files)
    assert_frame_equal(_counts(tmp_path), _expected())
    plain = whatsapp_day_counts(NotificationLake(tmp_path).scan_events(), DAY, "UTC")
    assert_frame_equal(plain, _expected())


def test_files_without_totals_are_read_row_by_row_beside_those_with_them(tmp_path):
    _day(tmp_path)
    committed = NotificationLake(tmp_path).committed(TOPIC)
    _rewrite_footer(str(committed[1].path), None)
    files = bronze_files(NotificationLake(tmp_path), TOPIC)
    assert [f.has_customer_rows for f in files] == [True, False, True, True]
    assert all(f.minutes is not None for f in files)  # the rest of the footer is kept
    assert_frame_equal(_counts(tmp_path), _expected())
    for c in committed:
        _rewrite_footer(str(c.path), None)
    assert_frame_equal(_counts(tmp_path), _expected())


def test_inside_files_are_counted_from_their_footers_and_edge_files_from_their_rows(tmp_path):
    """A footer whose totals differ from its rows shows which one billing used: the footer for a file
    inside the day, the rows for the file straddling midnight."""
    _day(tmp_path)
    committed = NotificationLake(tmp_path).committed(TOPIC)
    for c, customer in ((committed[2], 3), (committed[3], 2)):  # inside the day; straddling its end
        doctored = {"customer_id": [customer], "channel": ["Whatsapp"], "customer_name": ["X"], "rows": [50]}
        _rewrite_footer(str(c.path), doctored)
    counts = _counts(tmp_path)
    assert counts.filter(pl.col("customer_id") == 3)["notifications"].to_list() == [50]
    assert_frame_equal(
        counts.filter(pl.col("customer_id") != 3), _expected().filter(pl.col("customer_id") != 3)
    )
