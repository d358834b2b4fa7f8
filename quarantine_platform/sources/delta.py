"""Delta tables on a local path or `s3://`, read with deltalake into a typed Polars frame."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from quarantine_platform.sources.base import SourceUnavailable, root_cause, safe_location, scheme_of
from quarantine_platform.sources.local import local_path

# object_store retries a refused connection for up to 3 minutes by default: fail a run sooner.
_CLIENT_LIMITS = {"max_retries": "3", "retry_timeout": "30s", "connect_timeout": "10s", "timeout": "120s"}


@dataclass(frozen=True)
class DeltaSnapshot:
    frame: pl.DataFrame
    location: str
    version: int
    last_modified: dt.datetime | None  # the newest data file's modification time


def read_delta_table(uri: str, storage_options: dict[str, str] | None) -> DeltaSnapshot:
    import pyarrow as pa
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    location = safe_location(uri)
    remote = bool(scheme_of(uri)) and scheme_of(uri) != "file"
    target = uri if remote else str(local_path(uri))
    options = {**_CLIENT_LIMITS, **(storage_options or {})} if remote else None
    try:
        table = DeltaTable(target, storage_options=options)
        frame = pl.DataFrame(table.to_pyarrow_table())
        actions = pl.from_arrow(table.get_add_actions(flatten=True))
    except TableNotFoundError:
        raise SourceUnavailable(f"{location}: no Delta table there") from None
    except (OSError, DeltaError, pa.ArrowException) as exc:
        raise SourceUnavailable(f"{location}: cannot read the Delta table ({root_cause(str(exc))})") from None
    return DeltaSnapshot(frame, location, table.version(), _newest_file_time(actions))


def _newest_file_time(actions: pl.DataFrame | pl.Series) -> dt.datetime | None:
    if isinstance(actions, pl.Series):
        actions = actions.struct.unnest()
    if actions.is_empty() or "modification_time" not in actions.columns:
        return None
    newest = actions["modification_time"].max()
    if newest is None:
        return None
    if isinstance(newest, dt.datetime):
        return newest.replace(tzinfo=dt.UTC) if newest.tzinfo is None else newest.astimezone(dt.UTC)
    return dt.datetime.fromtimestamp(int(newest) / 1000, dt.UTC)
