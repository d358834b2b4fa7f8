"""The panel's view of the published snapshots: the current one, loaded once and kept in memory until the
`current` pointer moves. Never raises: if a new snapshot cannot be read, the last good one keeps serving."""

from __future__ import annotations

import logging
import threading

from quarantine_platform.storage.panel_snapshot import Snapshot, SnapshotStore

log = logging.getLogger("quarantine_platform.panel")


class SnapshotCache:
    def __init__(self, store: SnapshotStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def get(self) -> Snapshot | None:
        """The current snapshot (None before the first publication)."""
        try:
            name = self.store.current_name()
        except (OSError, ValueError) as exc:
            log.warning("panel snapshot pointer unreadable, serving the last one loaded: %s", exc)
            return self._snapshot
        if name is None or (self._snapshot is not None and self._snapshot.name == name):
            return self._snapshot
        with self._lock:
            if self._snapshot is None or self._snapshot.name != name:
                try:
                    loaded = self.store.load_current()
                except Exception as exc:  # noqa: BLE001 - a bad snapshot must not take the panel down
                    log.warning("panel snapshot %s unreadable, serving the last one loaded: %s", name, exc)
                else:
                    if loaded is not None:
                        self._snapshot = loaded
            return self._snapshot
