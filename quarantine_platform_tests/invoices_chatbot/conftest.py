"""Fixtures of the invoices and chatbot tests: the seed inputs in the test's data folder, and S3 (moto)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "data"
SEED_DAY = "2019-12-16"


def pin_input_locations(monkeypatch: pytest.MonkeyPatch, data: Path) -> None:
    """QP_INVOICES_URI and QP_CHATBOT_URI inside `data`. Importing `definitions` (at collection) applies the
    embedded defaults to os.environ, and the shared `platform_env` keeps a variable already set, so without
    this the inputs would resolve to the repository's own data/ folder."""
    monkeypatch.setenv("QP_INVOICES_URI", str(data / "invoices" / "invoices.csv"))
    monkeypatch.setenv("QP_CHATBOT_URI", str(data / "chatbot"))


@pytest.fixture
def platform_env(platform_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared fixture, with the input locations of this domain inside the test's folder too."""
    pin_input_locations(monkeypatch, platform_env / "data")
    return platform_env


@pytest.fixture
def seed_data(platform_env: Path) -> Path:
    """The shipped invoices.csv and chatbot hours 13 and 14 copied into the test's QP_DATA_DIR."""
    data = platform_env / "data"
    shutil.copytree(SHIPPED / "invoices", data / "invoices")
    shutil.copytree(SHIPPED / "chatbot", data / "chatbot")
    return data


@pytest.fixture
def s3_bucket(platform_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto S3 server on a loopback port with the bucket `qp-inputs`; QP_S3_* point at it. Yields a
    boto3 client."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name, value in {
            "QP_S3_ENDPOINT_URL": endpoint,
            "QP_S3_ACCESS_KEY_ID": "testing",
            "QP_S3_SECRET_ACCESS_KEY": "testing",
            "QP_S3_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            monkeypatch.setenv(name, value)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="qp-inputs")
        yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def materialized_seed_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For tests that only read: the seed day's 24 hours and its report materialized once per module, in a
    platform environment of its own (the paths of `platform_env`)."""
    root = tmp_path_factory.mktemp("seed_day")
    data = root / "data"
    home = root / "dagster_home"
    data.mkdir()
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    shutil.copytree(SHIPPED / "chatbot", data / "chatbot")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {
            "QP_DATA_DIR": str(data),
            "QP_LAKE_DIR": str(data / "lake"),
            "QP_WAREHOUSE": str(data / "warehouse.duckdb"),
            "QP_TIMEZONE": "UTC",
            "DAGSTER_HOME": str(home),
        }.items():
            monkeypatch.setenv(name, value)
        pin_input_locations(monkeypatch, data)
        import dagster as dg

        from quarantine_platform.assets.chatbot import chatbot_answers, chatbot_report_asset
        from quarantine_platform_tests.invoices_chatbot.helpers import materialize

        instance = dg.DagsterInstance.ephemeral()
        materialize(chatbot_answers, first=f"{SEED_DAY}-00:00", last=f"{SEED_DAY}-23:00", instance=instance)
        materialize(chatbot_report_asset, partition=SEED_DAY, instance=instance)
        yield data
