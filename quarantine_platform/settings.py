"""The platform's environment contract (design.md, "Configuration"): every `QP_*` variable and its default.

Resources read these through Dagster `EnvVar`; `apply_defaults()` fills in the embedded defaults first so the
demo needs nothing set, in every process Dagster starts (each one imports `definitions`).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
        "QP_CRM_URI": f"{quarantine}/crm.xlsx",
        "QP_MARKETING_URI": f"{quarantine}/marketing.csv",
        "QP_RECOMMENDATIONS_URI": f"{quarantine}/recomendacao/",
        "QP_OFFERS_URI": f"{quarantine}/ofertas/",
        "QP_RESTRICTED_URI": f"{quarantine}/restritos.json",
        "QP_FRAUD_URI": f"{quarantine}/fraude.parquet",
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
    "QP_ALLOWED_LATENESS_SECONDS": "seconds a closed minute waits for late events before it is counted",
}


def apply_defaults() -> None:
    """Set every unset `QP_*` variable (and DAGSTER_HOME) to its embedded default."""
    for name, value in _defaults().items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))


def get(name: str) -> str:
    """The variable's value, or its embedded default."""
    return os.environ.get(name) or _defaults()[name]
