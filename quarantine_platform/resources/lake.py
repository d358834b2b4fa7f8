"""The lake: bronze and silver files under QP_LAKE_DIR."""

from __future__ import annotations

import dagster as dg

from quarantine_platform.storage.notification_lake import NotificationLake


class LakeResource(dg.ConfigurableResource):
    root: str

    def notifications(self) -> NotificationLake:
        return NotificationLake(self.root)
