"""The source assets as the code location registers them: keys, group, resources fed by the environment."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from polars.testing import assert_frame_equal

from quarantine_platform.settings import PROJECT_ROOT
from quarantine_platform.storage.quarantine_sources import read_source
from quarantine_platform_tests.quarantine_sources.test_standardize import standard

SOURCE_ASSETS = [
    "crm_sends",
    "marketing_sends",
    "recommendation_sends",
    "offer_sends",
    "restricted_customers",
    "fraud_suspects",
]


@pytest.fixture
def rules(platform_env, monkeypatch):
    monkeypatch.setenv("QP_QUARANTINE_RULES", str(PROJECT_ROOT / "data" / "quarantine_rules.yaml"))


def test_the_six_sources_are_registered_in_the_quarantine_group_unpartitioned(platform_env, rules):
    from quarantine_platform import definitions

    graph = definitions.defs.resolve_asset_graph()
    for name in SOURCE_ASSETS:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "quarantine"
        assert node.partitions_def is None
    assert {"https", "sftp", "s3", "lake"} <= set(definitions.defs.resources)


def test_a_source_materializes_with_the_registered_resources_and_unset_credentials(
    platform_env, rules, monkeypatch
):
    """Unset credentials (empty defaults) do not stop a local path: the EnvVar-fed resources resolve."""
    from quarantine_platform import definitions

    marketing = platform_env / "marketing.csv"
    marketing.write_text("id_cliente;email;telefone;subject;data_envio\n5;a@exemplo.com;;Oi;2024-05-24\n")
    monkeypatch.setenv("QP_MARKETING_URI", str(marketing))
    job = definitions.defs.resolve_implicit_global_asset_job_def()

    result = job.execute_in_process(
        asset_selection=[dg.AssetKey("marketing_sends")], instance=dg.DagsterInstance.ephemeral()
    )

    assert result.success
    assert_frame_equal(
        read_source(platform_env / "data" / "lake", "marketing_sends").collect(),
        standard(
            {
                "id_cliente": 5,
                "canal": "Marketing",
                "email": "a@exemplo.com",
                "assunto": "Oi",
                "data_envio": dt.date(2024, 5, 24),
            }
        ),
    )
