"""Peak resident memory of a process, for the reports of ingestion workers and the benchmarks."""

from __future__ import annotations

import resource


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
