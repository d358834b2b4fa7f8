"""The six source assets through Dagster, each reading from its real server, and how they fail."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import write_deltalake
from polars.testing import assert_frame_equal

from quarantine_platform.settings import PROJECT_ROOT
from quarantine_platform.storage.quarantine_rejects import read_rejects
from quarantine_platform.storage.quarantine_sources import STANDARD_SCHEMA, source_path
from quarantine_platform.transforms.quarantine_sources import FRAUD_SUBJECT, NO_EMAIL_REASON
from quarantine_platform_tests.conftest import free_port
from quarantine_platform_tests.quarantine_sources.conftest import (
    BEARER_TOKEN,
    S3_SECRET,
    failure_message,
    materialize_source,
)
from quarantine_platform_tests.quarantine_sources.test_standardize import CRM_HEADER, standard, xlsx

D = dt.date
MARKETING_HEADER = "id_cliente;email;telefone;subject;data_envio\n"


@pytest.fixture
def lake(platform_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The platform in a temporary folder, with the project's quarantine rules."""
    monkeypatch.setenv("QP_QUARANTINE_RULES", str(PROJECT_ROOT / "data" / "quarantine_rules.yaml"))
    return platform_env / "data" / "lake"


def snapshot(lake: Path, asset: str) -> pl.DataFrame:
    return pl.read_parquet(source_path(lake, asset))


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


def no_secret_in_events(result: dg.ExecuteInProcessResult, *secrets: str) -> bool:
    text = "\n".join(str(event) for event in result.all_events)
    return not any(secret in text for secret in secrets)


# --- CRM over HTTPS ----------------------------------------------------------------------------------------


def crm_workbook(subject: str = "Campanha") -> bytes:
    return xlsx(
        CRM_HEADER,
        [1234567890, "cliente@exemplo.com", 999999999, subject, dt.datetime(2024, 5, 8), D(2024, 5, 27)],
        [1234567890, "cliente@exemplo.com", 999999999, subject, dt.datetime(2024, 5, 8), D(2024, 5, 28)],
        ["12a", "x@exemplo.com", None, subject, D(2024, 5, 9), D(2024, 5, 28)],
    )


def test_crm_sends_from_https_with_the_bearer_token_and_canal_from_the_rules(
    lake, https, monkeypatch, tmp_path
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        (PROJECT_ROOT / "data" / "quarantine_rules.yaml")
        .read_text()
        .replace("canal: CRM", "canal: Relacionamento")
    )
    monkeypatch.setenv("QP_QUARANTINE_RULES", str(rules))
    https.files["crm.xlsx"] = crm_workbook()
    monkeypatch.setenv("QP_CRM_URI", https.content_url("crm.xlsx") + "?select=content")

    result = materialize_source("crm_sends")

    assert result.success
    send = {"id_cliente": 1234567890, "canal": "Relacionamento", "email": "cliente@exemplo.com"}
    send |= {"telefone": "999999999", "assunto": "Campanha", "data_envio": D(2024, 5, 8)}
    assert_frame_equal(
        snapshot(lake, "crm_sends"),
        standard({**send, "data_base": D(2024, 5, 27)}, {**send, "data_base": D(2024, 5, 28)}),
    )
    meta = metadata(result)
    assert {k: meta[k] for k in ("location", "canal", "rows_read", "rows_kept", "rows_rejected")} == {
        "location": https.content_url("crm.xlsx"),
        "canal": "Relacionamento",
        "rows_read": 3,
        "rows_kept": 2,
        "rows_rejected": 1,
    }
    assert meta["reject_reasons"] == "| reason | rows |\n|---|---|\n| id_cliente: not a whole number | 1 |"
    assert (meta["latest_data_envio"], meta["latest_data_base"]) == ("2024-05-08", "2024-05-28")
    assert meta["source_last_modified"] == dt.datetime(2024, 5, 22, 10, 0, tzinfo=dt.UTC).timestamp()
    assert https.authorization_seen_by_download == []
    assert read_rejects(lake, "crm_sends").select("row_number", "position", "reason").rows() == [
        (3, "sheet row 4", "id_cliente: not a whole number")
    ]


def test_crm_wrong_token_fails_clearly_and_keeps_the_last_snapshot(lake, https, monkeypatch):
    https.files["crm.xlsx"] = crm_workbook()
    monkeypatch.setenv("QP_CRM_URI", https.site_url("crm.xlsx") + "?tempauth=query-secret-1")
    assert materialize_source("crm_sends").success
    before = source_path(lake, "crm_sends").read_bytes()

    https.files["crm.xlsx"] = crm_workbook("Outra campanha")
    monkeypatch.setenv("QP_CRM_BEARER_TOKEN", "expired-token-0000")
    result = materialize_source("crm_sends")

    assert failure_message(result) == (
        f"crm_sends: GET {https.site_url('crm.xlsx')} answered HTTP 401 Unauthorized "
        "(check QP_CRM_BEARER_TOKEN); the last good snapshot is kept"
    )
    assert no_secret_in_events(result, "expired-token-0000", BEARER_TOKEN, "query-secret-1")
    assert source_path(lake, "crm_sends").read_bytes() == before


# --- Marketing over SFTP -----------------------------------------------------------------------------------


@pytest.fixture
def marketing_over_sftp(lake, sshd, monkeypatch) -> Path:
    remote = sshd.files / "marketing.csv"
    remote.write_text(
        MARKETING_HEADER
        + "2345678901;marketing@exemplo.com;988888888;Email boas vindas;2024-05-24\n"
        + "2345678901;marketing@exemplo.com;988888888;Email boas vindas;2024-05-26\n"
        + "2345678902;;977777777;Email boas vindas;2024-05-24\n"
        + "2345678903;m@exemplo.com;;Email;24/05/2024\n"
    )
    monkeypatch.setenv("QP_MARKETING_URI", sshd.uri(remote))
    monkeypatch.setenv("QP_SFTP_KEY_FILE", str(sshd.user_key))
    monkeypatch.setenv("QP_SFTP_KNOWN_HOSTS", str(sshd.known_hosts))
    return remote


def test_marketing_sends_over_sftp_with_a_key(lake, sshd, marketing_over_sftp):
    result = materialize_source("marketing_sends")

    assert result.success
    send = {"id_cliente": 2345678901, "canal": "Marketing", "email": "marketing@exemplo.com"}
    send |= {"telefone": "988888888", "assunto": "Email boas vindas"}
    assert_frame_equal(
        snapshot(lake, "marketing_sends"),
        standard({**send, "data_envio": D(2024, 5, 24)}, {**send, "data_envio": D(2024, 5, 26)}),
    )
    meta = metadata(result)
    assert meta["location"] == sshd.uri(marketing_over_sftp)
    assert (meta["rows_read"], meta["rows_kept"], meta["rows_rejected"], meta["rows_dropped_no_email"]) == (
        4,
        2,
        1,
        1,
    )
    assert meta["latest_data_envio"] == "2024-05-26"
    assert meta["source_last_modified"] == int(marketing_over_sftp.stat().st_mtime)
    assert read_rejects(lake, "marketing_sends").select("row_number", "position", "reason").rows() == [
        (3, "line 4", NO_EMAIL_REASON),
        (4, "line 5", "data_envio: not an ISO date (YYYY-MM-DD)"),
    ]


def test_marketing_unknown_host_key_fails_and_keeps_the_last_snapshot(
    lake, sshd, marketing_over_sftp, monkeypatch
):
    assert materialize_source("marketing_sends").success
    before = source_path(lake, "marketing_sends").read_bytes()
    other = sshd.files.parent / "other_known_hosts"
    other.write_text(sshd.other_host_key_line)
    monkeypatch.setenv("QP_SFTP_KNOWN_HOSTS", str(other))

    result = materialize_source("marketing_sends")

    assert failure_message(result) == (
        f"marketing_sends: {sshd.uri(marketing_over_sftp)}: the host key of 127.0.0.1:{sshd.port} does not "
        f"match known_hosts {other}; refused; the last good snapshot is kept"
    )
    assert source_path(lake, "marketing_sends").read_bytes() == before


def test_marketing_refused_port_fails_and_keeps_the_last_snapshot(
    lake, sshd, marketing_over_sftp, monkeypatch
):
    assert materialize_source("marketing_sends").success
    before = source_path(lake, "marketing_sends").read_bytes()
    port = free_port()
    uri = f"sftp://root@127.0.0.1:{port}/srv/marketing.csv"
    monkeypatch.setenv("QP_MARKETING_URI", uri)
    monkeypatch.setenv("QP_SFTP_PASSWORD", "sftp-password-31")

    result = materialize_source("marketing_sends")

    assert failure_message(result) == (
        f"marketing_sends: {uri}: cannot connect to 127.0.0.1:{port} (Connection refused); "
        "the last good snapshot is kept"
    )
    assert no_secret_in_events(result, "sftp-password-31")
    assert source_path(lake, "marketing_sends").read_bytes() == before


# --- Recommendations and offers: Delta on S3 and on a path -------------------------------------------------


def sends_table(subject: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id_cliente": [3456789012, 3456789012, 3456789013],
            "email": ["recomendacao@exemplo.com", "recomendacao@exemplo.com", None],
            "telefone": ["977777777", "977777777", None],
            "assunto": [subject, subject, subject],
            "data_envio": [D(2024, 5, 18), D(2024, 5, 20), None],
        }
    )


def test_recommendation_sends_from_delta_on_s3(lake, s3_bucket, monkeypatch):
    uri = s3_bucket.uri("lake/recomendacao")
    write_deltalake(uri, sends_table("Novo Produto").to_arrow(), storage_options=s3_bucket.delta_options())
    monkeypatch.setenv("QP_RECOMMENDATIONS_URI", uri)

    result = materialize_source("recommendation_sends")

    assert result.success
    send = {"id_cliente": 3456789012, "canal": "Recomendacao", "email": "recomendacao@exemplo.com"}
    send |= {"telefone": "977777777", "assunto": "Novo Produto"}
    assert_frame_equal(
        snapshot(lake, "recommendation_sends"),
        standard({**send, "data_envio": D(2024, 5, 18)}, {**send, "data_envio": D(2024, 5, 20)}),
    )
    meta = metadata(result)
    assert (meta["location"], meta["delta_version"], meta["rows_rejected"]) == (uri, 0, 1)
    assert no_secret_in_events(result, S3_SECRET)


def test_offer_sends_from_delta_on_a_path(lake, tmp_path, monkeypatch):
    table = tmp_path / "ofertas"
    write_deltalake(str(table), sends_table("Promoção").to_arrow())
    write_deltalake(str(table), sends_table("Promoção").head(1).to_arrow(), mode="append")
    monkeypatch.setenv("QP_OFFERS_URI", str(table))

    result = materialize_source("offer_sends")

    assert result.success
    send = {"id_cliente": 3456789012, "canal": "Ofertas", "email": "recomendacao@exemplo.com"}
    send |= {"telefone": "977777777", "assunto": "Promoção"}
    rows = snapshot(lake, "offer_sends").sort("data_envio", maintain_order=True)
    expected = standard(
        *({**send, "data_envio": day} for day in (D(2024, 5, 18), D(2024, 5, 18), D(2024, 5, 20)))
    )
    assert_frame_equal(rows, expected)
    assert metadata(result)["delta_version"] == 1


# --- Restricted and fraud on S3 ----------------------------------------------------------------------------

RESTRICTED_JSON = b"""[
  {"id_cliente": 4888888800,
   "contatos": {"email": "restritos@exemplo.com", "numero_telefone": "944444443",
                "data_solicitacao": "2024-03-01"},
   "motivos": {"descricao": "Reclama\xc3\xa7\xc3\xa3o"}},
  {"id_cliente": "4888888801",
   "contatos": [{"email": "a@exemplo.com", "data_solicitacao": "2024-03-02"},
                {"email": "b@exemplo.com", "data_solicitacao": "2024-13-02"}],
   "motivos": [{"descricao": "LGPD"}]}
]"""


def test_restricted_customers_from_json_on_s3(lake, s3_bucket, monkeypatch):
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="restritos.json", Body=RESTRICTED_JSON)
    monkeypatch.setenv("QP_RESTRICTED_URI", s3_bucket.uri("restritos.json"))

    result = materialize_source("restricted_customers")

    assert result.success
    assert_frame_equal(
        snapshot(lake, "restricted_customers"),
        standard(
            {
                "id_cliente": 4888888800,
                "canal": "Restritos",
                "email": "restritos@exemplo.com",
                "telefone": "944444443",
                "assunto": "Reclamação",
                "data_envio": D(2024, 3, 1),
            },
            {
                "id_cliente": 4888888801,
                "canal": "Restritos",
                "email": "a@exemplo.com",
                "assunto": "LGPD",
                "data_envio": D(2024, 3, 2),
            },
        ),
    )
    meta = metadata(result)
    assert (meta["rows_read"], meta["rows_kept"], meta["rows_rejected"]) == (2, 2, 1)
    assert read_rejects(lake, "restricted_customers").select("position", "reason").rows() == [
        ("record 2, contatos[1]", "contatos.data_solicitacao: not an ISO date (YYYY-MM-DD)")
    ]


def test_fraud_suspects_from_parquet_on_s3_keep_removed_rows(lake, s3_bucket, monkeypatch):
    frame = pl.DataFrame(
        {
            "id_cliente": [4567890123, 4567890124],
            "email": ["fraude@exemplo.com", "f2@exemplo.com"],
            "telefone": ["966666666", None],
            "dt_inclus": [D(2024, 4, 1), D(2024, 4, 2)],
            "data_exclus": [None, D(2024, 5, 1)],
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="fraude/fraude.parquet", Body=buffer.getvalue())
    monkeypatch.setenv("QP_FRAUD_URI", s3_bucket.uri("fraude/fraude.parquet"))

    result = materialize_source("fraud_suspects")

    assert result.success
    assert_frame_equal(
        snapshot(lake, "fraud_suspects"),
        standard(
            {
                "id_cliente": 4567890123,
                "canal": "Fraude",
                "email": "fraude@exemplo.com",
                "telefone": "966666666",
                "assunto": FRAUD_SUBJECT,
                "data_envio": D(2024, 4, 1),
            },
            {
                "id_cliente": 4567890124,
                "canal": "Fraude",
                "email": "f2@exemplo.com",
                "assunto": FRAUD_SUBJECT,
                "data_envio": D(2024, 4, 2),
                "data_exclus": D(2024, 5, 1),
            },
        ),
    )
    assert snapshot(lake, "fraud_suspects").schema == STANDARD_SCHEMA
    assert metadata(result)["location"] == s3_bucket.uri("fraude/fraude.parquet")


def test_fraud_missing_object_fails_and_keeps_the_last_snapshot(lake, s3_bucket, monkeypatch):
    previous = standard(
        {"id_cliente": 1, "canal": "Fraude", "assunto": FRAUD_SUBJECT, "data_envio": D(2024, 4, 1)}
    )
    source_path(lake, "fraud_suspects").parent.mkdir(parents=True)
    previous.write_parquet(source_path(lake, "fraud_suspects"))
    monkeypatch.setenv("QP_FRAUD_URI", s3_bucket.uri("fraude/hoje.parquet"))

    result = materialize_source("fraud_suspects")

    assert failure_message(result).startswith(
        f"fraud_suspects: {s3_bucket.uri('fraude/hoje.parquet')}: S3 answered NoSuchKey (HTTP 404)"
    )
    assert no_secret_in_events(result, S3_SECRET)
    assert_frame_equal(snapshot(lake, "fraud_suspects"), previous)


# --- File-level errors: the file fails, the last snapshot stays --------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file (0 bytes)"),
        (
            b"id_cliente;email;telefone;assunto;data_envio\n1;a@x;;A;2024-05-24\n",
            "missing column(s) subject (found: id_cliente, email, telefone, assunto, data_envio)",
        ),
        (
            MARKETING_HEADER.encode() + b"1a;a@x;;A;2024-05-24\n2;b@x;;A;ontem\n",
            "all 2 rows were rejected (1 x data_envio: not an ISO date (YYYY-MM-DD); "
            "1 x id_cliente: not a whole number)",
        ),
    ],
    ids=["empty", "missing-column", "every-row-rejected"],
)
def test_a_broken_file_fails_the_asset_and_keeps_the_last_snapshot(
    lake, tmp_path, monkeypatch, content, problem
):
    path = tmp_path / "marketing.csv"
    path.write_bytes(MARKETING_HEADER.encode() + b"7;g@exemplo.com;;Email;2024-05-24\n")
    monkeypatch.setenv("QP_MARKETING_URI", str(path))
    assert materialize_source("marketing_sends").success
    before = snapshot(lake, "marketing_sends")
    path.write_bytes(content)

    message = failure_message(materialize_source("marketing_sends"))

    assert message.startswith(f"marketing_sends: {path}: {problem}")
    assert message.endswith("; the last good snapshot is kept")
    assert_frame_equal(snapshot(lake, "marketing_sends"), before)


def test_a_header_only_file_empties_the_channel(lake, tmp_path, monkeypatch):
    path = tmp_path / "marketing.csv"
    path.write_bytes(MARKETING_HEADER.encode())
    monkeypatch.setenv("QP_MARKETING_URI", str(path))

    result = materialize_source("marketing_sends")

    assert result.success
    assert_frame_equal(snapshot(lake, "marketing_sends"), standard())
    assert metadata(result)["reject_reasons"] == "No rows rejected."
