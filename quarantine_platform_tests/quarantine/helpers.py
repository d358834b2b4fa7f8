"""Small quarantine sources for the tests, in the standardized schema the source assets write."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl

from quarantine_platform.settings import PROJECT_ROOT
from quarantine_platform.storage.quarantine_sources import STANDARD_SCHEMA, write_source
from quarantine_platform.transforms.quarantine import TABLE_SCHEMA
from quarantine_platform.transforms.quarantine_rules import ChannelRule, load_rules

SHIPPED_RULES = PROJECT_ROOT / "data" / "quarantine_rules.yaml"
SOURCE_OF = {rule.canal: rule.source for rule in load_rules(SHIPPED_RULES)}
SEED_LOAD_DATE = dt.date(2024, 5, 28)


def rules() -> list[ChannelRule]:
    return load_rules(SHIPPED_RULES)


def sends(*rows: dict) -> pl.DataFrame:
    """Rows in STANDARD_SCHEMA; missing columns are null."""
    frame = pl.DataFrame(list(rows), infer_schema_length=None) if rows else pl.DataFrame()
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in STANDARD_SCHEMA.items()
        ]
    )


def send(id_cliente: int | None, canal: str, data_envio: dt.date | None, **other: object) -> dict:
    return {"id_cliente": id_cliente, "canal": canal, "data_envio": data_envio, **other}


def by_source(*rows: dict) -> dict[str, pl.LazyFrame]:
    """Every shipped rule's source, holding the given rows of its channel (empty when none)."""
    frame = sends(*rows)
    return {source: frame.filter(pl.col("canal") == canal).lazy() for canal, source in SOURCE_OF.items()}


def table(*rows: dict) -> pl.DataFrame:
    """An expected quarantine table, in TABLE_SCHEMA order."""
    frame = pl.DataFrame(list(rows), infer_schema_length=None)
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in TABLE_SCHEMA.items()
        ]
    )


# The seed's example (its "Visualização da tabela final"), as the six sources held it. Its CRM rows carry the
# workbook snapshot of the load date.
SEED_SENDS = (
    send(
        1234567890,
        "CRM",
        dt.date(2024, 5, 8),
        email="cliente@exemplo.com",
        telefone="999999999",
        assunto="Campanha",
        data_base=SEED_LOAD_DATE,
    ),
    send(
        2345678901,
        "Marketing",
        dt.date(2024, 5, 24),
        email="marketing@exemplo.com",
        telefone="988888888",
        assunto="Email boas vindas",
    ),
    send(
        3456789012,
        "Recomendacao",
        dt.date(2024, 5, 18),
        email="recomendacao@exemplo.com",
        telefone="977777777",
        assunto="Novo Produto",
    ),
    send(
        1001001001,
        "Ofertas",
        dt.date(2024, 5, 26),
        email="ofertas@exemplo.com",
        telefone="955555557",
        assunto="Promoção",
    ),
    send(
        4567890123,
        "Fraude",
        dt.date(2024, 4, 1),
        email="fraude@exemplo.com",
        telefone="966666666",
        assunto="Suspeita de fraude",
    ),
    send(
        4888888800,
        "Restritos",
        dt.date(2024, 3, 1),
        email="restritos@exemplo.com",
        telefone="944444443",
        assunto="Reclamação",
    ),
)


def seed_table() -> pl.DataFrame:
    """The seed's six rows on 2024-05-28 with the design's rules: saida_prevista = data_envio + days (the
    seed printed 2024-05-29 for Restritos, 90 days after 2024-03-01 is 2024-05-30), and qtd_dias for fraud
    too (design: `qtd_dias = D - data_envio` for every row; only saida_prevista is null for Fraude)."""
    d = dt.date
    rows = [
        (1234567890, "CRM", "cliente@exemplo.com", "999999999", "Campanha", d(2024, 5, 8), 20, d(2024, 6, 7)),
        (
            4567890123,
            "Fraude",
            "fraude@exemplo.com",
            "966666666",
            "Suspeita de fraude",
            d(2024, 4, 1),
            57,
            None,
        ),
        (
            2345678901,
            "Marketing",
            "marketing@exemplo.com",
            "988888888",
            "Email boas vindas",
            d(2024, 5, 24),
            4,
            d(2024, 5, 31),
        ),
        (
            1001001001,
            "Ofertas",
            "ofertas@exemplo.com",
            "955555557",
            "Promoção",
            d(2024, 5, 26),
            2,
            d(2024, 5, 31),
        ),
        (
            3456789012,
            "Recomendacao",
            "recomendacao@exemplo.com",
            "977777777",
            "Novo Produto",
            d(2024, 5, 18),
            10,
            d(2024, 6, 2),
        ),
        (
            4888888800,
            "Restritos",
            "restritos@exemplo.com",
            "944444443",
            "Reclamação",
            d(2024, 3, 1),
            88,
            d(2024, 5, 30),
        ),
    ]
    names = [n for n in TABLE_SCHEMA.names() if n != "data_carga"]
    return table(*[{**dict(zip(names, row, strict=True)), "data_carga": SEED_LOAD_DATE} for row in rows])


def stage_sources(lake_root: str | Path, *rows: dict) -> None:
    """Write every shipped source's snapshot into the lake, as the source assets would."""
    for source, frame in by_source(*rows).items():
        write_source(lake_root, source, frame.collect())


def install_rules(data_dir: Path, text: str | None = None) -> Path:
    """The rules file where QP_QUARANTINE_RULES points in `platform_env` (the shipped one by default)."""
    path = data_dir / "quarantine_rules.yaml"
    if text is None:
        shutil.copyfile(SHIPPED_RULES, path)
    else:
        path.write_text(text, encoding="utf-8")
    return path
