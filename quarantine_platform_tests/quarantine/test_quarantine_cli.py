"""`qp export quarantine`, `qp check` and `qp filter-audience` on a materialized table."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.cli import main
from quarantine_platform.resources.warehouse import open_warehouse
from quarantine_platform.storage.quarantine_warehouse import replace_load_dates
from quarantine_platform.transforms.quarantine import TABLE_SCHEMA
from quarantine_platform_tests.quarantine.helpers import SEED_LOAD_DATE, install_rules, seed_table

EXPORT_COLUMNS = "id_cliente,canal,email,telefone,assunto,data_envio,qtd_dias,saida_prevista,data_carga"
CRM_ONLY, RESTRICTED, FRAUD, MARKETING = 1234567890, 4888888800, 4567890123, 2345678901


@pytest.fixture
def table_env(platform_env):
    """The seed's table stored for 2024-05-28 and an older load date 2024-05-20 with only the CRM row."""
    install_rules(platform_env / "data")
    seed = seed_table()
    older = seed.filter(pl.col("canal") == "CRM").with_columns(
        pl.lit(dt.date(2024, 5, 20)).alias("data_carga"), pl.lit(12, dtype=pl.Int32).alias("qtd_dias")
    )
    con = open_warehouse(os.environ["QP_WAREHOUSE"])
    replace_load_dates(con, [(dt.date(2024, 5, 20), older), (SEED_LOAD_DATE, seed)], "test")
    con.close()
    return platform_env


def qp(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- export ------------------------------------------------------------------------------------------------


def test_export_writes_the_load_dates_table_in_the_contract_columns(table_env, capsys, tmp_path):
    out = tmp_path / "q.csv"
    code, _, err = qp(capsys, "export", "quarantine", "--date", "2024-05-28", "--output", str(out))
    assert code == 0 and "6 rows" in err
    assert out.read_text().splitlines()[0] == EXPORT_COLUMNS
    assert_frame_equal(pl.read_csv(out, schema=TABLE_SCHEMA), seed_table())


def test_export_of_one_channel_to_stdout_as_json(table_env, capsys):
    code, out, _ = qp(capsys, "export", "quarantine", "--date", "2024-05-28", "--channel", "restritos",
                      "--format", "json")  # fmt: skip
    assert code == 0
    rows = pl.read_ndjson(out.encode())
    assert rows.select("id_cliente", "canal", "saida_prevista").rows() == [
        (RESTRICTED, "Restritos", "2024-05-30")
    ]


def test_export_of_a_load_date_never_materialized_says_what_to_run(table_env, capsys):
    code, out, err = qp(capsys, "export", "quarantine", "--date", "2024-05-21")
    assert code == 2 and out == ""
    assert "load date 2024-05-21 of quarantine_global was never materialized" in err
    assert "dagster asset materialize -m quarantine_platform.definitions --select quarantine_global" in err
    assert "--partition 2024-05-21" in err


def test_export_before_any_warehouse_exists(platform_env, capsys):
    install_rules(platform_env / "data")
    code, _, err = qp(capsys, "export", "quarantine", "--date", "2024-05-28")
    assert code == 2 and "does not exist yet" in err and "dagster asset materialize" in err


def test_export_of_an_unknown_channel_lists_the_channels(table_env, capsys):
    code, _, err = qp(capsys, "export", "quarantine", "--date", "2024-05-28", "--channel", "SMS")
    assert code == 2 and "unknown channel 'SMS'" in err and "Recomendacao" in err


# --- check -------------------------------------------------------------------------------------------------


def test_check_a_customer_in_quarantine_on_one_channel(table_env, capsys):
    code, out, _ = qp(capsys, "check", str(CRM_ONLY))
    assert code == 3
    assert out.splitlines() == [
        f"customer {CRM_ONLY}, load date 2024-05-28",
        "CRM: in quarantine through 2024-06-07 (sent 2024-05-08)",
        "Marketing: may be contacted",
        "Recomendacao: may be contacted",
        "Ofertas: may be contacted",
        "Restritos: may be contacted",
        "Fraude: may be contacted",
        "=> in quarantine on any channel (blocked by CRM)",
    ]


def test_check_on_another_channel_may_contact(table_env, capsys):
    code, out, _ = qp(capsys, "check", str(CRM_ONLY), "--channel", "marketing")
    assert code == 0
    assert out.splitlines()[1:] == [
        "Marketing: may be contacted",
        "Restritos: may be contacted",
        "Fraude: may be contacted",
        "=> may be contacted on Marketing",
    ]


def test_restricted_and_fraud_block_every_channel(table_env, capsys):
    code, out, _ = qp(capsys, "check", str(RESTRICTED), "--channel", "Ofertas")
    assert code == 3
    assert "Restritos: in quarantine through 2024-05-30 (sent 2024-03-01, blocks every channel)" in out
    assert out.splitlines()[-1] == "=> in quarantine on Ofertas (blocked by Restritos)"
    code, out, _ = qp(capsys, "check", str(FRAUD), "--channel", "CRM")
    assert code == 3
    assert "Fraude: in quarantine until removed at the source (since 2024-04-01, blocks every channel)" in out


def test_check_on_an_older_load_date_and_a_customer_never_contacted(table_env, capsys):
    code, out, _ = qp(capsys, "check", str(MARKETING), "--date", "2024-05-20")
    assert code == 0 and out.splitlines()[0] == f"customer {MARKETING}, load date 2024-05-20"
    code, _, _ = qp(capsys, "check", "42")
    assert code == 0


def test_check_exit_codes_through_the_real_command(table_env):
    """The exit code a shell script sees (`qp check ID || skip`)."""
    run = subprocess.run(
        [sys.executable, "-m", "quarantine_platform.cli", "check", str(CRM_ONLY), "--channel", "CRM"],
        capture_output=True, text=True, env={**os.environ}, timeout=60,
    )  # fmt: skip
    assert run.returncode == 3, run.stderr
    assert "CRM: in quarantine through 2024-06-07" in run.stdout


# --- filter-audience ---------------------------------------------------------------------------------------


def write_audience(path: Path, separator: str = ",") -> Path:
    rows = [
        ["nome", "id_cliente", "email", "telefone"],
        ["Ana", str(CRM_ONLY), "ana@x.com", "011999"],
        ["Bia", str(MARKETING), "bia@x.com", "021888"],
        ["Caio", str(RESTRICTED), "caio@x.com", ""],
        ["Duda", "42", "duda@x.com", "031777"],
        ["Eva", str(FRAUD), "eva@x.com", "041666"],
        ["Ana de novo", str(CRM_ONLY), "ana2@x.com", "011999"],
    ]
    path.write_text("\n".join(separator.join(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_filter_audience_keeps_who_may_be_contacted_on_the_channel(table_env, capsys, tmp_path):
    audience = write_audience(tmp_path / "audience.csv", separator=";")
    allowed = tmp_path / "allowed.csv"
    code, out, _ = qp(capsys, "filter-audience", "--input", str(audience), "--channel", "CRM",
                      "--output", str(allowed))  # fmt: skip
    assert code == 0
    # Every column as it was, in order; leading zeros of the phone kept; the same separator.
    assert allowed.read_text().splitlines() == [
        "nome;id_cliente;email;telefone",
        f"Bia;{MARKETING};bia@x.com;021888",
        "Duda;42;duda@x.com;031777",
    ]
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[1:] == [
        "rows 6", "kept 2", "removed 4", "by CRM 2", "by Restritos 1", "by Fraude 1"
    ]  # fmt: skip
    assert "channel CRM, load date 2024-05-28" in lines[0]


def test_filter_audience_from_and_to_xlsx(table_env, capsys, tmp_path):
    audience = tmp_path / "audience.xlsx"
    pl.DataFrame(
        {
            "id_cliente": [MARKETING, 42, CRM_ONLY],
            "nome": ["Bia", "Duda", "Ana"],
            "desde": [dt.date(2020, 1, 2)] * 3,
        }
    ).write_excel(audience)
    allowed = tmp_path / "allowed.xlsx"
    code, out, _ = qp(capsys, "filter-audience", "--input", str(audience), "--channel", "Marketing",
                      "--output", str(allowed))  # fmt: skip
    assert code == 0
    kept = pl.read_excel(allowed)
    assert kept.columns == ["id_cliente", "nome", "desde"]
    assert kept["id_cliente"].to_list() == [42, CRM_ONLY]
    assert "by Marketing" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id_cliente,nome\n1,a\nabc,b\n3,c\n,d\n",
         "2 rows without a whole-number id_cliente: line 3: 'abc' is not an integer; line 5: empty"),
        ("cliente,nome\n1,a\n", "line 1: no id_cliente column in the header"),
        ("id_cliente,nome\n1.5,a\n", "line 2: '1.5' is not an integer"),
    ],
)  # fmt: skip
def test_filter_audience_rejects_a_bad_file_naming_the_line(table_env, capsys, tmp_path, content, message):
    audience = tmp_path / "bad.csv"
    audience.write_text(content)
    allowed = tmp_path / "allowed.csv"
    code, _, err = qp(capsys, "filter-audience", "--input", str(audience), "--channel", "CRM",
                      "--output", str(allowed))  # fmt: skip
    assert code == 2
    assert str(audience) in err and message in err
    assert not allowed.exists() and not list(tmp_path.glob(".allowed.csv*"))


def test_filter_audience_of_a_missing_file(table_env, capsys, tmp_path):
    code, _, err = qp(capsys, "filter-audience", "--input", str(tmp_path / "nope.csv"), "--channel", "CRM",
                      "--output", str(tmp_path / "o.csv"))  # fmt: skip
    assert code == 2 and "nope.csv does not exist" in err
