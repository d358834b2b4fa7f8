"""Objects on S3 (or an S3-compatible endpoint) through the boto3 client of S3Resource."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from quarantine_platform.resources.s3 import split_s3_uri
from quarantine_platform.sources.base import FetchedFile, SourceUnavailable, safe_location


def fetch_s3(uri: str, client: Any) -> FetchedFile:
    location = safe_location(uri)
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError as exc:
        raise SourceUnavailable(str(exc)) from None
    if not key or key.endswith("/"):
        raise SourceUnavailable(f"{location}: no object key (expected s3://bucket/key)")
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        data = response["Body"].read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = error.get("Code", "an error"), error.get("Message", "")
        raise SourceUnavailable(f"{location}: S3 answered {code} (HTTP {status}): {message}") from None
    except BotoCoreError as exc:
        raise SourceUnavailable(f"{location}: cannot reach S3 ({exc})") from None
    modified = response.get("LastModified")
    return FetchedFile(data, location, modified.astimezone(dt.UTC) if modified else None)
