"""Standardization of the six quarantine sources: a raw frame -> standardized rows + rejected rows.

Input: a raw frame as the readers give it (quarantine_platform.sources.formats): the file's columns
(text, or typed for Parquet/Delta) plus `_row` (1-based record number), `_position` (where in the file)
and optionally `_error` (a record the format could not split). Output: rows in STANDARD_SCHEMA, with
`canal` from the quarantine rules, and one reject per bad row with its reason and its raw values.

- A file without a contract column, or with a column of a type that cannot hold the field (Parquet,
  Delta), is a file-level error (SourceColumnsError): the whole file is wrong, not one row.
- A bad value (id not a whole number, date not ISO `YYYY-MM-DD`, a required field empty, a JSON value
  of the wrong type) rejects its row; the other rows go on. Reasons name the file's column.
- Duplicate sends are kept as rows: `quarantine_global` picks the latest per customer and channel.
- Marketing rows without email are dropped (as the seed does) and returned apart, so they are counted.
- Fraud rows with `data_exclus` set are kept with it: liveness is decided per load date downstream.
- Restricted: `contatos` and `motivos` may each be an object or a list of objects. One row per contato;
  `assunto` is every distinct `motivos.descricao` in file order, joined with "; ".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from quarantine_platform.storage.quarantine_sources import STANDARD_SCHEMA

# Columns of a raw frame besides the file's own (see quarantine_platform.sources.formats).
ROW = "_row"
POSITION = "_position"
ROW_ERROR = "_error"
RECORD = "record"  # JSON sources: the record's JSON text
_RAW = "_raw"

REJECT_SCHEMA = pl.Schema(
    {
        "row_number": pl.Int64,  # 1-based record number in the source, header excluded
        "position": pl.String,  # where to look: "line 7", "sheet row 3", "record 2, contatos[1]", "row 5"
        "reason": pl.String,  # "<column>: <what is wrong>", several joined with "; "
        "raw": pl.String,  # the record's raw values as a JSON object of text
    }
)

FRAUD_SUBJECT = "suspeita de fraude"
NO_EMAIL_REASON = "email: missing (row dropped)"

Kind = Literal["integer", "date", "text"]
_KIND_TYPES = {
    "integer": "an integer or text column",
    "date": "a date, datetime or text column",
    "text": "a text or integer column",
}
_WHOLE_NUMBER = r"^\d+$"
# An ISO date, optionally followed by a time (and offset): the date as written is the day.
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"


class SourceColumnsError(ValueError):
    """The file lacks a contract column or has a column of an unusable type: the file is rejected."""


@dataclass(frozen=True)
class Field:
    source: str  # the column as the file names it
    target: str  # the STANDARD_SCHEMA column
    kind: Kind
    required: bool = False


@dataclass(frozen=True)
class StandardizedSource:
    rows: pl.DataFrame  # STANDARD_SCHEMA, in source order
    rejects: pl.DataFrame  # REJECT_SCHEMA: rows that failed validation
    dropped: pl.DataFrame  # REJECT_SCHEMA: valid rows a source rule drops (marketing without email)
    rows_read: int  # records in the source (blank lines and rows skipped)


_ID = Field("id_cliente", "id_cliente", "integer", required=True)
_EMAIL = Field("email", "email", "text")
_PHONE = Field("telefone", "telefone", "text")
_SUBJECT = Field("assunto", "assunto", "text")
_SENT = Field("data_envio", "data_envio", "date", required=True)

CRM_FIELDS = (_ID, _EMAIL, _PHONE, _SUBJECT, _SENT, Field("data_base", "data_base", "date", required=True))
MARKETING_FIELDS = (_ID, _EMAIL, _PHONE, Field("subject", "assunto", "text"), _SENT)
SENDS_FIELDS = (_ID, _EMAIL, _PHONE, _SUBJECT, _SENT)  # recommendations and offers (Delta)
FRAUD_FIELDS = (
    _ID,
    _EMAIL,
    _PHONE,
    Field("dt_inclus", "data_envio", "date", required=True),
    Field("data_exclus", "data_exclus", "date"),
)
RESTRICTED_FIELDS = (
    _ID,
    Field("contatos.email", "email", "text"),
    Field("contatos.numero_telefone", "telefone", "text"),
    Field("motivos.descricao", "assunto", "text"),
    Field("contatos.data_solicitacao", "data_envio", "date", required=True),
)


def standardize_crm(raw: pl.DataFrame, canal: str) -> StandardizedSource:
    return _finish(raw, CRM_FIELDS, canal)


def standardize_marketing(raw: pl.DataFrame, canal: str) -> StandardizedSource:
    no_email = _clean(pl.col("email")).is_null()
    return _finish(raw, MARKETING_FIELDS, canal, drop=(no_email, NO_EMAIL_REASON))


def standardize_sends(raw: pl.DataFrame, canal: str) -> StandardizedSource:
    """Recommendations and offers: Delta tables of sends."""
    return _finish(raw, SENDS_FIELDS, canal)


def standardize_fraud(raw: pl.DataFrame, canal: str) -> StandardizedSource:
    return _finish(raw, FRAUD_FIELDS, canal, constants={"assunto": FRAUD_SUBJECT})


def standardize_restricted(raw: pl.DataFrame, canal: str) -> StandardizedSource:
    """`raw`: one JSON record per row (`record`); flattened to one row per contato first."""
    flat = _flatten_restricted(raw)
    result = _finish(flat, RESTRICTED_FIELDS, canal, raw_column=_RAW)
    return StandardizedSource(result.rows, result.rejects, result.dropped, raw.height)


def _finish(
    raw: pl.DataFrame,
    fields: tuple[Field, ...],
    canal: str,
    *,
    constants: dict[str, str] | None = None,
    raw_column: str | None = None,
    drop: tuple[pl.Expr, str] | None = None,
) -> StandardizedSource:
    """Validate `fields` of every row; `drop`: (condition, reason) of valid rows a source rule removes."""
    text = as_text(raw, fields)
    cleaned = [_clean(pl.col(f.source)) for f in fields]
    reason = pl.concat_str(
        [_reason(v, f) for v, f in zip(cleaned, fields, strict=True)], separator="; ", ignore_nulls=True
    )
    reason = pl.when(reason != "").then(reason)
    if ROW_ERROR in text.columns:  # a record the format could not split: its fields say nothing more
        reason = pl.coalesce(pl.col(ROW_ERROR), reason)
    text = text.with_columns(reason.alias("_reason"))
    raw_json = (
        pl.col(raw_column) if raw_column else pl.struct([f.source for f in fields]).struct.json_encode()
    )

    def rejected(frame: pl.DataFrame, why: pl.Expr) -> pl.DataFrame:
        # The raw values are encoded for these rows only: most rows are good.
        return frame.select(
            pl.col(ROW).alias("row_number"),
            pl.col(POSITION).alias("position"),
            why.alias("reason"),
            raw_json.alias("raw"),
        ).cast(REJECT_SCHEMA)

    rejects = rejected(text.filter(pl.col("_reason").is_not_null()), pl.col("_reason"))
    good = text.filter(pl.col("_reason").is_null())
    dropped = pl.DataFrame(schema=REJECT_SCHEMA)
    if drop is not None:
        condition, why = drop
        dropped = rejected(good.filter(condition), pl.lit(why))
        good = good.filter(~condition)
    targets = {f.target: _parse(v, f) for v, f in zip(cleaned, fields, strict=True)}
    targets["canal"] = pl.lit(canal)
    targets.update({name: pl.lit(value) for name, value in (constants or {}).items()})
    rows = good.select(
        targets.get(name, pl.lit(None)).cast(dtype).alias(name) for name, dtype in STANDARD_SCHEMA.items()
    )
    return StandardizedSource(rows, rejects, dropped, raw.height)


def as_text(raw: pl.DataFrame, fields: tuple[Field, ...]) -> pl.DataFrame:
    """The contract columns as text (typed sources converted); a missing or unusable column fails the file."""
    missing = [f.source for f in fields if f.source not in raw.columns]
    if missing:
        found = [name for name in raw.columns if not name.startswith("_")]
        raise SourceColumnsError(
            f"missing column(s) {', '.join(missing)} (found: {', '.join(found) if found else 'none'})"
        )
    return raw.with_columns(_column_text(f.source, raw.schema[f.source], f.kind) for f in fields)


def _column_text(name: str, dtype: pl.DataType, kind: Kind) -> pl.Expr:
    column = pl.col(name)
    if dtype == pl.String:
        return column
    if dtype == pl.Null or (dtype.is_integer() and kind in ("integer", "text")):
        return column.cast(pl.String)
    if kind == "text" and isinstance(dtype, pl.Categorical | pl.Enum):
        return column.cast(pl.String)
    if kind == "date" and dtype == pl.Date:
        return column.cast(pl.String)
    if kind == "date" and isinstance(dtype, pl.Datetime):
        return column.dt.strftime("%Y-%m-%d %H:%M:%S")
    raise SourceColumnsError(f"column {name} has type {dtype}: expected {_KIND_TYPES[kind]}")


def _clean(column: pl.Expr) -> pl.Expr:
    stripped = column.str.strip_chars()
    return pl.when(stripped.str.len_chars() > 0).then(stripped)


def _parse(value: pl.Expr, field: Field) -> pl.Expr:
    if field.kind == "integer":
        return pl.when(value.str.contains(_WHOLE_NUMBER)).then(value.cast(pl.Int64, strict=False))
    if field.kind == "date":
        return pl.when(value.str.contains(_ISO_DATE)).then(
            value.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        )
    return value


def _reason(value: pl.Expr, field: Field) -> pl.Expr:
    missing = pl.lit(f"{field.source}: missing") if field.required else pl.lit(None, pl.String)
    if field.kind == "text":
        return pl.when(value.is_null()).then(missing)
    problem = {
        "integer": pl.when(value.str.contains(_WHOLE_NUMBER))
        .then(pl.lit(f"{field.source}: out of range"))
        .otherwise(pl.lit(f"{field.source}: not a whole number")),
        "date": pl.lit(f"{field.source}: not an ISO date (YYYY-MM-DD)"),
    }[field.kind]
    return pl.when(value.is_null()).then(missing).when(_parse(value, field).is_null()).then(problem)


# ---------------------------------------------------------------------------------------------------------
# Restricted: nested JSON records -> one flat row per contato


def _flatten_restricted(raw: pl.DataFrame) -> pl.DataFrame:
    missing = [name for name in (ROW, POSITION, RECORD) if name not in raw.columns]
    if missing:
        raise SourceColumnsError(f"missing column(s) {', '.join(missing)} in the JSON records frame")
    errors_in = (
        raw[ROW_ERROR] if ROW_ERROR in raw.columns else pl.Series([None] * raw.height, dtype=pl.String)
    )
    out: dict[str, list[Any]] = {name: [] for name in (ROW, POSITION, *(f.source for f in RESTRICTED_FIELDS))}
    out[ROW_ERROR] = []
    out[_RAW] = []

    def emit(row: int, position: str, record: str, values: dict[str, str | None], errors: list[str]) -> None:
        out[ROW].append(row)
        out[POSITION].append(position)
        for f in RESTRICTED_FIELDS:
            out[f.source].append(values.get(f.source))
        out[ROW_ERROR].append("; ".join(errors) or None)
        out[_RAW].append(record)

    for row, position, record, error in zip(raw[ROW], raw[POSITION], raw[RECORD], errors_in, strict=True):
        if error is not None:
            emit(row, position, record, {}, [error])
            continue
        document = json.loads(record)
        if not isinstance(document, dict):
            emit(row, position, record, {}, [f"record: expected a JSON object, found {_json_type(document)}"])
            continue
        errors: list[str] = []
        base = {"id_cliente": _scalar_text(document.get("id_cliente"), "id_cliente", errors)}
        base["motivos.descricao"] = _subjects(document.get("motivos"), errors)
        contatos = _objects(document.get("contatos"), "contatos", errors)
        if not contatos:
            emit(row, position, record, base, errors)
            continue
        for index, contato in contatos:
            where = position if index is None else f"{position}, contatos[{index}]"
            contact_errors = list(errors)
            values = dict(base)
            if isinstance(contato, dict):
                for key in ("email", "numero_telefone", "data_solicitacao"):
                    values[f"contatos.{key}"] = _scalar_text(
                        contato.get(key), f"contatos.{key}", contact_errors
                    )
            else:
                contact_errors.append(f"contatos[{index}]: expected an object, found {_json_type(contato)}")
            emit(row, where, record, values, contact_errors)
    schema = {ROW: pl.Int64, **{name: pl.String for name in out if name != ROW}}
    return pl.DataFrame(out, schema=schema)


def _objects(value: Any, name: str, errors: list[str]) -> list[tuple[int | None, Any]]:
    """An object or a list of objects as (index in the list or None, item); problems go to `errors`."""
    if value is None:
        errors.append(f"{name}: missing")
        return []
    if isinstance(value, dict):
        return [(None, value)]
    if isinstance(value, list):
        if not value:
            errors.append(f"{name}: empty list")
        return list(enumerate(value))
    errors.append(f"{name}: expected an object or a list of objects, found {_json_type(value)}")
    return []


def _subjects(value: Any, errors: list[str]) -> str | None:
    if value is None:
        return None
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
    if items is None or not all(isinstance(item, dict) for item in items):
        errors.append(f"motivos: expected an object or a list of objects, found {_json_type(value)}")
        return None
    subjects: list[str] = []
    for item in items:
        text = _scalar_text(item.get("descricao"), "motivos.descricao", errors)
        if text and text.strip() and text.strip() not in subjects:
            subjects.append(text.strip())
    return "; ".join(subjects) or None


def _scalar_text(value: Any, name: str, errors: list[str]) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{name}: expected text or a number, found {_json_type(value)}")
        return None
    return str(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"
