"""Python sources behind streaming LazyFrames (`register_io_source`): frames made one at a time, the next made
on a thread while the sink writes this one, so at most two are held."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import polars as pl


def prefetched(loads: Sequence[Callable[[], pl.DataFrame]], name: str) -> Iterator[pl.DataFrame]:
    """Each load's frame, in order; the next load runs on a thread of its own (Polars releases the GIL) while
    the caller handles this one. Stopping early cancels what was not started and does not wait for a load
    under way (a preview of a few rows returns at once)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        pending: Future[pl.DataFrame] | None = pool.submit(loads[0]) if loads else None
        for index in range(len(loads)):
            assert pending is not None
            frame = pending.result()
            pending = pool.submit(loads[index + 1]) if index + 1 < len(loads) else None
            yield frame
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def source_frames(
    frames: Iterator[pl.DataFrame],
    with_columns: list[str] | None,
    predicate: pl.Expr | None,
    n_rows: int | None,
    batch_size: int,
) -> Iterator[pl.DataFrame]:
    """What `register_io_source` asks of a source: `frames` filtered by `predicate`, projected on
    `with_columns`, stopped after `n_rows`, in batches of at most `batch_size` rows."""
    left = n_rows
    for frame in frames:
        if predicate is not None:
            frame = frame.filter(predicate)
        if with_columns is not None:
            frame = frame.select(with_columns)
        if left is not None:
            frame = frame.head(left)
            left -= frame.height
        for offset in range(0, frame.height, batch_size):
            yield frame.slice(offset, batch_size)
        if left == 0:
            return
