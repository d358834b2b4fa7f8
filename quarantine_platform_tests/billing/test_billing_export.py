"""`qp export billing --date D` and `read_billing`, on a warehouse billed with known rows."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from decimal import Decimal

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform import cli
from quarantine_platform.storage.billing_warehouse import BILLING_COLUMNS, read_billing, replace_days
from quarantine_platform.transforms.billing import BILLING_ROWS_SCHEMA, DAY_COUNTS_SCHEMA, Pricing, bill_day

DAY = dt.date(2020, 2, 3)
EMPTY_DAY = dt.date(2020, 2, 4)
PRICING = Pricing(Decimal("0.04"), {8147286: Decimal("0.0450")})


def day_counts(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=DAY_COUNTS_SCHEMA, orient="row")


@pytest.fixture
def billed(platform_env) -> pl.DataFrame:
    rows = bill_day(
        day_counts([(7494212, "Acme", 25_000), (8147286, "Delta Sul S.A.", 1_234_567)]), PRICING, DAY
    )
    con = duckdb.connect(os.environ["QP_WAREHOUSE"])
    try:
        replace_days(con, [DAY], rows, dt.datetime(2020, 2, 4, 0, 11, tzinfo=dt.UTC), "run-1")
        replace_days(
            con, [EMPTY_DAY], pl.DataFrame(schema=BILLING_ROWS_SCHEMA), dt.datetime.now(dt.UTC), "run-2"
        )
    finally:
        con.close()
    return rows


def qp(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_csv_has_plain_decimals_with_a_point(billed, capsys):
    assert qp(["export", "billing", "--date", "2020-02-03"], capsys) == (
        0,
        "date,customer_id,customer_name,notifications,unit_price_brl,value_brl\n"
        "2020-02-03,7494212,Acme,25000,0.0400,1000.00\n"
        "2020-02-03,8147286,Delta Sul S.A.,1234567,0.0450,55555.52\n",  # 55555.515 half-up
        "",
    )


def test_human_form_is_the_seeds(billed, capsys):
    assert qp(["export", "billing", "--date", "2020-02-03", "--human"], capsys) == (
        0,
        "Cliente: Acme / Notificações Whatsapp: 25000 / Valor: R$ 1.000,00 / Data: 2020-02-03\n"
        "Cliente: Delta Sul S.A. / Notificações Whatsapp: 1234567 / Valor: R$ 55.555,52 / Data: 2020-02-03\n",
        "",
    )


@pytest.mark.parametrize("fmt", ["json", "parquet", "xlsx", "csv"])
def test_every_format_read_back_equals_the_billed_rows(billed, tmp_path, capsys, fmt):
    path = tmp_path / f"billing.{fmt}"
    assert qp(["export", "billing", "--date", "2020-02-03", "--output", str(path)], capsys)[0] == 0
    if fmt == "parquet":
        back = pl.read_parquet(path)
    elif fmt == "xlsx":  # Excel keeps numbers as doubles: compare them as decimals of the column's scale
        back = pl.read_excel(path).with_columns(
            pl.col("date").cast(pl.Date),
            pl.col("unit_price_brl").round(4).cast(pl.Decimal(18, 4)),
            pl.col("value_brl").round(2).cast(pl.Decimal(18, 2)),
        )
    elif fmt == "json":
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert (lines[0]["unit_price_brl"], lines[0]["value_brl"]) == ("0.0400", "1000.00")  # exact, as text
        back = pl.read_ndjson(
            path, schema={**BILLING_ROWS_SCHEMA, "unit_price_brl": pl.String, "value_brl": pl.String}
        ).with_columns(
            pl.col("unit_price_brl").cast(pl.Decimal(18, 4)), pl.col("value_brl").cast(pl.Decimal(18, 2))
        )
    else:
        back = pl.read_csv(path, schema=BILLING_ROWS_SCHEMA)
    assert_frame_equal(back.match_to_schema(BILLING_ROWS_SCHEMA), billed)


def test_a_billed_day_without_whatsapp_traffic_is_an_empty_report(billed, capsys):
    assert qp(["export", "billing", "--date", "2020-02-04"], capsys) == (
        0,
        "date,customer_id,customer_name,notifications,unit_price_brl,value_brl\n",
        "",
    )
    assert qp(["export", "billing", "--date", "2020-02-04", "--human"], capsys) == (0, "", "")


def test_a_day_not_billed_names_the_dagster_command_that_bills_it(billed, capsys):
    assert qp(["export", "billing", "--date", "2020-02-05"], capsys) == (
        2,
        "",
        "qp: error: 2020-02-05 is not billed yet: bill it with `dagster asset materialize -m "
        "quarantine_platform.definitions --select billing_daily --partition 2020-02-05`\n",
    )


def test_before_any_billing_the_same_error_and_no_warehouse_is_created(platform_env, capsys):
    code, _, err = qp(["export", "billing", "--date", "2020-02-03"], capsys)
    assert (code, err.startswith("qp: error: 2020-02-03 is not billed yet")) == (2, True)
    assert not os.path.exists(os.environ["QP_WAREHOUSE"])


def test_bad_arguments_are_one_line_errors(platform_env, capsys):
    assert qp(["export", "billing", "--date", "03/02/2020"], capsys) == (
        2,
        "",
        "qp: error: argument --date: '03/02/2020' is not a date (YYYY-MM-DD)\n",
    )
    assert qp(["export", "billing", "--date", "2020-02-03", "--human", "--format", "csv"], capsys)[::2] == (
        2,
        "qp: error: --human prints the text report; leave out --format\n",
    )


def test_the_export_waits_out_a_writer_holding_the_warehouse(billed):
    """A billing run holds DuckDB's write lock for a moment; the export reads once it is released."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True);"
            " time.sleep(1.5); con.close()",
            os.environ["QP_WAREHOUSE"],
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = subprocess.run(
            [sys.executable, "-m", "quarantine_platform.cli", "export", "billing", "--date", "2020-02-03"],
            capture_output=True,
            text=True,
            env={**os.environ},
            timeout=60,
        )
    finally:
        holder.wait(10)
    assert done.returncode == 0, done.stderr
    assert pl.read_csv(io.StringIO(done.stdout)).height == 2


def test_read_billing_filters_days_and_customer(billed):
    con = duckdb.connect(os.environ["QP_WAREHOUSE"], read_only=True)
    try:
        one = read_billing(con, DAY, EMPTY_DAY, customer_id=8147286)
        none = read_billing(con, dt.date(2020, 1, 1), dt.date(2020, 1, 31))
    finally:
        con.close()
    assert_frame_equal(one.select(BILLING_COLUMNS), billed.filter(pl.col("customer_id") == 8147286))
    assert one["billed_at"].to_list() == [dt.datetime(2020, 2, 4, 0, 11)]
    assert none.is_empty() and none.columns == [*BILLING_COLUMNS, "billed_at"]


def test_read_billing_on_a_warehouse_never_billed(platform_env):
    con = duckdb.connect(os.environ["QP_WAREHOUSE"])
    try:
        assert read_billing(con, DAY, DAY).is_empty()
    finally:
        con.close()
