"""The panel's published snapshots: what `notification_panel` writes and `qp panel` reads.

Layout under `{QP_LAKE_DIR}/panel/`:
  snapshots/<seq>/{customers,minutes,billing}.parquet + meta.json    one complete snapshot per directory
  current                                                            the name of the snapshot to serve

A snapshot is written into a temporary directory, fsynced, renamed into place, and only then does `current`
switch to it (temporary file + rename). A reader follows `current` and so only ever sees a whole snapshot,
never one being written; the panel never opens the warehouse, so a run holding the DuckDB lock cannot
affect it. Publishers serialize on a lock file; a publisher whose data is older than the current snapshot's
does not switch `current` back. Old snapshots are pruned, keeping a few for readers still loading them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from quarantine_platform.storage.durable import fsync_path
from quarantine_platform.storage.file_lock import exclusive_lock

TABLES = ("customers", "minutes", "billing")
KEEP = 3
_NAME = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class Snapshot:
    name: str
    meta: dict
    tables: dict[str, pl.DataFrame]

    def table(self, name: str) -> pl.DataFrame:
        return self.tables[name]


def panel_root(lake_root: str) -> Path:
    """Where the panel's snapshots live for a lake root."""
    if "://" in lake_root:
        raise ValueError(
            f"QP_LAKE_DIR={lake_root!r}: the panel's snapshots need a local or mounted path for their atomic "
            "switch; object-store lakes are not supported for the panel"
        )
    return Path(lake_root) / "panel"


class SnapshotStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.snapshots = self.root / "snapshots"
        self.pointer = self.root / "current"

    # --- reading -----------------------------------------------------------------------------------------

    def current_name(self) -> str | None:
        try:
            name = self.pointer.read_text().strip()
        except FileNotFoundError:
            return None
        if not _NAME.match(name):
            raise ValueError(f"{self.pointer}: not a snapshot name: {name[:40]!r}")
        return name

    def load(self, name: str) -> Snapshot:
        folder = self.snapshots / name
        meta = json.loads((folder / "meta.json").read_text())
        tables = {t: pl.read_parquet(folder / f"{t}.parquet") for t in TABLES}
        return Snapshot(name=name, meta=meta, tables=tables)

    def load_current(self, attempts: int = 3) -> Snapshot | None:
        """The current snapshot, or None before the first publication. A snapshot pruned between reading the
        pointer and its files (a reader slower than three publications) is retried from the new pointer."""
        for attempt in range(attempts):
            name = self.current_name()
            if name is None:
                return None
            try:
                return self.load(name)
            except FileNotFoundError:
                if attempt == attempts - 1:
                    raise
        return None

    def names(self) -> list[str]:
        if not self.snapshots.is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.snapshots) if _NAME.match(e.name))

    # --- publishing --------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.snapshots.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.root / ".lock"):
            yield

    def publish(self, tables: dict[str, pl.DataFrame], meta: dict, keep: int = KEEP) -> str | None:
        """Write a snapshot and make it current; returns its name. `meta["read_at"]` (ISO, UTC) says when
        its data was read: a snapshot read before the current one is not made current (returns None)."""
        missing = set(TABLES) - set(tables)
        if missing:
            raise ValueError(f"snapshot tables missing: {sorted(missing)}")
        with self._locked():
            self._remove_orphans()
            current = self.current_name()
            if current is not None and (self.snapshots / current).is_dir():
                current_meta = json.loads((self.snapshots / current / "meta.json").read_text())
                if _instant(current_meta["read_at"]) > _instant(meta["read_at"]):
                    return None
            name = f"{max((int(n) for n in self.names()), default=0) + 1:012d}"
            tmp = self.snapshots / f".{name}.{uuid.uuid4().hex}.tmp"
            tmp.mkdir()
            for table in TABLES:
                tables[table].write_parquet(tmp / f"{table}.parquet")
            (tmp / "meta.json").write_text(json.dumps({**meta, "name": name}, sort_keys=True))
            for entry in os.scandir(tmp):
                fsync_path(entry.path)
            fsync_path(tmp)
            os.rename(tmp, self.snapshots / name)
            fsync_path(self.snapshots)
            pointer_tmp = self.root / f".current.{uuid.uuid4().hex}.tmp"
            pointer_tmp.write_text(name + "\n")
            fsync_path(pointer_tmp)
            os.replace(pointer_tmp, self.pointer)
            fsync_path(self.root)
            self._prune(keep, name)
        return name

    def _remove_orphans(self) -> None:
        """Temporary files of publishers that died; every publisher holds the lock, so any is an orphan."""
        for folder in (self.root, self.snapshots):
            for entry in os.scandir(folder):
                if not entry.name.endswith(".tmp"):
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)

    def _prune(self, keep: int, current: str) -> None:
        for name in self.names()[:-keep]:
            if name != current:
                shutil.rmtree(self.snapshots / name, ignore_errors=True)


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
