"""The six quarantine sources as Dagster assets: fetch -> decode -> standardize -> snapshot in the lake.

Each asset reads its location (QP_*_URI: a path, https://, sftp://, s3://) as of the run, takes its
`canal` from the quarantine rule whose `source` is the asset, and on success replaces
`{QP_LAKE_DIR}/quarantine/sources/{asset}.parquet` (STANDARD_SCHEMA) and
`{QP_LAKE_DIR}/quarantine/rejects/{asset}.parquet` (REJECT_SCHEMA). A source that cannot be read (refused,
unknown host key, HTTP error, empty or unreadable file, missing column) fails the asset with the location
named without secrets, and the last good snapshot stays as it was. So does a file whose every row was
rejected: emptying a channel (say, releasing every fraud suspect) takes a file with no rows, not a
broken one.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from quarantine_platform import settings
from quarantine_platform.resources.https import HttpsResource
from quarantine_platform.resources.lake import LakeResource
from quarantine_platform.resources.s3 import S3Resource
from quarantine_platform.resources.sftp import SftpResource
from quarantine_platform.sources import SourceAccess, SourceError, SourceUnavailable, fetch_file, formats
from quarantine_platform.sources.base import redact, safe_location
from quarantine_platform.sources.delta import read_delta_table
from quarantine_platform.storage.quarantine_rejects import write_rejects
from quarantine_platform.storage.quarantine_sources import write_source
from quarantine_platform.transforms.quarantine_rules import RulesError, load_rules, rule_for_source
from quarantine_platform.transforms.quarantine_sources import (
    SourceColumnsError,
    StandardizedSource,
    standardize_crm,
    standardize_fraud,
    standardize_marketing,
    standardize_restricted,
    standardize_sends,
)

GROUP = "quarantine"
_REASONS_SHOWN = 10


@dataclass(frozen=True)
class QuarantineSource:
    asset: str
    uri_variable: str
    file_format: str  # xlsx | csv | delta | json | parquet
    standardize: Callable[[pl.DataFrame, str], StandardizedSource]
    description: str


SOURCES = (
    QuarantineSource(
        "crm_sends",
        "QP_CRM_URI",
        "xlsx",
        standardize_crm,
        "CRM sends from an xlsx workbook (path or https:// with a bearer token), one row per send with "
        "the workbook's day in data_base.",
    ),
    QuarantineSource(
        "marketing_sends",
        "QP_MARKETING_URI",
        "csv",
        standardize_marketing,
        "Marketing Cloud sends from a ';' CSV (path or sftp://); rows without email are dropped and counted.",
    ),
    QuarantineSource(
        "recommendation_sends",
        "QP_RECOMMENDATIONS_URI",
        "delta",
        standardize_sends,
        "Product recommendation sends from a Delta table (path or s3://).",
    ),
    QuarantineSource(
        "offer_sends",
        "QP_OFFERS_URI",
        "delta",
        standardize_sends,
        "Offer sends from a Delta table (path or s3://).",
    ),
    QuarantineSource(
        "restricted_customers",
        "QP_RESTRICTED_URI",
        "json",
        standardize_restricted,
        "Restricted customers from a JSON list with nested contatos and motivos (path or s3://); one row "
        "per contato, data_envio = data_solicitacao.",
    ),
    QuarantineSource(
        "fraud_suspects",
        "QP_FRAUD_URI",
        "parquet",
        standardize_fraud,
        "Fraud suspects from Parquet (path or s3://); data_envio = dt_inclus; rows with data_exclus are kept "
        "with it (quarantine_global decides liveness per load date).",
    ),
)
QUARANTINE_SOURCE_KEYS = [dg.AssetKey(source.asset) for source in SOURCES]

_DECODERS: dict[str, Callable[[bytes], pl.DataFrame]] = {
    "xlsx": formats.read_xlsx,
    "csv": formats.read_delimited,
    "json": formats.read_json_records,
    "parquet": formats.read_parquet,
}
_KINDS = {"xlsx": "excel", "csv": "csv", "delta": "deltalake", "json": "json", "parquet": "parquet"}


@dataclass(frozen=True)
class RawSource:
    frame: pl.DataFrame
    last_modified: dt.datetime | None
    delta_version: int | None = None


def read_raw(source: QuarantineSource, uri: str, access: SourceAccess) -> RawSource:
    if source.file_format == "delta":
        snapshot = read_delta_table(uri, access.delta_storage_options)
        return RawSource(formats.typed_frame(snapshot.frame), snapshot.last_modified, snapshot.version)
    fetched = fetch_file(uri, access)
    return RawSource(_DECODERS[source.file_format](fetched.data), fetched.last_modified)


def source_access(https: HttpsResource, sftp: SftpResource, s3: S3Resource, uri: str) -> SourceAccess:
    return SourceAccess(
        bearer_token=https.bearer_token,
        http_timeout_seconds=https.timeout_seconds,
        sftp=sftp.access(),
        s3_client=s3.client,
        delta_storage_options=s3.deltalake_storage_options() if uri.startswith("s3://") else {},
        secrets=(https.bearer_token, sftp.password, s3.secret_access_key),
    )


def materialize_source(
    context: dg.AssetExecutionContext,
    source: QuarantineSource,
    lake: LakeResource,
    access: SourceAccess,
    uri: str,
) -> dg.MaterializeResult:
    location = safe_location(uri)

    def fail(message: str, transient: bool = False) -> dg.Failure:
        """Only an unreachable source may succeed on a retry (when a retry policy asks for one)."""
        text = redact(f"{source.asset}: {message}; the last good snapshot is kept", access.secrets)
        return dg.Failure(description=text, metadata={"location": location}, allow_retries=transient)

    try:
        canal = rule_for_source(load_rules(settings.get("QP_QUARANTINE_RULES")), source.asset).canal
    except RulesError as exc:
        raise fail(str(exc)) from None
    try:
        raw = read_raw(source, uri, access)
        result = source.standardize(raw.frame, canal)
    except SourceError as exc:
        message = str(exc)
        message = message if location in message else f"{location}: {message}"
        raise fail(message, transient=isinstance(exc, SourceUnavailable)) from None
    except SourceColumnsError as exc:
        raise fail(f"{location}: {exc}") from None

    rejected = pl.concat([result.rejects, result.dropped]).sort("row_number", maintain_order=True)
    rejects_file = write_rejects(lake.root, source.asset, rejected)
    reasons = _reason_counts(result.rejects)
    if result.rows.is_empty() and result.rejects.height:
        raise fail(
            f"{location}: all {result.rejects.height} rows were rejected ({_reasons_inline(reasons)}); "
            f"see {rejects_file}"
        )
    snapshot = write_source(lake.root, source.asset, result.rows)
    context.log.info(
        f"{source.asset} from {location}: {result.rows_read} read, {result.rows.height} kept, "
        f"{result.rejects.height} rejected, {result.dropped.height} dropped"
    )
    return dg.MaterializeResult(metadata=_metadata(source, location, canal, raw, result, reasons, snapshot))


def _metadata(
    source: QuarantineSource,
    location: str,
    canal: str,
    raw: RawSource,
    result: StandardizedSource,
    reasons: pl.DataFrame,
    snapshot: Path,
) -> dict[str, object]:
    rows = result.rows
    metadata: dict[str, object] = {
        "location": location,
        "canal": canal,
        "rows_read": result.rows_read,
        "rows_kept": rows.height,
        "rows_rejected": result.rejects.height,
        "dagster/row_count": rows.height,
        "reject_reasons": dg.MetadataValue.md(_reasons_markdown(reasons)),
        "latest_data_envio": _iso(rows["data_envio"].max()),
        "snapshot": str(snapshot),
    }
    if source.asset == "marketing_sends":
        metadata["rows_dropped_no_email"] = result.dropped.height
    if source.asset == "crm_sends":
        metadata["latest_data_base"] = _iso(rows["data_base"].max())
    if raw.last_modified is not None:
        metadata["source_last_modified"] = dg.MetadataValue.timestamp(raw.last_modified)
    if raw.delta_version is not None:
        metadata["delta_version"] = raw.delta_version
    return metadata


def _reason_counts(rejects: pl.DataFrame) -> pl.DataFrame:
    return rejects.group_by("reason").len("rows").sort(["rows", "reason"], descending=[True, False])


def _reasons_markdown(reasons: pl.DataFrame) -> str:
    if reasons.is_empty():
        return "No rows rejected."
    lines = ["| reason | rows |", "|---|---|"]
    lines += [
        f"| {reason.replace('|', '/')} | {rows} |" for reason, rows in reasons.head(_REASONS_SHOWN).rows()
    ]
    if reasons.height > _REASONS_SHOWN:
        lines.append(f"| ({reasons.height - _REASONS_SHOWN} more reasons) | |")
    return "\n".join(lines)


def _reasons_inline(reasons: pl.DataFrame) -> str:
    return "; ".join(f"{rows} x {reason}" for reason, rows in reasons.head(3).rows())


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else ""


def _source_asset(source: QuarantineSource) -> dg.AssetsDefinition:
    @dg.asset(
        name=source.asset,
        group_name=GROUP,
        description=source.description,
        kinds={"polars", _KINDS[source.file_format]},
    )
    def _asset(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        https: HttpsResource,
        sftp: SftpResource,
        s3: S3Resource,
    ) -> dg.MaterializeResult:
        uri = settings.get(source.uri_variable)
        return materialize_source(context, source, lake, source_access(https, sftp, s3, uri), uri)

    return _asset


quarantine_source_assets = [_source_asset(source) for source in SOURCES]
