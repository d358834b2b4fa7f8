"""Files on a local (or mounted) path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from quarantine_platform.sources.base import FetchedFile, SourceUnavailable


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def fetch_local(uri: str) -> FetchedFile:
    path = local_path(uri)
    try:
        data = path.read_bytes()
        modified = path.stat().st_mtime
    except FileNotFoundError:
        raise SourceUnavailable(f"{uri}: no such file") from None
    except IsADirectoryError:
        raise SourceUnavailable(f"{uri}: is a directory, expected a file") from None
    except OSError as exc:
        raise SourceUnavailable(f"{uri}: cannot read ({exc.strerror or exc})") from None
    return FetchedFile(data, uri, dt.datetime.fromtimestamp(modified, dt.UTC))
