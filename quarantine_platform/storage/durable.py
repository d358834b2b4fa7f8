"""Making a written file survive a power cut before anything names it."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a directory's entries') data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_durably(written: Path, target: Path) -> None:
    """Move a fully written file to `target` atomically, its data and the rename both on disk."""
    fsync_path(written)
    os.replace(written, target)
    fsync_path(target.parent)
