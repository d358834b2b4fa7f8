"""Demo data for the customer quarantine: the six source files, in the formats of design.md
("Quarantine sources"), written to one folder (by default `data/quarantine/`, where QP_*_URI point):

- `crm.xlsx` (CRM): first sheet `id_cliente, email, telefone, assunto, data_envio, data_base`, several
  snapshots (data_base = the load date, the 2 days before it, and every 7 days back to 4 weeks), each with
  the sends of the 45 days up to its day; dates are real date cells;
- `marketing.csv` (Marketing): `;`-separated `id_cliente;email;telefone;subject;data_envio`, ~2% of the rows
  without email;
- `recomendacao/`, `ofertas/` (Recommendations, Offers): Delta tables `id_cliente, email, telefone, assunto,
  data_envio`;
- `restritos.json` (Restricted): JSON array of `{id_cliente, contatos: {email, numero_telefone,
  data_solicitacao}, motivos: {descricao}}`;
- `fraude.parquet` (Fraud): `id_cliente, email, telefone, dt_inclus, data_exclus` (~30% removed since).

Sends are spread over the 120 days before the load date, with repeated sends to the same customers (some
customers get many), exact duplicate rows, and a few bad rows a reader must reject with a reason while the
good rows go on (`BAD_ROWS` lists them). Everything is drawn from one seeded generator: the same arguments
give the same rows.

    python -m quarantine_platform.demo.quarantine_sources --out data/quarantine [--customers N] [--seed S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

HISTORY_DAYS = 120
CRM_SNAPSHOT_DAYS_BACK = (0, 1, 2, 7, 14, 21, 28)
CRM_SNAPSHOT_SPAN_DAYS = 45

# The bad rows written on purpose, per file (what a reader must reject, and why).
BAD_ROWS = {
    "crm.xlsx": ["id_cliente 'n/a' (text)", "id_cliente empty", "data_envio empty"],
    "marketing.csv": ["id_cliente 'abc'", "id_cliente empty", "data_envio '2024-02-30' (no such day)"],
    "recomendacao/": ["id_cliente null", "data_envio null"],
    "ofertas/": ["id_cliente null"],
    "restritos.json": ["id_cliente '12ab' (text)", "contatos.data_solicitacao missing"],
    "fraude.parquet": ["id_cliente null"],
}

# Sends per customer per day, by channel (the CRM also per snapshot).
_DAILY_RATE = {"crm": 0.003, "marketing": 0.04, "recomendacao": 0.01, "ofertas": 0.015}
_SUBJECTS = {
    "crm": ["Campanha de relacionamento", "Pesquisa de satisfação", "Aniversário", "Renovação de contrato"],
    "marketing": ["Email boas vindas", "Newsletter semanal", "Black Friday", "Lançamento", "Cupom exclusivo"],
    "recomendacao": ["Novo Produto", "Você também pode gostar", "Baseado nas suas compras"],
    "ofertas": ["Promoção", "Oferta relâmpago", "Frete grátis", "Desconto progressivo"],
    "restritos": ["Reclamação", "Pedido de não contato", "Procon", "Opt-out LGPD"],
}


@dataclass(frozen=True)
class _Customers:
    ids: np.ndarray
    weights: np.ndarray  # how likely each one is to receive a send (a few get many)

    def email(self, ids: np.ndarray) -> list[str]:
        return [f"cliente{i}@exemplo.com.br" for i in ids]

    def phone(self, ids: np.ndarray) -> list[str]:
        return [f"11{9_0000_0000 + int(i) % 1_0000_0000}" for i in ids]


def generate_quarantine_sources(
    out_dir: str | Path, customers: int = 100_000, seed: int = 7, load_date: dt.date | None = None
) -> dict[str, int]:
    """Write the six demo sources into `out_dir` for sends up to `load_date` (default: today in
    QP_TIMEZONE). Returns the rows written per file, bad rows included."""
    from quarantine_platform import settings

    if customers < 100:
        raise ValueError("customers must be at least 100")
    load_date = load_date or dt.datetime.now(ZoneInfo(settings.get("QP_TIMEZONE"))).date()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    step = 8_999_999_999 // customers
    ids = 1_000_000_000 + np.arange(customers, dtype=np.int64) * step + rng.integers(0, step, customers)
    weights = rng.pareto(2.0, customers) + 0.2
    people = _Customers(ids, weights / weights.sum())
    return {
        "crm.xlsx": _write_crm(out / "crm.xlsx", people, rng, load_date),
        "marketing.csv": _write_marketing(out / "marketing.csv", people, rng, load_date),
        "recomendacao/": _write_delta(out / "recomendacao", "recomendacao", people, rng, load_date),
        "ofertas/": _write_delta(out / "ofertas", "ofertas", people, rng, load_date),
        "restritos.json": _write_restricted(out / "restritos.json", people, rng, load_date),
        "fraude.parquet": _write_fraud(out / "fraude.parquet", people, rng, load_date),
    }


def _sends(
    people: _Customers, rng: np.random.Generator, channel: str, first: dt.date, last: dt.date
) -> pl.DataFrame:
    """Sends of one channel dated first..last, ~1% of them exact duplicates, in no particular order."""
    days = (last - first).days + 1
    count = max(1, round(len(people.ids) * _DAILY_RATE[channel] * days))
    who = rng.choice(people.ids, size=count, p=people.weights)
    when = np.datetime64(first) + rng.integers(0, days, count).astype("timedelta64[D]")
    subjects = _SUBJECTS[channel]
    frame = pl.DataFrame(
        {
            "id_cliente": who,
            "email": people.email(who),
            "telefone": people.phone(who),
            "assunto": [subjects[k] for k in rng.integers(0, len(subjects), count)],
            "data_envio": when.astype("datetime64[D]"),
        },
        schema_overrides={"data_envio": pl.Date},
    )
    duplicates = frame.sample(n=max(1, count // 100), seed=int(rng.integers(1 << 31)))
    return pl.concat([frame, duplicates]).sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 31)))


def _write_crm(path: Path, people: _Customers, rng: np.random.Generator, load_date: dt.date) -> int:
    import xlsxwriter

    history = _sends(people, rng, "crm", load_date - dt.timedelta(days=HISTORY_DAYS), load_date)
    snapshots = []
    for back in CRM_SNAPSHOT_DAYS_BACK:
        base = load_date - dt.timedelta(days=back)
        since = base - dt.timedelta(days=CRM_SNAPSHOT_SPAN_DAYS - 1)
        rows = history.filter(pl.col("data_envio").is_between(since, base))
        snapshots.append(rows.with_columns(pl.lit(base).alias("data_base")))
    rows = pl.concat(snapshots).sort("data_base", "data_envio", "id_cliente").rows()
    good = rows[0]
    bad = [("n/a", *good[1:]), (None, *good[1:]), (*good[:4], None, good[5])]
    for position, row in zip((3, 11, 19), bad, strict=True):
        rows.insert(position, row)
    with xlsxwriter.Workbook(path, {"constant_memory": True}) as book:
        sheet = book.add_worksheet("envios")
        day = book.add_format({"num_format": "yyyy-mm-dd"})
        sheet.write_row(0, 0, ["id_cliente", "email", "telefone", "assunto", "data_envio", "data_base"])
        for line, row in enumerate(rows, start=1):
            for column, value in enumerate(row):
                if isinstance(value, dt.date):  # real date cells, as a person's workbook has
                    sheet.write_datetime(line, column, dt.datetime.combine(value, dt.time()), day)
                elif isinstance(value, int):
                    sheet.write_number(line, column, value)
                elif value is not None:
                    sheet.write_string(line, column, value)
    return len(rows)


def _write_marketing(path: Path, people: _Customers, rng: np.random.Generator, load_date: dt.date) -> int:
    sends = _sends(people, rng, "marketing", load_date - dt.timedelta(days=HISTORY_DAYS), load_date)
    no_email = pl.Series(rng.random(sends.height) < 0.02)
    text = sends.select(
        pl.col("id_cliente").cast(pl.String),
        pl.when(no_email).then(None).otherwise(pl.col("email")).alias("email"),
        "telefone",
        pl.col("assunto").alias("subject"),
        pl.col("data_envio").dt.to_string("%Y-%m-%d"),
    )
    sample = text.row(0, named=True)
    bad = pl.DataFrame(
        [
            {**sample, "id_cliente": "abc"},
            {**sample, "id_cliente": None},
            {**sample, "data_envio": "2024-02-30"},
        ],
        schema=text.schema,
    )
    rows = pl.concat([text.head(50), bad, text.slice(50)])
    rows.write_csv(path, separator=";")
    return rows.height


def _write_delta(
    path: Path, channel: str, people: _Customers, rng: np.random.Generator, load_date: dt.date
) -> int:
    sends = _sends(people, rng, channel, load_date - dt.timedelta(days=HISTORY_DAYS), load_date)
    bad = sends.head(2).with_columns(
        pl.Series("id_cliente", [None, sends["id_cliente"][1]], dtype=pl.Int64),
        pl.Series("data_envio", [sends["data_envio"][0], None], dtype=pl.Date),
    )
    if channel == "ofertas":
        bad = bad.head(1)
    rows = pl.concat([bad, sends])
    shutil.rmtree(path, ignore_errors=True)  # a fresh table: the demo is the same on every run
    rows.write_delta(path, mode="overwrite")
    return rows.height


def _write_restricted(path: Path, people: _Customers, rng: np.random.Generator, load_date: dt.date) -> int:
    count = max(5, len(people.ids) // 100)
    who = rng.choice(people.ids, size=count, replace=False)
    asked = [load_date - dt.timedelta(days=int(k)) for k in rng.integers(0, HISTORY_DAYS + 1, count)]
    reasons = _SUBJECTS["restritos"]
    records: list[dict] = [
        {
            "id_cliente": int(i),
            "contatos": {
                "email": email,
                "numero_telefone": phone,
                "data_solicitacao": day.isoformat(),
            },
            "motivos": {"descricao": reasons[int(k)]},
        }
        for i, email, phone, day, k in zip(
            who,
            people.email(who),
            people.phone(who),
            asked,
            rng.integers(0, len(reasons), count),
            strict=True,
        )
    ]
    records += [dict(records[k]) for k in range(0, count, 97)]  # the same request listed twice
    records.insert(7, {**records[0], "id_cliente": "12ab"})
    undated = {"email": "sem-data@exemplo.com.br", "numero_telefone": "11900000000"}
    records.insert(13, {**records[1], "contatos": undated})
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(records)


def _write_fraud(path: Path, people: _Customers, rng: np.random.Generator, load_date: dt.date) -> int:
    count = max(5, len(people.ids) // 200)
    who = rng.choice(people.ids, size=count, replace=False)
    listed = rng.integers(0, HISTORY_DAYS + 1, count)
    included = np.datetime64(load_date) - listed.astype("timedelta64[D]")
    # ~30% were cleared since: removed some days after they were listed, never after the load date.
    cleared = rng.random(count) < 0.3
    removed_after = np.minimum(rng.integers(1, 60, count), np.maximum(listed, 1))
    excluded = np.where(cleared, included + removed_after.astype("timedelta64[D]"), np.datetime64("NaT"))
    rows = pl.DataFrame(
        {
            "id_cliente": who,
            "email": people.email(who),
            "telefone": people.phone(who),
            "dt_inclus": included.astype("datetime64[D]"),
            "data_exclus": excluded.astype("datetime64[D]"),
        },
        schema_overrides={"dt_inclus": pl.Date, "data_exclus": pl.Date},
    )
    bad = rows.head(1).with_columns(pl.lit(None, dtype=pl.Int64).alias("id_cliente"))
    rows = pl.concat([rows.head(3), bad, rows.slice(3)])
    rows.write_parquet(path)
    return rows.height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the six demo quarantine sources")
    parser.add_argument("--out", default="data/quarantine", help="folder to write (default data/quarantine)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--load-date", type=dt.date.fromisoformat, default=None, help="default: today")
    args = parser.parse_args(argv)
    written = generate_quarantine_sources(args.out, args.customers, args.seed, args.load_date)
    for name, rows in written.items():
        print(f"{Path(args.out) / name}: {rows:,} rows (bad on purpose: {'; '.join(BAD_ROWS[name])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
