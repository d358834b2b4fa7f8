"""Fixtures of the panel tests: a platform environment shared by a whole module (the Dagster runs that
produce a snapshot are paid once per module), and a driver that executes what the sensors request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quarantine_platform_tests.conftest import set_platform_env


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Like `platform_env`, for a module: every QP_* path and DAGSTER_HOME in one temporary folder."""
    root = tmp_path_factory.mktemp("panel_env")
    with pytest.MonkeyPatch.context() as mp:
        set_platform_env(mp, root)
        yield root
