"""Quarantine platform."""

import os

# Polars' allocator (jemalloc) gives freed pages back to the OS after 0.5 s (polars/__init__.py sets
# dirty_decay_ms:500), so each next large column faults fresh pages in again; on this VM a fresh page costs
# ~3.5 µs of kernel time (~1 s per GiB). Kept 10 s (jemalloc's own default), freed pages are reused by the
# next steps: at 10M chatbot answers kernel time fell 5.7 -> 4.1 CPU-s, peak RSS rose ~0.5 GiB
# (benchmarks/README.md).
# Read when Polars loads, so it must be set before (Polars appends it to its own setting, which it then
# overrides); an explicit _RJEM_MALLOC_CONF is left as it is.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:10000")
