"""`qp export notifications` and the panel's report functions: rows, formats read back, errors, memory."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform import cli
from quarantine_platform.errors import UserError
from quarantine_platform.exports import formats
from quarantine_platform.exports.notifications import (
    EXPORT_SCHEMA,
    notifications_report,
    plan_report,
    write_notifications_report,
)
from quarantine_platform_tests.billing.bronze import commit, event, many, rows_and_peak

UTC = dt.UTC
START = dt.datetime(2020, 2, 3, 10, tzinfo=UTC)
END = dt.datetime(2020, 2, 3, 12, tzinfo=UTC)


@pytest.fixture
def lake(platform_env) -> str:
    root = os.environ["QP_LAKE_DIR"]
    commit(
        root,
        [
            event(11, "M4", "2020-02-03T09:00:00.000+00:00", name="Acme"),  # before the window
            event(11, "M3", "2020-02-03T11:00:00.000+00:00", channel="SMS", name="Acme"),
            event(
                11,
                "5B81FF24A1",
                "2020-02-03T10:00:01.001+00:00",
                name="Acme",
                payload="Olá XXXXX, seja muito bem-vindo! Precisa de alguma ajuda?",
            ),
            event(11, "M5", "2020-02-03T12:00:00.000+00:00", name="Acme"),  # the end is excluded
            event(22, "O1", "2020-02-03T10:30:00.000+00:00", name="Outro"),
        ],
        partition=0,
    )
    commit(
        root,
        [
            event(
                11,
                "A61D178E73",
                "2020-02-03T07:00:01.099-03:00",
                name="Acme",
                payload="Não identificamos a sua última mensagem. Por favor, entre em contato",
            ),
            event(11, "5B81FF24A1", "2020-02-03T10:30:00.000+00:00", name="Acme"),  # re-send
            event(11, "M4", "2020-02-03T10:15:00.000+00:00", name="Acme"),  # re-send of a copy before
            event(11, "Q1", "2020-02-03T10:45:00.000+00:00", name="Acme", payload='=1+1, "aspas"\nlinha 2'),
        ],
        partition=1,
    )
    return root


EXPECTED = pl.DataFrame(
    [
        (
            11,
            "Acme",
            "5B81FF24A1",
            "Olá XXXXX, seja muito bem-vindo! Precisa de alguma ajuda?",
            "2020-02-03T10:00:01.001+00:00",
        ),
        (
            11,
            "Acme",
            "A61D178E73",
            "Não identificamos a sua última mensagem. Por favor, entre em contato",
            "2020-02-03T07:00:01.099-03:00",
        ),
        (11, "Acme", "Q1", '=1+1, "aspas"\nlinha 2', "2020-02-03T10:45:00.000+00:00"),
        (11, "Acme", "M3", "mensagem M3", "2020-02-03T11:00:00.000+00:00"),
    ],
    schema=EXPORT_SCHEMA,
    orient="row",
)


def report(lake: str, start: dt.datetime = START, end: dt.datetime = END, customer: int = 11) -> pl.LazyFrame:
    return notifications_report(lake, "notifications", customer, start, end, "UTC")


def test_the_report_is_every_first_copy_of_the_customer_in_the_window_sorted_by_time(lake):
    assert_frame_equal(report(lake).collect(), EXPECTED)
    assert report(lake).collect_schema() == EXPORT_SCHEMA
    assert_frame_equal(report(lake).head(2).collect(), EXPECTED.head(2))  # what a panel preview does


def test_the_window_may_be_given_in_any_offset(lake):
    start = dt.datetime.fromisoformat("2020-02-03T07:00:00-03:00")
    end = dt.datetime.fromisoformat("2020-02-03T14:10:00+04:00")  # 10:10 UTC
    got = report(lake, start, end).collect()
    assert_frame_equal(got, EXPECTED.head(2))


def read_back(path, fmt: str) -> pl.DataFrame:
    if fmt == "csv":
        return pl.read_csv(path, schema=EXPORT_SCHEMA)
    if fmt == "json":
        return pl.read_ndjson(path, schema=EXPORT_SCHEMA)
    if fmt == "parquet":
        return pl.read_parquet(path)
    sheets = pl.read_excel(path, sheet_id=0, schema_overrides=dict(EXPORT_SCHEMA))
    return pl.concat([sheets[name] for name in sheets]).match_to_schema(EXPORT_SCHEMA)


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "xlsx"])
def test_every_format_read_back_equals_the_rows(lake, tmp_path, fmt):
    seen: list[int] = []
    path = tmp_path / "out" / f"report.{fmt}"
    rows = write_notifications_report(report(lake), fmt, str(path), progress=seen.append)
    assert rows == sum(seen) == 4
    assert_frame_equal(read_back(path, fmt), EXPECTED)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "xlsx"])
def test_every_format_to_standard_output_reads_back_equal(lake, fmt):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "quarantine_platform.cli",
            "export",
            "notifications",
            "--customer",
            "11",
            "--from",
            START.isoformat(),
            "--to",
            END.isoformat(),
            "--format",
            fmt,
        ],
        capture_output=True,
        env={**os.environ},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""  # no progress bar when stderr is not a terminal
    assert_frame_equal(read_back(io.BytesIO(done.stdout), fmt), EXPECTED)


def test_xlsx_starts_a_new_sheet_every_excel_max_rows_header_included(lake, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "EXCEL_MAX_ROWS", 3)  # 2 rows + header per sheet
    path = tmp_path / "report.xlsx"
    write_notifications_report(report(lake), "xlsx", str(path))
    sheets = pl.read_excel(path, sheet_id=0, schema_overrides=dict(EXPORT_SCHEMA))
    assert {name: frame.height for name, frame in sheets.items()} == {"data": 2, "data2": 2}
    assert_frame_equal(read_back(path, "xlsx"), EXPECTED)


def test_csv_is_the_contract_text(lake, tmp_path):
    path = tmp_path / "r.csv"
    write_notifications_report(report(lake).head(1), "csv", str(path))
    assert path.read_text() == (
        "customer_id,customer_name,message_id,payload,event_datetime\n"
        '11,Acme,5B81FF24A1,"Olá XXXXX, seja muito bem-vindo! Precisa de alguma ajuda?",'
        "2020-02-03T10:00:01.001+00:00\n"
    )


def qp(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def export_args(customer: str, start: str, end: str) -> list[str]:
    return ["export", "notifications", "--customer", customer, "--from", start, "--to", end]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            export_args("99", "2020-02-03T10:00", "2020-02-03T12:00"),
            "qp: error: unknown customer 99: bronze has no message of that customer\n",
        ),
        (
            export_args("11", "2020-02-04T10:00", "2020-02-04T12:00"),
            "qp: error: no messages for customer 11 between 2020-02-04T10:00:00+00:00 and "
            "2020-02-04T12:00:00+00:00\n",
        ),
        (
            export_args("22", "2020-02-03T11:00", "2020-02-03T12:00"),
            "qp: error: no messages for customer 22 between 2020-02-03T11:00:00+00:00 and "
            "2020-02-03T12:00:00+00:00\n",
        ),
        (
            export_args("11", "2020-02-03T12:00", "2020-02-03T10:00"),
            "qp: error: --from 2020-02-03T12:00:00+00:00 is not before --to 2020-02-03T10:00:00+00:00\n",
        ),
        (
            export_args("11", "2020-02-03T12:00", "2020-02-03T12:00"),
            "qp: error: --from 2020-02-03T12:00:00+00:00 is not before --to 2020-02-03T12:00:00+00:00\n",
        ),
        (
            export_args("11", "2020-02-30", "2020-03-01"),
            "qp: error: argument --from: '2020-02-30' is not an ISO date-time "
            "(like 2020-02-03T10:00:00-03:00)\n",
        ),
        (
            export_args("x", "2020-02-03", "2020-02-04"),
            "qp: error: argument --customer: invalid int value: 'x'\n",
        ),
        (
            [*export_args("11", "2020-02-03", "2020-02-04"), "--format", "pdf"],
            "qp: error: argument --format: invalid choice: 'pdf' "
            "(choose from 'csv', 'xlsx', 'parquet', 'json')\n",
        ),
    ],
)
def test_bad_requests_are_one_line_errors_with_a_non_zero_exit(lake, capsys, args, message):
    code, out, err = qp(args, capsys)
    assert (code, out, err) == (2, "", message)


def test_a_window_whose_only_rows_are_later_copies_is_empty(lake):
    with pytest.raises(UserError, match="no messages for customer 11"):
        report(lake, dt.datetime(2020, 2, 3, 10, 14, tzinfo=UTC), dt.datetime(2020, 2, 3, 10, 16, tzinfo=UTC))


def test_a_time_without_offset_is_read_in_qp_timezone_and_progress_goes_to_stderr(
    lake, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("QP_TIMEZONE", "America/Sao_Paulo")
    out = tmp_path / "r.json"
    code, stdout, err = qp(
        [*export_args("11", "2020-02-03T07:00", "2020-02-03T09:00"), "--output", str(out), "--progress"],
        capsys,
    )
    assert code == 0 and stdout == ""
    assert "100%" in err and "4.00/4.00" in err  # tqdm's bar, the total known before the first row
    assert [json.loads(line)["message_id"] for line in out.read_text().splitlines()] == EXPECTED[
        "message_id"
    ].to_list()


def test_the_plan_knows_the_rows_and_cuts_the_window_into_bounded_slices(lake, monkeypatch):
    from quarantine_platform.exports import notifications

    monkeypatch.setattr(notifications, "SLICE_ROWS", 1)
    plan = plan_report(lake, "notifications", 11, START, END, "UTC")
    assert plan.rows == 4
    [part] = plan.parts  # no report day: all from bronze
    assert part.slices[0][0] == START and part.slices[-1][1] == END
    assert len(part.slices) == 5  # one per minute holding rows (10:15 holds only a later copy)
    assert_frame_equal(notifications.report_frame(plan).collect(), EXPECTED)


_CHILD = textwrap.dedent(
    """
    import datetime as dt, sys
    from quarantine_platform.exports import notifications
    notifications.SLICE_ROWS = 40_000
    notifications.DUP_BUCKET_ROWS = 150_000
    start = dt.datetime(2020, 2, 3, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    lf = notifications.notifications_report(sys.argv[1], "notifications", 7, start, end, "UTC")
    rows = notifications.write_notifications_report(lf, sys.argv[2], sys.argv[3])
    peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(rows, int(peak) // 1024)
    """
)


def test_memory_stays_flat_when_the_export_grows_fourfold(tmp_path):
    """Each size in its own process; peak RSS (VmHWM) must not follow the rows (the whole 800,000 rows held at
    once would take some 300 MiB more)."""
    peaks = {}
    for rows in (200_000, 800_000):
        root = tmp_path / f"lake{rows}"
        step = 86_400_000_000 // rows
        frame = many(7, rows, "2020-02-03T00:00:00+00:00", step_us=step)
        for part, chunk in enumerate(frame.iter_slices(100_000)):
            commit(root, chunk, partition=part % 3)
        for fmt in ("csv", "parquet"):
            out = tmp_path / f"out{rows}.{fmt}"
            written, peak = rows_and_peak(_CHILD, str(root), fmt, str(out))
            assert written == rows
            peaks[(rows, fmt)] = peak
        assert pl.read_parquet(tmp_path / f"out{rows}.parquet")["message_id"].is_sorted()
    for fmt in ("csv", "parquet"):
        assert peaks[(800_000, fmt)] - peaks[(200_000, fmt)] < 80, peaks
        assert peaks[(800_000, fmt)] < 700, peaks
