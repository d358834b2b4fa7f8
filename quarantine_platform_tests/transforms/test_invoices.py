"""Invoice averages, as design.md "Invoice averages" states them: one rule per test, exact tables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.transforms.invoices import (
    INVOICE_SCHEMA,
    MONEY,
    REJECTED_SCHEMA,
    InvoiceInputError,
    invoice_averages,
    invoice_averages_lazy,
    read_invoices,
)

DATA = Path(__file__).resolve().parents[2] / "data"
JANUARY_2020 = date(2020, 1, 1)
AVERAGES_SCHEMA = {
    "customer": pl.String,
    "account": pl.String,
    "avg_invoices_last_3_months": MONEY,
    "avg_invoices_last_6_months": MONEY,
}


def invoices(*rows: tuple[str, str, str, str]) -> pl.DataFrame:
    """Invoices from (customer, account, "YYYY-MM", "amount") rows."""
    return pl.DataFrame(
        [(c, a, date.fromisoformat(f"{m}-01"), Decimal(v)) for c, a, m, v in rows],
        schema=INVOICE_SCHEMA,
        orient="row",
    )


def averages(*rows: tuple[str, str, str | None, str | None]) -> pl.DataFrame:
    """Expected averages from (customer, account, "avg 3", "avg 6") rows; None is null."""
    return pl.DataFrame(
        [(c, a, None if x is None else Decimal(x), None if y is None else Decimal(y)) for c, a, x, y in rows],
        schema=AVERAGES_SCHEMA,
        orient="row",
    )


def rejected(*rows: tuple[int, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=REJECTED_SCHEMA, orient="row")


def csv(*lines: str, eol: str = "\n") -> bytes:
    return (eol.join(lines) + eol).encode()


def six_months(customer: str, account: str, amount: str) -> list[tuple[str, str, str, str]]:
    """The same invoice in each of 2019-07 .. 2019-12, the 6 months before 2020-01."""
    return [(customer, account, f"2019-{m:02d}", amount) for m in range(7, 13)]


# --- the shipped seed -----------------------------------------------------------------------------


def test_seed_invoices_give_the_design_table() -> None:
    result = read_invoices(DATA / "invoices" / "invoices.csv")

    assert_frame_equal(result.rejected, rejected())
    assert_frame_equal(
        invoice_averages(result.invoices, JANUARY_2020),
        averages(
            ("C1000", "A1100", "56333.33", "41416.66"),
            ("C1000", "A1200", "50666.66", None),
            ("C1000", "A1300", None, None),
            ("C2000", "A2100", "55400.00", None),
        ),
    )


# --- averages ---------------------------------------------------------------------------------------


def test_window_is_the_months_before_the_reference_month_which_is_excluded() -> None:
    table = invoices(
        ("C1", "A1", "2019-06", "999999"),  # 7 months back: outside both windows
        *six_months("C1", "A1", "600"),
        ("C1", "A1", "2020-01", "999999"),  # the reference month itself
        ("C1", "A1", "2020-02", "999999"),  # after it
    )

    assert_frame_equal(invoice_averages(table, JANUARY_2020), averages(("C1", "A1", "600.00", "600.00")))


def test_3_and_6_month_windows_have_their_own_months() -> None:
    table = invoices(
        ("C1", "A1", "2019-07", "100"),
        ("C1", "A1", "2019-08", "200"),
        ("C1", "A1", "2019-09", "300"),
        ("C1", "A1", "2019-10", "400"),
        ("C1", "A1", "2019-11", "500"),
        ("C1", "A1", "2019-12", "600"),
    )

    # 3 months: (400 + 500 + 600) / 3; 6 months: 2100 / 6.
    assert_frame_equal(invoice_averages(table, JANUARY_2020), averages(("C1", "A1", "500.00", "350.00")))


def test_window_crosses_a_year_boundary() -> None:
    table = invoices(
        ("C1", "A1", "2019-11", "30"), ("C1", "A1", "2019-12", "60"), ("C1", "A1", "2020-01", "90")
    )

    assert_frame_equal(invoice_averages(table, date(2020, 2, 1)), averages(("C1", "A1", "60.00", None)))


def test_a_missing_month_makes_the_window_null() -> None:
    table = invoices(
        ("C1", "A1", "2019-07", "100"),
        ("C1", "A1", "2019-08", "100"),
        ("C1", "A1", "2019-09", "100"),
        ("C1", "A1", "2019-10", "100"),
        # 2019-11 has no invoice
        ("C1", "A1", "2019-12", "100"),
    )

    assert_frame_equal(invoice_averages(table, JANUARY_2020), averages(("C1", "A1", None, None)))


def test_a_zero_invoice_still_counts_as_the_month_present() -> None:
    table = invoices(
        ("C1", "A1", "2019-10", "0"), ("C1", "A1", "2019-11", "0"), ("C1", "A1", "2019-12", "30")
    )

    assert_frame_equal(invoice_averages(table, JANUARY_2020), averages(("C1", "A1", "10.00", None)))


def test_two_invoices_in_one_month_are_summed_first() -> None:
    table = invoices(
        ("C1", "A1", "2019-10", "100"),
        ("C1", "A1", "2019-10", "50"),
        ("C1", "A1", "2019-11", "150"),
        ("C1", "A1", "2019-12", "150"),
    )

    # (150 + 150 + 150) / 3 months, not the mean of 4 invoices (112.50).
    assert_frame_equal(invoice_averages(table, JANUARY_2020), averages(("C1", "A1", "150.00", None)))


def test_the_average_is_truncated_to_cents_not_rounded() -> None:
    table = invoices(
        # 248500 / 6 = 41416.666... -> 41416.66
        ("C1", "A1", "2019-07", "500"),
        ("C1", "A1", "2019-08", "1000"),
        ("C1", "A1", "2019-09", "78000"),
        ("C1", "A1", "2019-10", "34000"),
        ("C1", "A1", "2019-11", "55000"),
        ("C1", "A1", "2019-12", "80000"),
        # 0.02 / 3 = 0.00666... -> 0.00
        ("C1", "A2", "2019-10", "0.01"),
        ("C1", "A2", "2019-11", "0.01"),
        ("C1", "A2", "2019-12", "0.00"),
        # a credit note: -200 / 3 = -66.666... -> -66.66 (towards zero)
        ("C1", "A3", "2019-10", "-100"),
        ("C1", "A3", "2019-11", "-50"),
        ("C1", "A3", "2019-12", "-50"),
    )

    assert_frame_equal(
        invoice_averages(table, JANUARY_2020),
        averages(
            ("C1", "A1", "56333.33", "41416.66"),
            ("C1", "A2", "0.00", None),
            ("C1", "A3", "-66.66", None),
        ),
    )


def test_every_account_with_an_invoice_before_the_reference_month_has_a_row() -> None:
    table = invoices(
        ("C1", "A1", "2018-01", "100"),  # long ago: a row of nulls
        ("C1", "A2", "2020-01", "100"),  # only in the reference month: no row
        ("C1", "A3", "2020-03", "100"),  # only after it: no row
    )

    assert_frame_equal(invoice_averages(table, JANUARY_2020), averages(("C1", "A1", None, None)))


def test_rows_are_sorted_by_customer_then_account() -> None:
    table = invoices(
        *six_months("C2", "A1", "1"),
        *six_months("C1", "B2", "2"),
        *six_months("C1", "B1", "3"),
    )

    assert_frame_equal(
        invoice_averages(table, JANUARY_2020),
        averages(
            ("C1", "B1", "3.00", "3.00"),
            ("C1", "B2", "2.00", "2.00"),
            ("C2", "A1", "1.00", "1.00"),
        ),
    )


def test_the_reference_month_is_a_month_whatever_its_day() -> None:
    table = invoices(*six_months("C1", "A1", "10"))

    assert_frame_equal(
        invoice_averages(table, date(2020, 1, 31)), invoice_averages(table, JANUARY_2020), check_exact=True
    )


def test_no_invoice_before_the_reference_month_gives_an_empty_table() -> None:
    assert_frame_equal(invoice_averages(invoices(), JANUARY_2020), averages())


def test_a_lazy_frame_is_accepted_and_the_query_streams() -> None:
    table = invoices(*six_months("C1", "A1", "10"))
    expected = averages(("C1", "A1", "10.00", "10.00"))

    assert_frame_equal(invoice_averages(table.lazy(), JANUARY_2020), expected)
    assert_frame_equal(invoice_averages_lazy(table, JANUARY_2020).collect(engine="streaming"), expected)


# --- reading invoices.csv -------------------------------------------------------------------------------


def test_read_gives_typed_invoices_with_decimal_amounts() -> None:
    result = read_invoices(
        csv(
            "customer,account,month,invoice",
            "C1,A1,2019-07-01,500",
            "C1,A1,2019-08-01,1234.5",
            "C2,A9,2019-08-01,-0.01",
        )
    )

    assert_frame_equal(
        result.invoices,
        invoices(
            ("C1", "A1", "2019-07", "500"),
            ("C1", "A1", "2019-08", "1234.50"),
            ("C2", "A9", "2019-08", "-0.01"),
        ),
    )
    assert result.invoices.schema["invoice"] == pl.Decimal(38, 2)
    assert_frame_equal(result.rejected, rejected())


def test_read_accepts_crlf_a_bom_blank_lines_blanks_around_values_and_any_column_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "invoices.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + csv(
            "note,month,invoice,account,customer",
            "x, 2019-07-01 , 500 , A1 ,C1",
            "",
            "y,2019-08-01,7,A1,C1",
            eol="\r\n",
        )
    )

    result = read_invoices(path)

    assert_frame_equal(
        result.invoices, invoices(("C1", "A1", "2019-07", "500"), ("C1", "A1", "2019-08", "7"))
    )
    assert_frame_equal(result.rejected, rejected())


def test_a_header_without_rows_is_an_empty_result() -> None:
    result = read_invoices(b"customer,account,month,invoice\n")

    assert_frame_equal(result.invoices, invoices())
    assert_frame_equal(result.rejected, rejected())


def test_an_empty_file_is_an_error_naming_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "invoices.csv"
    path.write_bytes(b"")

    with pytest.raises(InvoiceInputError) as error:
        read_invoices(path)

    assert str(error.value) == (
        f"{path}, line 1, column 'customer': file is empty (expected header customer,account,month,invoice)"
    )
    assert (error.value.file, error.value.line, error.value.column) == (str(path), 1, "customer")


def test_a_file_of_blank_lines_is_empty_too() -> None:
    with pytest.raises(InvoiceInputError, match=r"^<4 bytes>, line 1, column 'customer': file is empty"):
        read_invoices(b"\r\n\r\n")


def test_a_missing_column_is_an_error_naming_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "invoices.csv"
    path.write_text("customer,account,invoice\nC1,A1,500\n")

    with pytest.raises(InvoiceInputError) as error:
        read_invoices(path)

    assert (
        str(error.value)
        == f"{path}, line 1, column 'month': missing column (header has: customer, account, invoice)"
    )
    assert (error.value.line, error.value.column) == (1, "month")


def test_bytes_are_named_in_errors_by_the_name_given() -> None:
    with pytest.raises(InvoiceInputError) as error:
        read_invoices(b"customer;account;month;invoice\n", name="upload.csv")

    assert str(error.value) == (
        "upload.csv, line 1, column 'customer': missing column (header has: customer;account;month;invoice)"
    )


def test_bad_rows_are_rejected_with_line_column_and_reason_and_the_rest_kept() -> None:
    result = read_invoices(
        csv(
            "customer,account,month,invoice",  # line 1
            "C1,A1,2019-07-01,500",  # 2: kept
            "C1,A1,2019-08-01,abc",  # 3
            "C1,A1,2019-13-01,500",  # 4
            "C1,A1,2019-08-15,500",  # 5
            "C1,A1,2019-07-01,500",  # 6: exact copy of line 2
            ",A1,2019-09-01,500",  # 7
            "C1, ,2019-09-01,500",  # 8
            "C1,A1,2019-09-01,1.005",  # 9
            "C1,A1,,",  # 10
            "C1,A1,2019-09-01,1,000",  # 11: an unquoted thousands separator
            "C1,A1,2019-10-01,1e3",  # 12
            'C1,A1,2019-10-01,"1000"',  # 13: kept
        )
    )

    assert_frame_equal(
        result.rejected,
        rejected(
            (3, "invoice", "not a number: abc"),
            (4, "month", "not a date (expected YYYY-MM-DD): 2019-13-01"),
            (5, "month", "not the first day of a month: 2019-08-15"),
            (6, None, "duplicate of line 2"),
            (7, "customer", "empty customer"),
            (8, "account", "empty account"),
            (9, "invoice", "more than 2 decimal places: 1.005"),
            (10, "month", "empty month"),
            (10, "invoice", "empty invoice"),
            (11, None, "row has 5 fields, the header has 4"),
            (12, "invoice", "not a number: 1e3"),
        ),
    )
    assert_frame_equal(
        result.invoices, invoices(("C1", "A1", "2019-07", "500"), ("C1", "A1", "2019-10", "1000"))
    )


def test_a_row_with_several_problems_lists_each() -> None:
    result = read_invoices(csv("customer,account,month,invoice", " , ,2019-07-02,x"))

    assert_frame_equal(
        result.rejected,
        rejected(
            (2, "customer", "empty customer"),
            (2, "account", "empty account"),
            (2, "month", "not the first day of a month: 2019-07-02"),
            (2, "invoice", "not a number: x"),
        ),
    )
    assert_frame_equal(result.invoices, invoices())


def test_a_duplicate_is_exact_text_so_two_equal_amounts_written_differently_both_count() -> None:
    result = read_invoices(
        csv(
            "customer,account,month,invoice",
            "C1,A1,2019-07-01,5",
            "C1,A1,2019-07-01,5.00",
            "C1,A1,2019-07-01,5",
        )
    )

    assert_frame_equal(result.rejected, rejected((4, None, "duplicate of line 2")))
    assert_frame_equal(result.invoices, invoices(("C1", "A1", "2019-07", "5"), ("C1", "A1", "2019-07", "5")))


def test_line_numbers_stay_exact_when_a_quoted_field_spans_lines() -> None:
    result = read_invoices(
        csv("customer,account,month,invoice", '"C\n1",A1,2019-07-01,5', "C1,A1,2019-07-15,5")
    )

    assert_frame_equal(result.rejected, rejected((4, "month", "not the first day of a month: 2019-07-15")))
    assert_frame_equal(result.invoices, invoices(("C\n1", "A1", "2019-07", "5")))


def test_blank_lines_are_skipped_but_keep_their_line_numbers() -> None:
    result = read_invoices(csv("customer,account,month,invoice", "", "C1,A1,2019-07-01,x", "   "))

    assert_frame_equal(result.rejected, rejected((3, "invoice", "not a number: x")))
