"""The rules of the quarantine table (design.md, "Quarantine rules"), on small exact tables."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.transforms.quarantine import (
    SourceError,
    blocking_channels,
    quarantine_for_dates,
    quarantine_table,
    resolve_channel,
)
from quarantine_platform.transforms.quarantine_rules import load_rules
from quarantine_platform_tests.quarantine.helpers import (
    SEED_LOAD_DATE,
    SEED_SENDS,
    SOURCE_OF,
    by_source,
    rules,
    seed_table,
    send,
    sends,
    table,
)

D = dt.date(2024, 5, 28)


def table_on(sources: dict[str, pl.LazyFrame], rules_: list, load_date: dt.date) -> pl.DataFrame:
    """The table of a load date, by canal then id_cliente (the order the warehouse and exports give)."""
    return quarantine_table(sources, rules_, load_date).sort("canal", "id_cliente")


def days_before(n: int) -> dt.date:
    return D - dt.timedelta(days=n)


def test_the_seed_example_table_with_corrected_exit_dates():
    assert_frame_equal(table_on(by_source(*SEED_SENDS), rules(), SEED_LOAD_DATE), seed_table())


@pytest.mark.parametrize("rule", [r for r in rules() if r.days is not None], ids=lambda r: r.canal)
def test_each_channel_at_its_boundary_day(rule):
    """On D - days the contact is still in (saida_prevista = D, its last day); the day before, out."""
    result = table_on(
        by_source(
            send(1, rule.canal, days_before(rule.days), data_base=D),
            send(2, rule.canal, days_before(rule.days + 1), data_base=D),
            send(3, rule.canal, D, data_base=D),
        ),
        rules(),
        D,
    )
    expected = table(
        {
            "id_cliente": 1,
            "canal": rule.canal,
            "data_envio": days_before(rule.days),
            "qtd_dias": rule.days,
            "saida_prevista": D,
            "data_carga": D,
        },
        {
            "id_cliente": 3,
            "canal": rule.canal,
            "data_envio": D,
            "qtd_dias": 0,
            "saida_prevista": D + dt.timedelta(days=rule.days),
            "data_carga": D,
        },
    )
    assert_frame_equal(result, expected)


def test_fraud_is_in_quarantine_until_removed_at_the_source():
    listed = dt.date(2023, 1, 1)
    rows = by_source(
        send(1, "Fraude", listed),  # never removed
        send(2, "Fraude", listed, data_exclus=D),  # removed on D: gone on D
        send(3, "Fraude", listed, data_exclus=D + dt.timedelta(days=1)),  # removed tomorrow: still in today
    )
    on_d = table_on(rows, rules(), D)
    assert on_d["id_cliente"].to_list() == [1, 3]
    assert on_d["saida_prevista"].null_count() == 2
    assert on_d["qtd_dias"].to_list() == [(D - listed).days] * 2
    next_day = table_on(rows, rules(), D + dt.timedelta(days=1))
    assert next_day["id_cliente"].to_list() == [1]


def test_a_fraud_row_removed_at_the_source_leaves_the_table_the_next_day():
    listed = send(7, "Fraude", dt.date(2024, 5, 1), assunto="suspeita de fraude")
    before = table_on(by_source(listed), rules(), D)
    # Next morning the fraud base has the row's data_exclus set to that day.
    removed = {**listed, "data_exclus": D + dt.timedelta(days=1)}
    after = table_on(by_source(removed), rules(), D + dt.timedelta(days=1))
    assert before["id_cliente"].to_list() == [7]
    assert after.is_empty()
    # ... and a backfill of D from the new snapshot still says what D's own run said.
    assert_frame_equal(table_on(by_source(removed), rules(), D), before)


def test_sends_dated_after_the_load_date_are_ignored():
    result = table_on(
        by_source(
            send(1, "Marketing", D + dt.timedelta(days=1)), send(2, "Fraude", D + dt.timedelta(days=3))
        ),
        rules(),
        D,
    )
    assert result.is_empty()


def test_repeated_sends_keep_the_latest_one_per_customer_and_channel():
    result = table_on(
        by_source(
            send(1, "Marketing", days_before(6), assunto="primeiro"),
            send(1, "Marketing", days_before(2), assunto="ultimo"),
            send(1, "Marketing", days_before(2), assunto="ultimo"),  # the same row twice
            send(1, "Ofertas", days_before(1), assunto="oferta"),
            send(2, "Marketing", days_before(3), assunto="b"),
            send(2, "Marketing", days_before(40), assunto="velho"),
        ),
        rules(),
        D,
    )
    expected = table(
        {
            "id_cliente": 1,
            "canal": "Marketing",
            "assunto": "ultimo",
            "data_envio": days_before(2),
            "qtd_dias": 2,
            "saida_prevista": days_before(2) + dt.timedelta(days=7),
            "data_carga": D,
        },
        {
            "id_cliente": 2,
            "canal": "Marketing",
            "assunto": "b",
            "data_envio": days_before(3),
            "qtd_dias": 3,
            "saida_prevista": days_before(3) + dt.timedelta(days=7),
            "data_carga": D,
        },
        {
            "id_cliente": 1,
            "canal": "Ofertas",
            "assunto": "oferta",
            "data_envio": days_before(1),
            "qtd_dias": 1,
            "saida_prevista": days_before(1) + dt.timedelta(days=5),
            "data_carga": D,
        },
    )
    assert_frame_equal(result, expected)


def test_sends_of_the_same_day_give_the_same_row_in_any_order():
    rows = [send(1, "CRM", days_before(1), assunto=a, email=f"{a}@x", data_base=D) for a in "cab"]
    first = table_on(by_source(*rows), rules(), D)
    again = table_on(by_source(*reversed(rows)), rules(), D)
    assert_frame_equal(first, again)
    assert first["assunto"].to_list() == ["a"]


def test_rows_are_cleaned_before_the_latest_send_is_chosen():
    result = table_on(
        by_source(
            send(1, "Ofertas", days_before(1)),
            send(1, "Ofertas", None, assunto="sem data"),  # no send date: not a send
            send(None, "Ofertas", D, assunto="sem cliente"),
        ),
        rules(),
        D,
    )
    assert result.select("id_cliente", "data_envio").rows() == [(1, days_before(1))]


def test_crm_reads_the_snapshot_of_the_load_date_else_the_latest_before_it():
    older, newer = days_before(3), D
    rows = by_source(
        send(1, "CRM", days_before(10), data_base=older),
        send(2, "CRM", days_before(5), data_base=older),  # gone from the newer workbook
        send(1, "CRM", days_before(10), data_base=newer),
        send(3, "CRM", days_before(1), data_base=newer),
        send(4, "CRM", days_before(1), data_base=D + dt.timedelta(days=1)),  # a later workbook: not yet
    )
    assert table_on(rows, rules(), D)["id_cliente"].to_list() == [1, 3]
    assert table_on(rows, rules(), days_before(1))["id_cliente"].to_list() == [1, 2]
    assert table_on(rows, rules(), days_before(4)).is_empty()  # no workbook existed yet


def test_a_backfill_of_many_load_dates_equals_each_day_computed_alone():
    """Random sends of every channel (repeats, removals, CRM snapshots): one range == each day alone."""
    rng = np.random.default_rng(3)
    start = dt.date(2024, 3, 1)
    n = 4000
    canal = rng.choice(list(SOURCE_OF), n)
    sent = [start + dt.timedelta(days=int(k)) for k in rng.integers(0, 90, n)]
    removed = [start + dt.timedelta(days=int(k)) if k < 90 else None for k in rng.integers(0, 180, n)]
    rows = [
        send(
            int(i),
            str(c),
            s,
            assunto=str(a),
            data_exclus=r if c == "Fraude" else None,
            data_base=s + dt.timedelta(days=int(b)) if c == "CRM" else None,
        )
        for i, c, s, a, r, b in zip(
            rng.integers(1, 300, n),
            canal,
            sent,
            rng.integers(0, 3, n),
            removed,
            rng.integers(0, 10, n),
            strict=True,
        )
    ]
    sources = by_source(*rows)
    dates = [dt.date(2024, 4, 20) + dt.timedelta(days=k) for k in range(12)]
    together = dict(quarantine_for_dates(sources, rules(), dates))
    for day in dates:
        alone = table_on(sources, rules(), day)
        assert_frame_equal(together[day].sort("canal", "id_cliente"), alone)
    assert all(together[day].height > 0 for day in dates)
    assert set(together[dates[-1]]["canal"]) == set(SOURCE_OF)


def test_a_new_channel_is_a_rule_and_a_source(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "channels:\n"
        "  - {canal: SMS, source: sms_sends, days: 3}\n"
        "  - {canal: Fraude, source: fraud_suspects, days: null, blocks_all_channels: true}\n"
    )
    sources = {
        "sms_sends": sends(send(5, "SMS", days_before(3)), send(6, "SMS", days_before(4))).lazy(),
        "fraud_suspects": sends().lazy(),
    }
    result = table_on(sources, load_rules(path), D)
    assert result.select("id_cliente", "canal", "qtd_dias", "saida_prevista").rows() == [(5, "SMS", 3, D)]


def test_a_missing_source_is_named():
    sources = by_source(*SEED_SENDS)
    del sources["offer_sends"]
    with pytest.raises(SourceError, match="offer_sends"):
        table_on(sources, rules(), D)


def test_an_unreadable_source_is_named(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    sources = by_source(*SEED_SENDS)
    sources["fraud_suspects"] = pl.scan_parquet(broken)
    with pytest.raises(SourceError, match="fraud_suspects"):
        table_on(sources, rules(), D)


def test_channels_are_typed_any_case_with_or_without_accents():
    assert resolve_channel(rules(), "recomendação") == "Recomendacao"
    assert resolve_channel(rules(), " crm ") == "CRM"
    with pytest.raises(ValueError, match="unknown channel 'SMS'.*CRM, Marketing"):
        resolve_channel(rules(), "SMS")


def test_restricted_and_fraud_block_every_channel():
    assert blocking_channels(rules(), "Ofertas") == ["Ofertas", "Restritos", "Fraude"]
    assert blocking_channels(rules(), "Restritos") == ["Restritos", "Fraude"]


# Small ids sort on one packed key; negative and huge ones on two columns: both give the same pick.
@pytest.mark.parametrize("first_id", [1, -30, 2**61], ids=["packed_key", "negative_ids", "huge_ids"])
def test_the_latest_send_is_the_plain_sort_and_pick_on_many_ties(first_id):
    """The sort-based pick equals the obvious one: order by data_envio desc, then assunto, email, telefone
    (nulls last), first row per (id_cliente, canal). Few customers and days, so most picks are ties."""
    rng = np.random.default_rng(8)
    n = 3000
    texts = ["a", "b", None]
    day = [dt.date(2024, 5, 20) + dt.timedelta(days=k) for k in range(4)]
    rows = [
        send(int(i) + first_id - 1, str(c), day[k], assunto=texts[a], email=texts[e], telefone=texts[t])
        for i, c, k, a, e, t in zip(
            rng.integers(1, 60, n), rng.choice(["Marketing", "Restritos"], n), rng.integers(0, 4, n),
            rng.integers(0, 3, n), rng.integers(0, 3, n), rng.integers(0, 3, n), strict=True,
        )
    ]  # fmt: skip
    picked = ["id_cliente", "canal", "data_envio", "assunto", "email", "telefone"]
    reference = (
        sends(*rows)
        .sort(picked[2:], descending=[True, False, False, False], nulls_last=True)
        .unique(["id_cliente", "canal"], keep="first", maintain_order=True)
        .select(picked)
        .sort("canal", "id_cliente")
    )
    assert reference.height == 2 * 59
    assert_frame_equal(table_on(by_source(*rows), rules(), D).select(picked), reference)
