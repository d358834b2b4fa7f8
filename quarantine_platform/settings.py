"""The platform's environment contract (design.md, "Configuration"): every `QP_*` variable and its default.

Resources read these through Dagster `EnvVar`; `apply_defaults()` fills in the embedded defaults first so the
demo needs nothing set, in every process Dagster starts (each one imports `definitions`).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Configuration shipped with the project (not an input): found wherever QP_DATA_DIR points.
SHIPPED_QUARANTINE_RULES = PROJECT_ROOT / "data" / "quarantine_rules.yaml"


def defaults() -> dict[str, str]:
    """Every variable's embedded default (paths follow QP_DATA_DIR as currently set)."""
    return _defaults()


def _defaults() -> dict[str, str]:
    data_dir = os.environ.get("QP_DATA_DIR", "data")
    quarantine = f"{data_dir}/quarantine"
    return {
        "QP_DATA_DIR": data_dir,
        "QP_LAKE_DIR": f"{data_dir}/lake",
        "QP_WAREHOUSE": f"{data_dir}/warehouse.duckdb",
        "QP_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
        "QP_KAFKA_TOPIC": "notifications",
        "QP_KAFKA_GROUP": "quarantine_platform",
        "QP_KAFKA_CLIENT_SETTINGS": "{}",
        "QP_TIMEZONE": "UTC",
        "QP_MINUTE_RETENTION_DAYS": "60",
        "QP_ALLOWED_LATENESS_SECONDS": "60",
        "QP_INGEST_CHUNK_MESSAGES": "400000",
        "QP_INGEST_WORKERS": "auto",
        "QP_CRM_URI": f"{quarantine}/crm.xlsx",
        "QP_MARKETING_URI": f"{quarantine}/marketing.csv",
        "QP_RECOMMENDATIONS_URI": f"{quarantine}/recomendacao/",
        "QP_OFFERS_URI": f"{quarantine}/ofertas/",
        "QP_RESTRICTED_URI": f"{quarantine}/restritos.json",
        "QP_FRAUD_URI": f"{quarantine}/fraude.parquet",
        "QP_INVOICES_URI": f"{data_dir}/invoices/invoices.csv",
        "QP_CHATBOT_URI": f"{data_dir}/chatbot",
        "QP_QUARANTINE_RULES": str(SHIPPED_QUARANTINE_RULES),
        "QP_HISTORY_START": "2019-01-01",
        # Credentials: no default, never logged (design.md, "Configuration").
        "QP_CRM_BEARER_TOKEN": "",
        "QP_SFTP_PASSWORD": "",
        "QP_SFTP_KEY_FILE": "",
        "QP_SFTP_KNOWN_HOSTS": str(Path.home() / ".ssh" / "known_hosts"),
        "QP_S3_ENDPOINT_URL": "",
        "QP_S3_ACCESS_KEY_ID": "",
        "QP_S3_SECRET_ACCESS_KEY": "",
        "QP_S3_REGION": "us-east-1",
        "QP_PANEL_HOST": "127.0.0.1",
        "QP_PANEL_PORT": "8080",
        "QP_PANEL_TOKENS": f"{data_dir}/panel_tokens.sqlite",
        "QP_PANEL_REFRESH_SECONDS": "60",
        "QP_PANEL_SECURE_COOKIES": "false",
    }


DEFAULTS_DOC = {
    "QP_DATA_DIR": "inputs (invoices/, chatbot/, quarantine/, pricing.csv); outputs land beside them",
    "QP_LAKE_DIR": "bronze and silver files (Parquet)",
    "QP_WAREHOUSE": "DuckDB warehouse of gold tables",
    "QP_KAFKA_BOOTSTRAP": "Kafka bootstrap servers",
    "QP_KAFKA_TOPIC": "the notifications topic",
    "QP_KAFKA_GROUP": "consumer group whose committed offsets mirror what bronze holds",
    "QP_KAFKA_CLIENT_SETTINGS": "JSON object of extra librdkafka settings (security.protocol, sasl.*)",
    "QP_TIMEZONE": "time zone of billing days, load dates and the deduplication day",
    "QP_MINUTE_RETENTION_DAYS": "days of minute partitions kept",
    "QP_INGEST_CHUNK_MESSAGES": "messages per bronze commit (bounds an ingestion run's memory)",
    "QP_INGEST_WORKERS": "processes reading a large backlog in parallel (`auto`: one per core, at most 8)",
    "QP_ALLOWED_LATENESS_SECONDS": "seconds a closed minute waits for late events before it is counted",
    "QP_CRM_URI": "CRM workbook: a path or https:// URL (bearer token QP_CRM_BEARER_TOKEN)",
    "QP_MARKETING_URI": "marketing CSV: a path or sftp://user@host:port/path",
    "QP_RECOMMENDATIONS_URI": "recommendations Delta table: a path or s3://",
    "QP_OFFERS_URI": "offers Delta table: a path or s3://",
    "QP_RESTRICTED_URI": "restricted-customers JSON: a path or s3://",
    "QP_FRAUD_URI": "fraud-suspects Parquet: a path or s3://",
    "QP_INVOICES_URI": "invoices CSV (customer,account,month,invoice): a path or s3://bucket/key",
    "QP_CHATBOT_URI": "chatbot files root (date=YYYY-MM-DD/hour=HH.json): a path or s3://bucket/prefix",
    "QP_QUARANTINE_RULES": "the quarantine rules: days per channel and the source of each channel",
    "QP_HISTORY_START": "first day/month of the daily and monthly partitions",
    "QP_CRM_BEARER_TOKEN": "bearer token for an https:// CRM workbook (Microsoft Graph)",
    "QP_SFTP_PASSWORD": "SFTP password (or use QP_SFTP_KEY_FILE)",
    "QP_SFTP_KEY_FILE": "SFTP private key file",
    "QP_SFTP_KNOWN_HOSTS": "known_hosts file the SFTP host key is checked against (never auto-accepted)",
    "QP_S3_ENDPOINT_URL": "S3 endpoint (empty: AWS); for MinIO, moto, ...",
    "QP_S3_ACCESS_KEY_ID": "S3 access key id (empty: the AWS default chain)",
    "QP_S3_SECRET_ACCESS_KEY": "S3 secret access key",
    "QP_S3_REGION": "S3 region",
    "QP_PANEL_HOST": "address `qp panel` listens on",
    "QP_PANEL_PORT": "port `qp panel` listens on",
    "QP_PANEL_TOKENS": "SQLite store of the panel's access tokens (hashes only) and sessions",
    "QP_PANEL_REFRESH_SECONDS": "seconds between the panel pages' automatic refreshes",
    "QP_PANEL_SECURE_COOKIES": "`true` marks the sign-in cookie Secure (a panel served over HTTPS)",
}


def apply_defaults() -> None:
    """Set every unset `QP_*` variable (and DAGSTER_HOME) to its embedded default."""
    for name, value in _defaults().items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))


def get(name: str) -> str:
    """The variable's value, or its embedded default."""
    return os.environ.get(name) or _defaults()[name]
