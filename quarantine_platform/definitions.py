"""The one Definitions object of quarantine_platform."""

import dagster as dg

from quarantine_platform import settings

settings.apply_defaults()

from quarantine_platform.assets.billing import billing_checks, billing_daily  # noqa: E402
from quarantine_platform.assets.chatbot import chatbot_answers, chatbot_report_asset  # noqa: E402
from quarantine_platform.assets.invoices import invoice_averages_asset  # noqa: E402
from quarantine_platform.assets.notifications import (  # noqa: E402
    notification_counts_minutely,
    notification_stream,
)
from quarantine_platform.assets.panel import notification_panel  # noqa: E402
from quarantine_platform.assets.quarantine import quarantine_global  # noqa: E402
from quarantine_platform.assets.quarantine_sources import quarantine_source_assets  # noqa: E402
from quarantine_platform.assets.report_days import (  # noqa: E402
    notification_report_days,
    report_days_checks,
    report_days_sensors,
)
from quarantine_platform.resources.https import HttpsResource  # noqa: E402
from quarantine_platform.resources.kafka import KafkaResource  # noqa: E402
from quarantine_platform.resources.lake import LakeResource  # noqa: E402
from quarantine_platform.resources.s3 import S3Resource  # noqa: E402
from quarantine_platform.resources.sftp import SftpResource  # noqa: E402
from quarantine_platform.resources.warehouse import WarehouseResource  # noqa: E402
from quarantine_platform.schedules import schedules  # noqa: E402
from quarantine_platform.sensors import notification_sensors  # noqa: E402


def resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "kafka": KafkaResource(
            bootstrap_servers=dg.EnvVar("QP_KAFKA_BOOTSTRAP"),
            topic=dg.EnvVar("QP_KAFKA_TOPIC"),
            group_id=dg.EnvVar("QP_KAFKA_GROUP"),
            client_settings_json=dg.EnvVar("QP_KAFKA_CLIENT_SETTINGS"),
        ),
        "lake": LakeResource(root=dg.EnvVar("QP_LAKE_DIR")),
        "warehouse": WarehouseResource(path=dg.EnvVar("QP_WAREHOUSE")),
        "s3": S3Resource(
            endpoint_url=dg.EnvVar("QP_S3_ENDPOINT_URL"),
            access_key_id=dg.EnvVar("QP_S3_ACCESS_KEY_ID"),
            secret_access_key=dg.EnvVar("QP_S3_SECRET_ACCESS_KEY"),
            region=dg.EnvVar("QP_S3_REGION"),
        ),
        "https": HttpsResource(bearer_token=dg.EnvVar("QP_CRM_BEARER_TOKEN")),
        "sftp": SftpResource(
            password=dg.EnvVar("QP_SFTP_PASSWORD"),
            key_file=dg.EnvVar("QP_SFTP_KEY_FILE"),
            known_hosts=dg.EnvVar("QP_SFTP_KNOWN_HOSTS"),
        ),
    }


# One entry per domain; each domain module keeps its own assets and checks.
assets = [
    notification_stream,
    notification_counts_minutely,
    notification_panel,
    quarantine_global,
    *quarantine_source_assets,
    invoice_averages_asset,
    chatbot_answers,
    chatbot_report_asset,
    billing_daily,
    notification_report_days,
]
asset_checks = [*billing_checks, *report_days_checks]
sensors = [*notification_sensors, *report_days_sensors]

defs = dg.Definitions(
    assets=assets,
    asset_checks=asset_checks,
    sensors=sensors,
    schedules=schedules,
    resources=resources(),
)
