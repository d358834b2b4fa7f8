"""The start of an ingestion worker process (the initializer of `ingest`'s process pool).

This module imports no Polars: a spawned worker runs its initializer before it unpickles its first task (which
imports the ingestion code, and with it Polars), so settings made here apply to that Polars. (A parent whose
main module imports Polars at its top has it imported again in each spawned worker first; the setting then
has no effect, which costs CPU but changes no result.)
"""

from __future__ import annotations

import os
import threading
import time

# Polars' threads in a worker, unless POLARS_MAX_THREADS is set. The workers already fill the cores (one per
# core), so a pool of Polars threads per worker only adds hand-offs and spinning between them: measured over
# 2 workers on 2 cores, ~0.5 µs less CPU per message (5.0 instead of 5.6) for the same wall time.
WORKER_POLARS_THREADS = "1"


def start_worker(parent: int) -> None:
    """In each worker, before any task: one Polars thread, and an end when the owner of the pool is gone."""
    os.environ.setdefault("POLARS_MAX_THREADS", WORKER_POLARS_THREADS)
    exit_with_parent(parent)


def exit_with_parent(parent: int) -> None:
    """End this process when the process that owns the pool is gone. A killed run (SIGKILL) cannot stop its
    workers, and an idle worker would otherwise wait for work forever, holding its memory."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # mid-commit is safe: a commit is a rename, and the next run reads what is missing

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
