"""invoice_averages through Dagster (materialize in process) and `qp export invoice-averages` in process:
the design's table, a year of months in one run, S3, and each kind of bad input."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from quarantine_platform.assets.invoices import AVERAGES_UNIQUE, WINDOWS_NESTED, invoice_averages_asset
from quarantine_platform.resources.warehouse import open_warehouse
from quarantine_platform_tests.invoices_chatbot.helpers import (
    INVOICE_AVERAGES_2020_01_CSV,
    averages,
    failure_message,
    materialization_metadata,
    materialize,
    qp,
    resources,
    warehouse_query,
    write_csv,
)

HEADER = "customer,account,month,invoice"


def stored(month: str) -> pl.DataFrame:
    return warehouse_query(
        "select customer, account, avg_invoices_last_3_months, avg_invoices_last_6_months "
        "from invoice_averages where reference_month = ? order by customer, account",
        [f"{month}-01"],
    )


def test_the_seed_gives_the_design_table_in_the_warehouse_and_in_the_export(seed_data: Path) -> None:
    result = materialize(invoice_averages_asset, partition="2020-01")

    expected = averages(
        ("C1000", "A1100", "56333.33", "41416.66"),
        ("C1000", "A1200", "50666.66", None),
        ("C1000", "A1300", None, None),
        ("C2000", "A2100", "55400.00", None),
    )
    assert_frame_equal(stored("2020-01"), expected)
    metadata = materialization_metadata(result)
    assert (metadata["invoices_read"], metadata["rows_rejected"]) == (15, 0)
    assert qp("export", "invoice-averages", "--month", "2020-01") == (0, INVOICE_AVERAGES_2020_01_CSV, "")


def test_a_year_of_reference_months_is_one_run_and_a_rerun_replaces(seed_data: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()

    first = materialize(invoice_averages_asset, first="2019-07", last="2020-06", instance=instance)
    again = materialize(invoice_averages_asset, first="2019-12", last="2020-01", instance=instance)

    assert first.success and again.success
    assert len(instance.get_runs()) == 2
    per_month = warehouse_query(
        "select strftime(reference_month, '%Y-%m') as month, count(*) as accounts from invoice_averages "
        "group by all order by month"
    )
    # An account has a row from the month after its first invoice on (A2100 starts in 2019-06).
    assert per_month.rows() == [
        ("2019-07", 1),
        ("2019-08", 2),
        ("2019-09", 2),
        ("2019-10", 2),
        ("2019-11", 3),
        ("2019-12", 4),
        *[(f"2020-{m:02d}", 4) for m in range(1, 7)],
    ]
    assert_frame_equal(
        stored("2020-04"),  # 3 months: Jan-Mar 2020 have no invoice; 6 months: Oct-Mar neither
        averages(
            ("C1000", "A1100", None, None),
            ("C1000", "A1200", None, None),
            ("C1000", "A1300", None, None),
            ("C2000", "A2100", None, None),
        ),
    )
    assert qp("export", "invoice-averages", "--month", "2020-01")[1] == INVOICE_AVERAGES_2020_01_CSV


def test_the_current_month_is_a_partition_since_its_averages_are_of_closed_months() -> None:
    keys = invoice_averages_asset.partitions_def.get_partition_keys()

    assert keys[0] == "2019-01"
    assert keys[-1] == dt.datetime.now(dt.UTC).strftime("%Y-%m")


def test_invoices_are_read_from_s3(seed_data: Path, s3_bucket, monkeypatch) -> None:
    s3_bucket.upload_file(str(seed_data / "invoices" / "invoices.csv"), "qp-inputs", "billing/invoices.csv")
    monkeypatch.setenv("QP_INVOICES_URI", "s3://qp-inputs/billing/invoices.csv")
    (seed_data / "invoices" / "invoices.csv").unlink()  # only S3 has it

    result = materialize(invoice_averages_asset, partition="2020-01")

    assert materialization_metadata(result)["source"] == "s3://qp-inputs/billing/invoices.csv"
    assert qp("export", "invoice-averages", "--month", "2020-01")[1] == INVOICE_AVERAGES_2020_01_CSV


def test_a_missing_s3_object_fails_naming_it_and_no_secret(seed_data: Path, s3_bucket, monkeypatch) -> None:
    monkeypatch.setenv("QP_INVOICES_URI", "s3://qp-inputs/billing/nothing.csv")

    message = failure_message(materialize(invoice_averages_asset, partition="2020-01", raise_on_error=False))

    assert message == "s3://qp-inputs/billing/nothing.csv: file not found"


def test_an_unreachable_s3_endpoint_fails_with_a_clear_message(platform_env: Path, monkeypatch) -> None:
    from quarantine_platform_tests.conftest import free_port

    monkeypatch.setenv("QP_INVOICES_URI", "s3://qp-inputs/invoices.csv")
    monkeypatch.setenv("QP_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("QP_S3_ACCESS_KEY_ID", "AKIDSECRETVALUE")
    monkeypatch.setenv("QP_S3_SECRET_ACCESS_KEY", "very-secret-key")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    message = failure_message(materialize(invoice_averages_asset, partition="2020-01", raise_on_error=False))

    assert message.startswith("s3://qp-inputs/invoices.csv: cannot be read from S3 (")
    assert "very-secret-key" not in message and "AKIDSECRETVALUE" not in message


# --- bad input ----------------------------------------------------------------------------------------


def invoices_file(*lines: str) -> Path:
    return write_csv(Path(os.environ["QP_INVOICES_URI"]), *lines)


def run_failure(partition: str = "2020-01") -> str:
    return failure_message(materialize(invoice_averages_asset, partition=partition, raise_on_error=False))


def test_a_missing_file_fails_naming_it(platform_env: Path) -> None:
    assert run_failure() == f"{os.environ['QP_INVOICES_URI']}: file not found"


def test_an_empty_file_fails_naming_file_line_and_column(platform_env: Path) -> None:
    path = invoices_file()

    assert run_failure() == (
        f"{path}, line 1, column 'customer': file is empty (expected header customer,account,month,invoice)"
    )


def test_a_missing_column_fails_naming_file_line_and_column(platform_env: Path) -> None:
    path = invoices_file("customer,account,invoice", "C1,A1,10")

    assert run_failure() == (
        f"{path}, line 1, column 'month': missing column (header has: customer, account, invoice)"
    )
    assert qp("export", "invoice-averages", "--month", "2020-01")[0] == 2  # nothing was stored


def test_bad_rows_are_reported_with_file_line_column_and_the_rest_is_computed(platform_env: Path) -> None:
    path = invoices_file(
        HEADER,
        "C1,A1,2019-10-01,100",
        "C1,A1,2019-11-01,abc",  # line 3: not a number
        "C1,A1,2019-11-01,200",
        "C1,A1,2019-12-01,300",
        "C1,A1,2019-13-01,999",  # line 6: not a date
        "C1,A1,2019-12-01,300",  # line 7: an exact copy of line 5
    )

    result = materialize(invoice_averages_asset, partition="2020-01")

    metadata = materialization_metadata(result)
    assert (metadata["invoices_read"], metadata["rows_rejected"]) == (3, 3)
    table = metadata["rejected_rows"].records
    assert [(r.data["file"], r.data["line"], r.data["column"], r.data["reason"]) for r in table] == [
        (str(path), 3, "invoice", "not a number: abc"),
        (str(path), 6, "month", "not a date (expected YYYY-MM-DD): 2019-13-01"),
        (str(path), 7, "", "duplicate of line 5"),
    ]
    assert_frame_equal(stored("2020-01"), averages(("C1", "A1", "200.00", None)))


def test_rejected_rows_are_logged_as_a_warning_with_their_lines(platform_env: Path) -> None:
    path = invoices_file(HEADER, "C1,A1,2019-12-01,1.005", "C1,A1,2019-12-15,1")
    instance = dg.DagsterInstance.ephemeral()

    result = materialize(invoice_averages_asset, partition="2020-01", instance=instance)

    logs = [
        r.user_message
        for r in instance.all_logs(result.run_id)
        if r.level == 30  # logging.WARNING
    ]
    assert logs == [
        f"{path}: 2 row(s) rejected, the others are used. line 2 column invoice: more than 2 decimal "
        "places: 1.005; line 3 column month: not the first day of a month: 2019-12-15"
    ]


def test_the_checks_pass_on_the_seed_and_fail_on_a_duplicate_row_or_a_six_month_average_alone(
    seed_data: Path,
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(invoice_averages_asset, partition="2020-01", instance=instance)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"invoice_averages_unique": True, "invoice_windows_nested": True}

    con = open_warehouse(os.environ["QP_WAREHOUSE"])
    try:  # a row stored twice, and an account whose 3-month average was lost
        con.execute("insert into invoice_averages select * from invoice_averages where account = 'A1100'")
        con.execute("update invoice_averages set avg_invoices_last_3_months = null where account = 'A1100'")
    finally:
        con.close()
    checks_only = dg.materialize(
        [invoice_averages_asset],
        resources=resources(),
        partition_key="2019-06",  # another month: the checks look at the whole table
        instance=instance,
    )
    failed = {e.check_name: e.metadata for e in checks_only.get_asset_check_evaluations() if not e.passed}
    assert set(failed) == {AVERAGES_UNIQUE.name, WINDOWS_NESTED.name}
    assert failed[AVERAGES_UNIQUE.name]["duplicate_keys"].value == 1
    assert failed[WINDOWS_NESTED.name]["rows_wrong"].value == 2
