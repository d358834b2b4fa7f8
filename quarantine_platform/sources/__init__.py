"""Readers of the quarantine sources' locations: a path, `https://`, `sftp://`, `s3://` (and Delta tables).

One module per protocol; `fetch_file` picks by the URI's scheme. Each reader raises SourceUnavailable
with a message that names the location without its secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quarantine_platform.sources.base import (
    FetchedFile,
    SourceError,
    SourceFormatError,
    SourceUnavailable,
    safe_location,
    scheme_of,
)
from quarantine_platform.sources.sftp import SftpAccess

__all__ = [
    "FetchedFile",
    "SourceAccess",
    "SourceError",
    "SourceFormatError",
    "SourceUnavailable",
    "fetch_file",
    "safe_location",
    "scheme_of",
]


@dataclass(frozen=True)
class SourceAccess:
    """Credentials and clients for every protocol; a reader uses only its own."""

    bearer_token: str = ""
    http_timeout_seconds: float = 60.0
    sftp: SftpAccess = field(default_factory=SftpAccess)
    s3_client: Callable[[], Any] | None = None
    delta_storage_options: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # every secret above, for redact()


def fetch_file(uri: str, access: SourceAccess) -> FetchedFile:
    scheme = scheme_of(uri)
    if scheme in ("", "file"):
        from quarantine_platform.sources.local import fetch_local

        return fetch_local(uri)
    if scheme in ("https", "http"):
        from quarantine_platform.sources.https import fetch_https

        return fetch_https(uri, access.bearer_token, access.http_timeout_seconds)
    if scheme == "sftp":
        from quarantine_platform.sources.sftp import fetch_sftp

        return fetch_sftp(uri, access.sftp)
    if scheme == "s3":
        from quarantine_platform.sources.s3 import fetch_s3

        if access.s3_client is None:
            raise SourceUnavailable(f"{safe_location(uri)}: no S3 client configured")
        return fetch_s3(uri, access.s3_client())
    raise SourceUnavailable(f"{safe_location(uri)}: unsupported scheme {scheme}:// (path, https, sftp or s3)")
