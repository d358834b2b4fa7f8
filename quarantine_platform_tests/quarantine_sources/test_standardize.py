"""Standardization of each source from real file bytes: kept rows, rejected rows with reasons, file errors."""

from __future__ import annotations

import datetime as dt
import io
import json

import openpyxl
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.sources.base import SourceFormatError
from quarantine_platform.sources.formats import (
    read_delimited,
    read_json_records,
    read_parquet,
    read_xlsx,
    typed_frame,
)
from quarantine_platform.storage.quarantine_sources import STANDARD_SCHEMA
from quarantine_platform.transforms.quarantine_sources import (
    FRAUD_SUBJECT,
    NO_EMAIL_REASON,
    SourceColumnsError,
    StandardizedSource,
    standardize_crm,
    standardize_fraud,
    standardize_marketing,
    standardize_restricted,
    standardize_sends,
)

D = dt.date


def standard(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(
        [{name: row.get(name) for name in STANDARD_SCHEMA} for row in rows], schema=STANDARD_SCHEMA
    )


def reasons(frame: pl.DataFrame) -> list[tuple[int, str, str]]:
    """A rejects frame without its raw values: (row_number, position, reason)."""
    return frame.select("row_number", "position", "reason").rows()


def raw_values(frame: pl.DataFrame) -> list[dict]:
    return [json.loads(text) for text in frame["raw"]]


def xlsx(*rows: list) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


# --- CRM (xlsx) --------------------------------------------------------------------------------------------

CRM_HEADER = ["id_cliente", "email", "telefone", "assunto", "data_envio", "data_base"]


def test_crm_keeps_duplicate_sends_and_rejects_bad_cells_with_their_reason():
    data = xlsx(
        CRM_HEADER,
        [1234567890, "cliente@exemplo.com", 999999999, "Campanha", dt.datetime(2024, 5, 8), D(2024, 5, 28)],
        [1234567890, "cliente@exemplo.com", 999999999, "Campanha", dt.datetime(2024, 5, 8), D(2024, 5, 28)],
        [1234567890, " cliente@exemplo.com ", 999999999, "Lembrete", "2024-05-20", D(2024, 5, 28)],
        ["abc", "x@exemplo.com", None, "Campanha", D(2024, 5, 9), D(2024, 5, 28)],  # text in the id column
        [7, "y@exemplo.com", None, "Campanha", "09/05/2024", D(2024, 5, 28)],  # not ISO
        [8, "z@exemplo.com", None, "Campanha", 45420, D(2024, 5, 28)],  # a number in a date column
        [None, None, None, None, None, None],  # a blank row is not a send
        [9, "w@exemplo.com", "11 5555", None, D(2024, 5, 10), None],  # no data_base
        [12.5, "v@exemplo.com", None, "Campanha", D(2024, 5, 10), D(2024, 5, 28)],
    )
    result = standardize_crm(read_xlsx(data), "CRM")
    send = {"id_cliente": 1234567890, "canal": "CRM", "email": "cliente@exemplo.com", "telefone": "999999999"}
    base = {"data_base": D(2024, 5, 28)}
    expected = standard(
        {**send, "assunto": "Campanha", "data_envio": D(2024, 5, 8), **base},
        {**send, "assunto": "Campanha", "data_envio": D(2024, 5, 8), **base},
        {**send, "assunto": "Lembrete", "data_envio": D(2024, 5, 20), **base},
    )
    assert_frame_equal(result.rows, expected)
    assert reasons(result.rejects) == [
        (4, "sheet row 5", "id_cliente: not a whole number"),
        (5, "sheet row 6", "data_envio: not an ISO date (YYYY-MM-DD)"),
        (6, "sheet row 7", "data_envio: not an ISO date (YYYY-MM-DD)"),
        (7, "sheet row 9", "data_base: missing"),
        (8, "sheet row 10", "id_cliente: not a whole number"),
    ]
    assert raw_values(result.rejects)[0] == {
        "id_cliente": "abc",
        "email": "x@exemplo.com",
        "telefone": None,
        "assunto": "Campanha",
        "data_envio": "2024-05-09 00:00:00",
        "data_base": "2024-05-28 00:00:00",
    }
    assert (result.rows_read, result.dropped.height) == (8, 0)


def test_crm_workbook_without_a_contract_column_fails_as_a_whole():
    data = xlsx(
        ["id_cliente", "email", "telefone", "assunto", "data_envio"], [1, "a@x", None, "A", "2024-05-08"]
    )
    with pytest.raises(SourceColumnsError) as raised:
        standardize_crm(read_xlsx(data), "CRM")
    assert str(raised.value) == (
        "missing column(s) data_base (found: id_cliente, email, telefone, assunto, data_envio)"
    )


def test_crm_file_that_is_not_a_workbook_or_is_empty_fails_as_a_whole():
    with pytest.raises(SourceFormatError, match=r"^not a readable xlsx workbook \(calamine error"):
        read_xlsx(b"id_cliente;email\n1;a@x\n")
    with pytest.raises(SourceFormatError, match=r"^empty file \(0 bytes\)$"):
        read_xlsx(b"")


# --- Marketing (CSV ;) -------------------------------------------------------------------------------------


def test_marketing_renames_subject_drops_rows_without_email_and_rejects_bad_lines():
    data = (
        "\ufeffid_cliente;email;telefone;subject;data_envio\r\n"
        "2345678901;marketing@exemplo.com;988888888;Email boas vindas;2024-05-24\r\n"
        "2345678901;marketing@exemplo.com;988888888;Email boas vindas;2024-05-24\r\n"
        "\r\n"
        "2345678902;;977777777;Email boas vindas;2024-05-24\r\n"
        "2345678903;  ;977777777;Email boas vindas;2024-05-25\r\n"
        '2345678904;"a;b@exemplo.com";;"Oferta; parte 2";2024-05-25T09:30:00-03:00\r\n'
        "12x;c@exemplo.com;;Email;2024-05-24\r\n"
        "2345678905;d@exemplo.com;;Email;2024-02-30\r\n"
        "2345678906;e@exemplo.com;;Email\r\n"
        "2345678907;f@exemplo.com;;Email;2024-05-24;extra\r\n"
        ";g@exemplo.com;;Email;2024-05-24\r\n"
    ).encode()
    result = standardize_marketing(read_delimited(data), "Marketing")
    kept = {"canal": "Marketing", "email": "marketing@exemplo.com", "telefone": "988888888"}
    assert_frame_equal(
        result.rows,
        standard(
            {"id_cliente": 2345678901, **kept, "assunto": "Email boas vindas", "data_envio": D(2024, 5, 24)},
            {"id_cliente": 2345678901, **kept, "assunto": "Email boas vindas", "data_envio": D(2024, 5, 24)},
            {
                "id_cliente": 2345678904,
                "canal": "Marketing",
                "email": "a;b@exemplo.com",
                "assunto": "Oferta; parte 2",
                "data_envio": D(2024, 5, 25),
            },
        ),
    )
    assert reasons(result.dropped) == [(3, "line 5", NO_EMAIL_REASON), (4, "line 6", NO_EMAIL_REASON)]
    assert reasons(result.rejects) == [
        (6, "line 8", "id_cliente: not a whole number"),
        (7, "line 9", "data_envio: not an ISO date (YYYY-MM-DD)"),
        (8, "line 10", "expected 5 fields separated by ';', found 4"),
        (9, "line 11", "expected 5 fields separated by ';', found 6"),
        (10, "line 12", "id_cliente: missing"),
    ]
    assert raw_values(result.rejects)[2] == {
        "id_cliente": "2345678906",
        "email": "e@exemplo.com",
        "telefone": "",
        "subject": "Email",
        "data_envio": None,
    }
    assert result.rows_read == 10


def test_marketing_without_quotes_is_split_natively_exactly_as_the_csv_module_does():
    from quarantine_platform.sources.formats import _read_plain, _read_quoted

    text = "id_cliente;Email ;;subject\r\n1;a;;b\r\n\r\n  ;  \r\n2;b\r\n3;c;;d;e\r\n4;;;\r\n"
    plain = _read_plain(text, ";")
    assert_frame_equal(plain, _read_quoted(text, ";"))
    assert plain.rows() == [
        ("1", "a", "b", 1, "line 2", None),
        ("2", "b", None, 2, "line 5", "expected 4 fields separated by ';', found 2"),
        ("3", "c", "d", 3, "line 6", "expected 4 fields separated by ';', found 5"),
        ("4", "", "", 4, "line 7", None),
    ]
    assert plain.columns == ["id_cliente", "email", "subject", "_row", "_position", "_error"]


def test_marketing_header_only_is_no_rows_but_an_empty_or_headerless_file_fails():
    result = standardize_marketing(
        read_delimited(b"id_cliente;email;telefone;subject;data_envio\n"), "Marketing"
    )
    assert_frame_equal(result.rows, standard())
    assert result.rejects.is_empty() and result.rows_read == 0
    with pytest.raises(SourceFormatError, match=r"^empty file \(0 bytes\)$"):
        read_delimited(b"")
    with pytest.raises(
        SourceColumnsError, match=r"^missing column\(s\) subject \(found: id_cliente, email, "
    ):
        standardize_marketing(read_delimited(b"id_cliente;email;telefone;assunto;data_envio\n"), "Marketing")


def test_marketing_not_utf8_fails_naming_the_line():
    data = "id_cliente;email;telefone;subject;data_envio\n1;a@x;;Promoção;2024-05-24\n".encode("latin-1")
    with pytest.raises(SourceFormatError, match=r"^not UTF-8 text: invalid byte at line 2 "):
        read_delimited(data)


# --- Recommendations and offers (Delta, typed) -------------------------------------------------------------


def test_sends_from_a_typed_table_accept_dates_and_text_and_reject_bad_text():
    frame = pl.DataFrame(
        {
            "id_cliente": ["3456789012", "3456789012", "x1", "3456789013"],
            "email": ["recomendacao@exemplo.com", "recomendacao@exemplo.com", "r@x", "s@x"],
            "telefone": [977777777, 977777777, None, None],
            "assunto": ["Novo Produto", "Novo Produto", "A", None],
            "data_envio": [D(2024, 5, 18), D(2024, 5, 10), D(2024, 5, 18), None],
        }
    )
    result = standardize_sends(typed_frame(frame), "Recomendacao")
    send = {"id_cliente": 3456789012, "canal": "Recomendacao", "email": "recomendacao@exemplo.com"}
    assert_frame_equal(
        result.rows,
        standard(
            {**send, "telefone": "977777777", "assunto": "Novo Produto", "data_envio": D(2024, 5, 18)},
            {**send, "telefone": "977777777", "assunto": "Novo Produto", "data_envio": D(2024, 5, 10)},
        ),
    )
    assert reasons(result.rejects) == [
        (3, "row 3", "id_cliente: not a whole number"),
        (4, "row 4", "data_envio: missing"),
    ]


def test_sends_column_of_the_wrong_type_fails_the_table():
    frame = pl.DataFrame(
        {
            "id_cliente": [1.0],
            "email": ["a"],
            "telefone": ["1"],
            "assunto": ["A"],
            "data_envio": [D(2024, 5, 1)],
        }
    )
    with pytest.raises(
        SourceColumnsError, match=r"^column id_cliente has type Float64: expected an integer or text"
    ):
        standardize_sends(typed_frame(frame), "Ofertas")
    frame = frame.with_columns(pl.lit(1, pl.Int64).alias("id_cliente"), pl.lit(True).alias("data_envio"))
    with pytest.raises(
        SourceColumnsError, match=r"^column data_envio has type Boolean: expected a date, datetime"
    ):
        standardize_sends(typed_frame(frame), "Ofertas")


# --- Restricted (JSON) -------------------------------------------------------------------------------------


def test_restricted_flattens_objects_and_lists_one_row_per_contato():
    records = [
        {
            "id_cliente": 4888888800,
            "contatos": {
                "email": "restritos@exemplo.com",
                "numero_telefone": "944444443",
                "data_solicitacao": "2024-03-01",
            },
            "motivos": {"descricao": "Reclamação"},
        },
        {
            "id_cliente": "4888888801",
            "contatos": [
                {
                    "email": "a@exemplo.com",
                    "numero_telefone": 911111111,
                    "data_solicitacao": "2024-03-02T10:15:00",
                },
                {"email": "b@exemplo.com", "numero_telefone": None, "data_solicitacao": "2024-03-03"},
            ],
            "motivos": [
                {"descricao": "Reclamação"},
                {"descricao": "Pedido do cliente"},
                {"descricao": "Reclamação"},
            ],
        },
        {"id_cliente": 4888888802, "contatos": {"email": "c@exemplo.com", "data_solicitacao": "2024-03-04"}},
    ]
    result = standardize_restricted(read_json_records(json.dumps(records).encode()), "Restritos")
    assert_frame_equal(
        result.rows,
        standard(
            {
                "id_cliente": 4888888800,
                "canal": "Restritos",
                "email": "restritos@exemplo.com",
                "telefone": "944444443",
                "assunto": "Reclamação",
                "data_envio": D(2024, 3, 1),
            },
            {
                "id_cliente": 4888888801,
                "canal": "Restritos",
                "email": "a@exemplo.com",
                "telefone": "911111111",
                "assunto": "Reclamação; Pedido do cliente",
                "data_envio": D(2024, 3, 2),
            },
            {
                "id_cliente": 4888888801,
                "canal": "Restritos",
                "email": "b@exemplo.com",
                "assunto": "Reclamação; Pedido do cliente",
                "data_envio": D(2024, 3, 3),
            },
            {
                "id_cliente": 4888888802,
                "canal": "Restritos",
                "email": "c@exemplo.com",
                "data_envio": D(2024, 3, 4),
            },
        ),
    )
    assert result.rejects.is_empty() and result.rows_read == 3


def test_restricted_rejects_bad_records_and_contatos_with_their_reason():
    lines = [
        json.dumps(
            {
                "id_cliente": 1,
                "contatos": [
                    {"data_solicitacao": "2024-03-01"},
                    {"data_solicitacao": "ontem"},
                    "x@exemplo.com",
                ],
            }
        ),
        json.dumps({"id_cliente": True, "contatos": {"data_solicitacao": "2024-03-01"}}),
        json.dumps({"id_cliente": 2, "motivos": {"descricao": "Reclamação"}}),
        json.dumps(
            {"id_cliente": 3, "contatos": {"data_solicitacao": "2024-03-01"}, "motivos": "Reclamação"}
        ),
        "",
        '{"id_cliente": 4, "contatos": ',
        json.dumps([5]),
    ]
    result = standardize_restricted(read_json_records("\n".join(lines).encode()), "Restritos")
    assert_frame_equal(
        result.rows, standard({"id_cliente": 1, "canal": "Restritos", "data_envio": D(2024, 3, 1)})
    )
    assert reasons(result.rejects) == [
        (1, "line 1, contatos[1]", "contatos.data_solicitacao: not an ISO date (YYYY-MM-DD)"),
        (1, "line 1, contatos[2]", "contatos[2]: expected an object, found text"),
        (2, "line 2", "id_cliente: expected text or a number, found a boolean"),
        (3, "line 3", "contatos: missing"),
        (4, "line 4", "motivos: expected an object or a list of objects, found text"),
        (5, "line 6", "not valid JSON (Expecting value at column 31)"),
        (6, "line 7", "record: expected a JSON object, found a list"),
    ]
    assert json.loads(result.rejects["raw"][2]) == {
        "id_cliente": True,
        "contatos": {"data_solicitacao": "2024-03-01"},
    }
    assert result.rejects["raw"][5] == '{"id_cliente": 4, "contatos": '  # the line as it was
    assert result.rows_read == 6


def test_restricted_file_errors_name_the_place():
    with pytest.raises(
        SourceFormatError, match=r"^not valid JSON: Expecting ',' delimiter at line 2 column 1$"
    ):
        read_json_records(b'[{"id_cliente": 1}\n')
    with pytest.raises(SourceFormatError, match=r"^empty file \(0 bytes\)$"):
        read_json_records(b"")
    with pytest.raises(SourceFormatError, match=r"^expected a JSON array of records or JSON lines"):
        read_json_records(b"id_cliente,contatos\n")
    assert standardize_restricted(read_json_records(b"[]"), "Restritos").rows.is_empty()


# --- Fraud (Parquet) ---------------------------------------------------------------------------------------


def test_fraud_keeps_removed_rows_with_data_exclus_and_sets_the_subject():
    frame = pl.DataFrame(
        {
            "id_cliente": [4567890123, 4567890124, 4567890125, None],
            "email": ["fraude@exemplo.com", None, "x@exemplo.com", "y@exemplo.com"],
            "telefone": ["966666666", None, None, None],
            "dt_inclus": [
                dt.datetime(2024, 4, 1, 8, 30),
                dt.datetime(2024, 4, 2),
                None,
                dt.datetime(2024, 4, 3),
            ],
            "data_exclus": [None, D(2024, 5, 1), None, None],
        }
    )
    result = standardize_fraud(read_parquet(parquet(frame)), "Fraude")
    assert_frame_equal(
        result.rows,
        standard(
            {
                "id_cliente": 4567890123,
                "canal": "Fraude",
                "email": "fraude@exemplo.com",
                "telefone": "966666666",
                "assunto": FRAUD_SUBJECT,
                "data_envio": D(2024, 4, 1),
            },
            {
                "id_cliente": 4567890124,
                "canal": "Fraude",
                "assunto": FRAUD_SUBJECT,
                "data_envio": D(2024, 4, 2),
                "data_exclus": D(2024, 5, 1),
            },
        ),
    )
    assert reasons(result.rejects) == [
        (3, "row 3", "dt_inclus: missing"),
        (4, "row 4", "id_cliente: missing"),
    ]


def test_fraud_file_that_is_not_parquet_fails_as_a_whole():
    with pytest.raises(SourceFormatError, match=r"^not a readable Parquet file \("):
        read_parquet(b"id_cliente,dt_inclus\n1,2024-04-01\n")


def test_every_result_has_the_standard_schema():
    result: StandardizedSource = standardize_sends(
        typed_frame(
            pl.DataFrame(
                schema={c: pl.String for c in ("id_cliente", "email", "telefone", "assunto", "data_envio")}
            )
        ),
        "Ofertas",
    )
    assert result.rows.schema == STANDARD_SCHEMA
