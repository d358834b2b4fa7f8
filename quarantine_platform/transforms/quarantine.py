"""The customer quarantine table (design.md, "Quarantine rules"), as pure Polars.

On load date D a contact (id_cliente, canal) is in quarantine when `D - data_envio <= days`, with
`qtd_dias = D - data_envio` and `saida_prevista = data_envio + days` (null for a channel whose rule has no
days: fraud, in quarantine until the source row has `data_exclus`). One row per (id_cliente, canal): the
latest send wins. Only what had happened by D counts, so a backfill of D equals D's own run:
- sends dated after D are ignored;
- a row is live on D while its `data_exclus` is null or after D;
- a source with snapshots (`data_base`, the CRM workbook) is read as its snapshot for D: `data_base` = D,
  else the latest `data_base` before D.
Rows without id_cliente or data_envio are dropped before the latest send is chosen.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from quarantine_platform.transforms.quarantine_rules import ChannelRule

# Export and warehouse column order (design.md, "Export columns").
TABLE_SCHEMA = pl.Schema(
    {
        "id_cliente": pl.Int64,
        "canal": pl.String,
        "email": pl.String,
        "telefone": pl.String,
        "assunto": pl.String,
        "data_envio": pl.Date,
        "qtd_dias": pl.Int32,
        "saida_prevista": pl.Date,
        "data_carga": pl.Date,
    }
)
# Between sends of one day to one contact, the choice must not depend on file order (a backfill reads the
# same rows in another order): after the latest data_envio, the smallest (assunto, email, telefone) wins.
_TIE_BREAK = ["assunto", "email", "telefone"]


class SourceError(RuntimeError):
    """A source snapshot is missing or unreadable; names the source."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"quarantine source {source}: {reason}")
        self.source = source


@dataclass(frozen=True)
class LoadedSource:
    """One source's rows that can matter for some load date of a range, in memory."""

    rule: ChannelRule
    sends: pl.DataFrame
    snapshots: pl.Series | None  # the snapshot days the range reads; None: the source has no snapshots


def clean_sends(sends: pl.LazyFrame) -> pl.LazyFrame:
    """Rows that can be a send at all: a customer and a send date."""
    return sends.filter(pl.col("id_cliente").is_not_null() & pl.col("data_envio").is_not_null())


def snapshot_for(snapshots: pl.Series, load_date: dt.date) -> dt.date | None:
    """The snapshot a load date reads: `data_base` = D, else the latest before D (None: none yet)."""
    earlier = snapshots.filter(snapshots <= load_date)
    return earlier.max() if earlier.len() else None  # type: ignore[return-value]


def snapshots_for_range(snapshots: pl.Series, first: dt.date, last: dt.date) -> pl.Series:
    """The snapshots that some load date in [first, last] reads."""
    oldest = snapshot_for(snapshots, first) or first
    return snapshots.filter((snapshots >= oldest) & (snapshots <= last))


def sends_for_range(
    sends: pl.LazyFrame, rule: ChannelRule, first: dt.date, last: dt.date, snapshots: pl.Series | None
) -> pl.LazyFrame:
    """The cleaned rows of one source that can be in quarantine on some load date in [first, last];
    `snapshots`: the snapshot days that range reads (None: the source has no snapshots).

    Narrowing here keeps a backfill of many load dates to one read of each source, and a single day to the
    rows of its window (plain predicates, pushed down into the Parquet scan)."""
    keep = pl.col("data_envio") <= last
    keep &= pl.col("data_exclus").is_null() | (pl.col("data_exclus") > first)
    if rule.days is not None:
        keep &= pl.col("data_envio") >= first - dt.timedelta(days=rule.days)
    if snapshots is not None:
        keep &= pl.col("data_base").is_in(snapshots.implode())  # a row without its snapshot day is no send
    return clean_sends(sends).filter(keep)


def load_sources(
    sources: Mapping[str, pl.LazyFrame], rules: Sequence[ChannelRule], first: dt.date, last: dt.date
) -> list[LoadedSource]:
    """Read every rule's source once for the load dates [first, last]. A missing or unreadable source raises
    SourceError naming it, before anything is computed."""
    loaded: list[LoadedSource] = []
    for rule in rules:
        if rule.source not in sources:
            raise SourceError(rule.source, "no snapshot was given")
        source = sources[rule.source]
        try:
            # data_base filtered first: a source without snapshots skips every row group on its statistics.
            every_snapshot = (
                clean_sends(source.filter(pl.col("data_base").is_not_null()))
                .select(pl.col("data_base").unique().sort())
                .collect()
            ).get_column("data_base")
            snapshots = snapshots_for_range(every_snapshot, first, last) if every_snapshot.len() else None
            sends = sends_for_range(source, rule, first, last, snapshots).collect()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise SourceError(rule.source, f"snapshot unreadable: {exc}") from None
        loaded.append(LoadedSource(rule, sends, snapshots))
    return loaded


def quarantine_on(sources: Sequence[LoadedSource], load_date: dt.date) -> pl.DataFrame:
    """The quarantine table of one load date, in TABLE_SCHEMA column order; rows by canal (in name order),
    within a channel in the sources' order (the warehouse and the exports sort as they need)."""
    by_channel: dict[str, list[pl.DataFrame]] = {}
    for source in sources:
        sends = source.sends.lazy()
        if source.snapshots is not None:
            snapshot = snapshot_for(source.snapshots, load_date)
            if snapshot is None:
                continue  # no snapshot existed yet on that day
            sends = sends.filter(pl.col("data_base") == snapshot)
        rows = _in_quarantine(sends, source.rule, load_date).collect()
        channels = rows.get_column("canal").unique()
        if channels.len() == 1:  # the usual case: a source is one channel
            by_channel.setdefault(channels[0], []).append(rows)
        else:
            for (canal,), part in rows.partition_by("canal", as_dict=True).items():
                by_channel.setdefault(canal, []).append(part)
    tables = [_latest_send_per_customer(pl.concat(by_channel[canal])) for canal in sorted(by_channel)]
    return pl.concat(tables) if tables else TABLE_SCHEMA.to_frame()


def _in_quarantine(sends: pl.LazyFrame, rule: ChannelRule, load_date: dt.date) -> pl.LazyFrame:
    age = (pl.lit(load_date) - pl.col("data_envio")).dt.total_days()
    live = (pl.col("data_envio") <= load_date) & (
        pl.col("data_exclus").is_null() | (pl.col("data_exclus") > load_date)
    )
    if rule.days is None:
        exit_date = pl.lit(None, dtype=pl.Date)
    else:
        live &= age <= rule.days
        exit_date = pl.col("data_envio") + pl.duration(days=rule.days)
    return sends.filter(live).select(
        "id_cliente",
        pl.col("canal").fill_null(rule.canal),  # a source that left canal unset holds its rule's channel
        "email",
        "telefone",
        "assunto",
        "data_envio",
        age.cast(pl.Int32).alias("qtd_dias"),
        exit_date.alias("saida_prevista"),
        pl.lit(load_date, dtype=pl.Date).alias("data_carga"),
    )


def _latest_send_per_customer(rows: pl.DataFrame) -> pl.DataFrame:
    """One channel's rows of one load date -> one row per id_cliente, the latest send, in the order of `rows`.

    Sort-based rather than grouping: nearly every customer is a group of one, and hashing millions of one-row
    groups costs several times more. Only customers with two sends on their latest day compare the text
    columns."""
    order = _by_customer_then_latest(rows)
    same_customer_as_next = pl.col("id_cliente") == pl.col("id_cliente").shift(-1)
    same_send_day_as_next = (
        same_customer_as_next & (pl.col("qtd_dias") == pl.col("qtd_dias").shift(-1))
    ).fill_null(False)
    order = order.with_columns(
        (pl.col("id_cliente") != pl.col("id_cliente").shift(1)).fill_null(True).alias("first"),
        same_send_day_as_next.alias("tied"),
    ).with_columns(
        # the customer's first row (its latest send) shares its day with the next row
        pl.when("first").then("tied").forward_fill().alias("latest_tied"),
        pl.when("first").then("qtd_dias").forward_fill().alias("latest_age"),
    )
    order = order.collect()
    alone = order.filter(pl.col("first") & ~pl.col("tied")).get_column("row")
    candidates = order.filter(pl.col("latest_tied") & (pl.col("qtd_dias") == pl.col("latest_age")))
    tie_winners = (
        rows.gather(candidates.get_column("row"))
        .with_columns(candidates.get_column("row"))
        .sort(["id_cliente", *_TIE_BREAK], nulls_last=True)
        .unique("id_cliente", keep="first")
        .get_column("row")
    )
    # A mask keeps the rows' own order and shares the text buffers; a gather copies every string.
    winners = pl.zeros(rows.height, pl.Boolean, eager=True).scatter(pl.concat([alone, tie_winners]), True)
    return rows.filter(winners).select(TABLE_SCHEMA.names())


def _by_customer_then_latest(rows: pl.DataFrame) -> pl.LazyFrame:
    """(row, id_cliente, qtd_dias) sorted by id_cliente, then the latest send first (qtd_dias ascending: every
    row of a table shares its load date). When both fit, the sort is on one Int64 packing the two, several
    times faster than a sort on two columns."""
    row = pl.int_range(pl.len(), dtype=pl.UInt32).alias("row")
    if not rows.is_empty():
        ids, ages = rows.get_column("id_cliente"), rows.get_column("qtd_dias")
        age_bits = max(int(ages.max()).bit_length(), 1)  # type: ignore[arg-type]
        if ages.min() >= 0 and ids.min() >= 0 and ids.max() < 1 << (62 - age_bits):  # type: ignore[operator]
            packed = pl.col("id_cliente") * (1 << age_bits) + pl.col("qtd_dias")
            return (
                rows.lazy()
                .select(row, packed.alias("key"))
                .sort("key")
                .select(
                    "row",
                    (pl.col("key") // (1 << age_bits)).alias("id_cliente"),
                    (pl.col("key") % (1 << age_bits)).cast(pl.Int32).alias("qtd_dias"),
                )
            )
    return rows.lazy().select(row, "id_cliente", "qtd_dias").sort(["id_cliente", "qtd_dias"])


def quarantine_for_dates(
    sources: Mapping[str, pl.LazyFrame], rules: Sequence[ChannelRule], load_dates: Sequence[dt.date]
) -> Iterator[tuple[dt.date, pl.DataFrame]]:
    """Each load date's table, from one read of every source. Every source is read before the first table
    is produced, so a bad source fails the whole range before anything is written."""
    if not load_dates:
        return
    loaded = load_sources(sources, rules, min(load_dates), max(load_dates))
    for load_date in sorted(load_dates):
        yield load_date, quarantine_on(loaded, load_date)


def quarantine_table(
    sources: Mapping[str, pl.LazyFrame], rules: Sequence[ChannelRule], load_date: dt.date
) -> pl.DataFrame:
    """The quarantine table of one load date."""
    return next(quarantine_for_dates(sources, rules, [load_date]))[1]


# --- channels as people type them -----------------------------------------------------------------------


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def resolve_channel(rules: Sequence[ChannelRule], typed: str) -> str:
    """The configured channel a user meant: case and accents do not matter (`recomendação` -> Recomendacao).
    Raises ValueError listing the configured channels."""
    for rule in rules:
        if _fold(rule.canal) == _fold(typed):
            return rule.canal
    names = ", ".join(rule.canal for rule in rules)
    raise ValueError(f"unknown channel {typed!r}: the quarantine rules have {names}")


def blocking_channels(rules: Sequence[ChannelRule], channel: str) -> list[str]:
    """The channels whose row keeps a customer from `channel`: itself and every blocks-all channel."""
    return [rule.canal for rule in rules if rule.canal == channel or rule.blocks_all_channels]
