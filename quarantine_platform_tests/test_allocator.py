"""The allocator setting the package makes for Polars when it loads (quarantine_platform/__init__.py)."""

import os
import subprocess
import sys


def test_the_platform_keeps_freed_memory_for_polars_unless_told_otherwise() -> None:
    # Set when the package loads, before Polars reads it (Polars appends it to its own setting: the later
    # value wins); an allocator setting given by the environment is left as it is.
    show = "import quarantine_platform, os, polars; print(os.environ['_RJEM_MALLOC_CONF'])"
    environ = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}

    default = subprocess.run([sys.executable, "-c", show], env=environ, capture_output=True, text=True)
    given = subprocess.run(
        [sys.executable, "-c", show],
        env={**environ, "_RJEM_MALLOC_CONF": "narenas:2"},
        capture_output=True,
        text=True,
    )

    assert default.stdout.strip().endswith(",dirty_decay_ms:10000"), default.stderr
    assert given.stdout.strip().endswith(",narenas:2") and "10000" not in given.stdout, given.stderr
