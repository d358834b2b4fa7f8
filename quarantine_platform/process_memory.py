"""Peak resident memory of a process, for the reports of ingestion workers and the benchmarks, and a way to
run a function in a process of its own, so that its peak is its own."""

from __future__ import annotations

import multiprocessing as mp
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def peak_rss_mib(pid: int | str = "self") -> float:
    """The process's peak RSS (VmHWM) in MiB; for this process off Linux, getrusage's maximum; for another
    process that cannot be read, 0."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if pid == "self" else 0.0


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` run in a newly spawned process (nothing inherited, so its VmHWM is its own); its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
