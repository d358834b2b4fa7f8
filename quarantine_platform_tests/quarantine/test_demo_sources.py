"""The demo generator writes the six sources in the contract formats, deterministically."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.demo.quarantine_sources import BAD_ROWS, generate_quarantine_sources

LOAD_DATE = dt.date(2024, 5, 28)
OLDEST = LOAD_DATE - dt.timedelta(days=120)


def read_all(folder: Path) -> dict[str, pl.DataFrame]:
    return {
        "crm.xlsx": pl.read_excel(folder / "crm.xlsx", infer_schema_length=None, schema_overrides={
            "id_cliente": pl.String}),
        "marketing.csv": pl.read_csv(folder / "marketing.csv", separator=";", infer_schema=False),
        "recomendacao/": pl.read_delta(str(folder / "recomendacao")),
        "ofertas/": pl.read_delta(str(folder / "ofertas")),
        "restritos.json": pl.DataFrame(
            json.loads((folder / "restritos.json").read_text(encoding="utf-8")), infer_schema_length=None,
            strict=False,
        ),
        "fraude.parquet": pl.read_parquet(folder / "fraude.parquet"),
    }  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[dict[str, int], dict[str, pl.DataFrame]]:
    folder = tmp_path_factory.mktemp("demo")
    written = generate_quarantine_sources(folder, customers=400, seed=5, load_date=LOAD_DATE)
    return written, read_all(folder)


def test_the_six_files_have_the_contract_columns(demo):
    written, files = demo
    assert set(written) == set(BAD_ROWS) == set(files)
    columns = {name: frame.columns for name, frame in files.items()}
    assert columns == {
        "crm.xlsx": ["id_cliente", "email", "telefone", "assunto", "data_envio", "data_base"],
        "marketing.csv": ["id_cliente", "email", "telefone", "subject", "data_envio"],
        "recomendacao/": ["id_cliente", "email", "telefone", "assunto", "data_envio"],
        "ofertas/": ["id_cliente", "email", "telefone", "assunto", "data_envio"],
        "restritos.json": ["id_cliente", "contatos", "motivos"],
        "fraude.parquet": ["id_cliente", "email", "telefone", "dt_inclus", "data_exclus"],
    }
    assert {name: frame.height for name, frame in files.items()} == written
    restricted = files["restritos.json"].unnest("contatos").unnest("motivos")
    assert {"email", "numero_telefone", "data_solicitacao", "descricao"} <= set(restricted.columns)


def test_sends_span_the_120_days_before_the_load_date_with_repeats(demo):
    _, files = demo
    for name in ("recomendacao/", "ofertas/"):
        sent = files[name]["data_envio"].drop_nulls()
        assert sent.min() >= OLDEST and sent.max() <= LOAD_DATE
        assert (sent.max() - sent.min()).days > 100
    marketing = files["marketing.csv"]
    dates = marketing["data_envio"].str.to_date(strict=False).drop_nulls()
    assert dates.min() >= OLDEST and dates.max() <= LOAD_DATE
    assert marketing.is_duplicated().any(), "exact duplicate rows"
    assert marketing["id_cliente"].value_counts()["count"].max() > 3, "customers contacted several times"
    assert marketing["email"].null_count() > 0, "rows without email"
    bases = files["crm.xlsx"]["data_base"].unique().sort().to_list()
    assert bases[-3:] == [LOAD_DATE - dt.timedelta(days=k) for k in (2, 1, 0)] and len(bases) == 7
    fraud = files["fraude.parquet"].drop_nulls("data_exclus")
    assert fraud.height > 0
    assert (fraud["data_exclus"] > fraud["dt_inclus"]).all() and (fraud["data_exclus"] <= LOAD_DATE).all()


def test_the_bad_rows_are_there(demo):
    _, files = demo
    marketing = files["marketing.csv"]
    assert marketing.filter(pl.col("id_cliente") == "abc").height == 1
    assert marketing.filter(pl.col("id_cliente").is_null()).height == 1
    assert marketing.filter(pl.col("data_envio") == "2024-02-30").height == 1
    assert files["crm.xlsx"].filter(pl.col("id_cliente") == "n/a").height == 1
    assert files["crm.xlsx"]["data_envio"].null_count() == 1
    assert files["recomendacao/"]["id_cliente"].null_count() == 1
    assert files["fraude.parquet"]["id_cliente"].null_count() == 1
    restricted = files["restritos.json"]
    assert restricted.filter(pl.col("id_cliente") == "12ab").height == 1


def test_the_same_seed_gives_the_same_rows(demo, tmp_path):
    written = generate_quarantine_sources(tmp_path / "again", customers=400, seed=5, load_date=LOAD_DATE)
    assert written == demo[0]
    for name, frame in read_all(tmp_path / "again").items():
        assert_frame_equal(frame, demo[1][name])
    other = read_all_after(generate_quarantine_sources, tmp_path / "other", seed=6)
    assert not other["marketing.csv"].equals(demo[1]["marketing.csv"])


def read_all_after(generate, folder: Path, seed: int) -> dict[str, pl.DataFrame]:
    generate(folder, customers=400, seed=seed, load_date=LOAD_DATE)
    return read_all(folder)
