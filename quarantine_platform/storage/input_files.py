"""Batch input files (invoices, chatbot hours) at a local path or an `s3://` location.

Readers want a local file: an S3 object is downloaded to a temporary file first (boto3 streams it to
disk in parts, so its size does not bound memory) and removed afterwards. A location that does not
exist gives None, so the caller decides whether that is an error (invoices) or an empty input (a
chatbot hour with no traffic).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quarantine_platform.resources.s3 import S3Resource, split_s3_uri


class InputUnavailable(RuntimeError):
    """The location exists in principle but cannot be read now (S3 unreachable, access denied)."""


def join_location(root: str, *parts: str) -> str:
    """`root` + `/part/part`, for a local folder or an `s3://bucket/prefix` alike."""
    if root.startswith("s3://"):
        return "/".join([root.rstrip("/"), *parts])
    return str(Path(root, *parts))


@contextmanager
def local_copy(location: str, s3: S3Resource | None) -> Iterator[Path | None]:
    """A local path holding `location`'s bytes for the duration of the block; None if it does not exist."""
    if not location.startswith("s3://"):
        path = Path(location)
        yield path if path.is_file() else None
        return
    if s3 is None:
        raise InputUnavailable(f"{location}: an s3:// location needs the S3 resource")
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_uri(location)
    with tempfile.TemporaryDirectory(prefix="qp-input-") as folder:
        target = Path(folder) / (Path(key).name or "object")
        try:
            s3.client().download_file(bucket, key, str(target))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                yield None
                return
            raise InputUnavailable(f"{location}: cannot be read from S3 ({code or 'error'})") from None
        except BotoCoreError as exc:
            # The message names the endpoint and the problem, never the credentials.
            raise InputUnavailable(f"{location}: cannot be read from S3 ({exc})") from None
        yield target
