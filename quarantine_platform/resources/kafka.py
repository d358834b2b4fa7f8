"""Kafka connection settings for the notifications topic."""

from __future__ import annotations

import json

import dagster as dg


class KafkaResource(dg.ConfigurableResource):
    """Bootstrap servers, topic and consumer group; `client_settings_json` carries any other librdkafka
    setting (security.protocol, sasl.*) for a real cluster, read from the environment, never logged."""

    bootstrap_servers: str
    topic: str
    group_id: str = "quarantine_platform"
    client_settings_json: str = ""

    def client_settings(self) -> dict[str, str]:
        if not self.client_settings_json:
            return {}
        try:
            settings = json.loads(self.client_settings_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"QP_KAFKA_CLIENT_SETTINGS is not a JSON object: {exc}") from None
        if not isinstance(settings, dict):
            raise ValueError("QP_KAFKA_CLIENT_SETTINGS is not a JSON object")
        return {str(k): str(v) for k, v in settings.items()}
