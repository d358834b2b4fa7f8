"""Shared fixtures: an isolated platform environment per test, and the embedded broker on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_platform_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    """Every QP_* path and DAGSTER_HOME inside `root`, through `monkeypatch` (of any scope)."""
    data = root / "data"
    data.mkdir(exist_ok=True)
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for name, value in {
        "QP_DATA_DIR": str(data),
        "QP_LAKE_DIR": str(data / "lake"),
        "QP_WAREHOUSE": str(data / "warehouse.duckdb"),
        "QP_KAFKA_TOPIC": "notifications",
        "QP_TIMEZONE": "UTC",
        "DAGSTER_HOME": str(home),
    }.items():
        monkeypatch.setenv(name, value)
    # Every other variable at its embedded default, through monkeypatch so no test leaks into another. Paths
    # under the data folder are recomputed for this folder even when an earlier import of `definitions`
    # already set them to the project's data/ in this process.
    from quarantine_platform import settings

    defaults = settings.defaults()
    for name in settings.DEFAULTS_DOC:
        value = defaults[name] if str(data) in defaults[name] else settings.get(name)
        monkeypatch.setenv(name, value)
    # The shipped rules, as a copy a test may rewrite.
    rules = data / "quarantine_rules.yaml"
    shutil.copyfile(settings.SHIPPED_QUARANTINE_RULES, rules)
    monkeypatch.setenv("QP_QUARANTINE_RULES", str(rules))
    return root


@pytest.fixture
def platform_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every QP_* path and DAGSTER_HOME inside the test's own temporary folder."""
    return set_platform_env(monkeypatch, tmp_path)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`qp broker` started on a free loopback port, stopped after the test."""
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "quarantine_platform.cli", "broker", "--bootstrap", address],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("BROKER READY"), f"broker did not start: {line!r}"
        monkeypatch.setenv("QP_KAFKA_BOOTSTRAP", address)
        yield address
    finally:
        proc.terminate()
        proc.wait(10)
