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
# Polars' allocator (jemalloc) in a worker: freed pages are kept ~30 s before they go back to the OS, instead
# of Polars' 0.5 s / 1 s (or the package's 10 s, see quarantine_platform/__init__.py). A worker frees its
# chunk's frames at every commit and allocates as much again for the next; with the short decay those pages
# went back to the OS in between and were faulted in anew, and first-touch memory is slow on VMs (~0.7-2.5
# GiB/s here). Measured over 1M messages in 2 workers (with the idle release in ingest._ingest_share): 0.31
# -> 0.14 page faults and ~0.4 µs less kernel CPU a message, for ~45 MiB more peak RSS a worker (~310 ->
# ~355 MiB); an idle worker gives the pages back after ~30 s.
WORKER_ALLOCATOR = "dirty_decay_ms:30000,muzzy_decay_ms:30000"


def start_worker(parent: int) -> None:
    """In each worker, before any task: one Polars thread, its allocator's decay, and an end when the owner
    of the pool is gone."""
    os.environ.setdefault("POLARS_MAX_THREADS", WORKER_POLARS_THREADS)
    # Polars reads this variable when it loads, after its own defaults (later options win). The value comes
    # from the owner, where Polars already wrote its defaults into it: ours goes last, other options stay.
    inherited = os.environ.get("_RJEM_MALLOC_CONF")
    os.environ["_RJEM_MALLOC_CONF"] = f"{inherited},{WORKER_ALLOCATOR}" if inherited else WORKER_ALLOCATOR
    exit_with_parent(parent)


def exit_with_parent(parent: int) -> None:
    """End this process when the process that owns the pool is gone. A killed run (SIGKILL) cannot stop its
    workers, and an idle worker would otherwise wait for work forever, holding its memory."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # mid-commit is safe: a commit is a rename, and the next run reads what is missing

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
