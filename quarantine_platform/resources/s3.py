"""S3 access for every reader of `s3://` locations (quarantine sources, invoices, the lake).

The same credentials feed boto3, Polars (object_store) and deltalake, each in the spelling it wants. An
empty field means "not set": the AWS default chain (environment, profile, instance role) decides.
Credentials never leave this object except as client options: they are not logged or put in metadata.
"""

from __future__ import annotations

from typing import Any

import dagster as dg


class S3Resource(dg.ConfigurableResource):
    endpoint_url: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    region: str = "us-east-1"

    def polars_storage_options(self) -> dict[str, str]:
        """`storage_options` for pl.read_*/scan_*/sink_* on s3:// paths."""
        options = {"aws_region": self.region}
        if self.endpoint_url:
            options["aws_endpoint_url"] = self.endpoint_url
            options["aws_allow_http"] = str(self.endpoint_url.startswith("http://")).lower()
        if self.access_key_id:
            options["aws_access_key_id"] = self.access_key_id
            options["aws_secret_access_key"] = self.secret_access_key
        return options

    def deltalake_storage_options(self) -> dict[str, str]:
        """`storage_options` for deltalake (it needs AWS_ALLOW_HTTP for an http:// endpoint)."""
        return {key.upper(): value for key, value in self.polars_storage_options().items()}

    def client(self) -> Any:
        """A boto3 S3 client."""
        import boto3
        from botocore.config import Config

        # An endpoint that never answers must fail a run in seconds, not after botocore's minutes of retries.
        config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
        kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.access_key_id:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
        return boto3.client("s3", **kwargs)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> (`bucket`, `some/key`)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// location: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri}")
    return bucket, key


def s3_from_env() -> S3Resource:
    """The resource as definitions.py builds it, for code outside a Dagster run (`qp`)."""
    from quarantine_platform import settings

    return S3Resource(
        endpoint_url=settings.get("QP_S3_ENDPOINT_URL"),
        access_key_id=settings.get("QP_S3_ACCESS_KEY_ID"),
        secret_access_key=settings.get("QP_S3_SECRET_ACCESS_KEY"),
        region=settings.get("QP_S3_REGION"),
    )
