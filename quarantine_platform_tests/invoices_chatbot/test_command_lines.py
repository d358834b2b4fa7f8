"""The seeds' expected tables through Dagster's own command line (`dagster asset materialize`, ranges
as one run) and through `qp export` as a user runs it (a separate process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from quarantine_platform_tests.invoices_chatbot.helpers import (
    CHATBOT_F1000_CSV,
    CHATBOT_F2000_CSV,
    INVOICE_AVERAGES_2020_01_CSV,
)
from quarantine_platform_tests.invoices_chatbot.helpers import qp as in_process_qp

DAGSTER = str(Path(sys.executable).with_name("dagster"))
MATERIALIZE = [DAGSTER, "asset", "materialize", "-m", "quarantine_platform.definitions"]


def dagster_materialize(select: str, *where: str) -> None:
    result = subprocess.run(
        [*MATERIALIZE, "--select", select, *where],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-3000:]


def qp(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quarantine_platform.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def runs_of(asset: str) -> int:
    """Runs recorded in DAGSTER_HOME's instance that materialized `asset`."""
    with dg.DagsterInstance.get() as instance:
        return sum(dg.AssetKey(asset) in (run.asset_selection or set()) for run in instance.get_runs())


def test_a_year_of_invoice_averages_is_one_dagster_command_and_one_run(seed_data: Path) -> None:
    dagster_materialize("invoice_averages", "--partition-range", "2019-02...2020-01")

    exported = qp("export", "invoice-averages", "--month", "2020-01")

    assert (exported.returncode, exported.stdout, exported.stderr) == (0, INVOICE_AVERAGES_2020_01_CSV, "")
    assert runs_of("invoice_averages") == 1
    # (the other checks in process: each `qp` process costs ~2 s of imports)
    assert in_process_qp("export", "invoice-averages", "--month", "2020-02") == (
        2,
        "",
        "qp: error: invoice_averages for 2020-02 has not been materialized; run: dagster asset materialize "
        "-m quarantine_platform.definitions --select invoice_averages --partition 2020-02\n",
    )


def test_chatbot_hours_and_days_from_the_dagster_command_line_then_qp_export(seed_data: Path) -> None:
    dagster_materialize("chatbot_answers", "--partition-range", "2019-12-16-00:00...2019-12-16-23:00")
    dagster_materialize("chatbot_report", "--partition-range", "2019-12-16...2019-12-16")

    f1000 = qp("export", "chatbot", "--date", "2019-12-16", "--flow", "F1000")

    assert (f1000.returncode, f1000.stdout, f1000.stderr) == (0, CHATBOT_F1000_CSV, "")
    assert in_process_qp("export", "chatbot", "--date", "2019-12-16", "--flow", "F2000") == (
        0,
        CHATBOT_F2000_CSV,
        "",
    )
    assert runs_of("chatbot_answers") == 1 and runs_of("chatbot_report") == 1
