"""Which minute ranges to count, from what the stream has committed. Pure logic, used by the minutes sensor.

A minute is closed when the event-time watermark (the latest event time seen, capped at the wall clock) has
passed its end plus the allowed lateness. When nothing has been committed for the allowed lateness (the
stream is idle), the wall clock closes minutes too, so the last minutes before a pause still get counted.
Closed minutes are counted once, in order; a minute that receives events after it was requested is requested
again (a late event).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MINUTE = 60
DAY_MINUTES = 1440


@dataclass
class MinuteState:
    seq: int = 0  # last bronze commit seen
    watermark: int | None = None  # epoch seconds
    next_minute: int | None = None  # epoch seconds of the first minute not requested yet
    last_commit_at: int | None = None  # wall clock (epoch seconds) when new commits were last seen

    def to_json(self) -> dict:
        return {
            "seq": self.seq,
            "watermark": self.watermark,
            "next_minute": self.next_minute,
            "last_commit_at": self.last_commit_at,
        }

    @classmethod
    def from_json(cls, data: dict | None) -> MinuteState:
        return cls(**data) if data else cls()


@dataclass
class MinutePlan:
    state: MinuteState
    ranges: list[tuple[int, int]] = field(default_factory=list)  # inclusive first and last minute


def plan_minutes(
    state: MinuteState,
    new_seq: int,
    touched: set[int],
    max_event_time: int | None,
    now: int,
    lateness: int,
    earliest: int,
) -> MinutePlan:
    """Advance the state with what commits up to `new_seq` touched; return the minute ranges to (re)count."""
    last_commit_at = now if new_seq > state.seq else state.last_commit_at
    idle = last_commit_at is not None and now - last_commit_at >= lateness
    watermark = state.watermark
    if max_event_time is not None:
        watermark = max(watermark or max_event_time, max_event_time)
    if watermark is not None:
        watermark = min(watermark, now)
    next_minute = state.next_minute
    if next_minute is None and touched:
        next_minute = min(touched)
    wanted: set[int] = set()
    if next_minute is not None and watermark is not None:
        close_time = now if idle else watermark
        last_closed = (close_time - lateness) // MINUTE * MINUTE - MINUTE
        if last_closed >= next_minute:
            wanted.update(range(next_minute, last_closed + MINUTE, MINUTE))
            next_minute = last_closed + MINUTE
    # Late events: minutes already requested that got new events.
    if next_minute is not None:
        wanted.update(m for m in touched if m < next_minute)
    wanted = {m for m in wanted if m >= earliest}
    return MinutePlan(
        state=MinuteState(
            seq=new_seq, watermark=watermark, next_minute=next_minute, last_commit_at=last_commit_at
        ),
        ranges=_ranges(sorted(wanted)),
    )


def _ranges(minutes: list[int], max_gap: int = 30) -> list[tuple[int, int]]:
    """Group minutes into runs: neighbours closer than `max_gap` minutes share a run (recounting the minutes
    between is harmless), and no run spans more than a day."""
    out: list[tuple[int, int]] = []
    for m in minutes:
        if out and m - out[-1][1] <= max_gap * MINUTE and (m - out[-1][0]) // MINUTE < DAY_MINUTES:
            out[-1] = (out[-1][0], m)
        else:
            out.append((m, m))
    return out
