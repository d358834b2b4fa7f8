"""What every reader returns and raises, and how a location is shown without its secrets."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class SourceError(Exception):
    """A source could not be used as a whole: its asset fails and the last good snapshot stays."""


class SourceUnavailable(SourceError):
    """The location could not be reached or read (refused, unknown host key, HTTP error, no such file)."""


class SourceFormatError(SourceError):
    """The bytes were fetched but are not a readable file of the expected format (empty, not xlsx, ...)."""


@dataclass(frozen=True)
class FetchedFile:
    data: bytes
    location: str  # the URI without credentials, query string or fragment
    last_modified: dt.datetime | None  # as the server reports it, when it does


def scheme_of(uri: str) -> str:
    """`https`, `sftp`, `s3`, `file`... or "" for a plain path (a Windows drive letter is a path too)."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", uri)
    return match.group(1).lower() if match else ""


def safe_location(uri: str) -> str:
    """The URI as it may be shown: no password, no query string (pre-signed URLs carry tokens there)."""
    if not scheme_of(uri):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact(message: str, secrets: Iterable[str]) -> str:
    """`message` with every configured secret replaced: a last guard on text from third-party libraries."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            message = message.replace(secret, "***")
    return message


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def root_cause(message: str) -> str:
    """The last line of a multi-line library error (object_store nests its causes line by line)."""
    lines = [line.strip(" ↳\t") for line in _ANSI.sub("", message).splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else message
