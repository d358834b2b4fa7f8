"""Which minutes the minutes sensor asks to count."""

from __future__ import annotations

from quarantine_platform.transforms.minute_scheduling import MinuteState, plan_minutes

M = 60
T = 1_800_000_000 // 3600 * 3600  # an hour boundary
NOW = T + 10 * 24 * 3600


def test_minutes_close_when_event_time_passes_their_end_plus_lateness():
    plan = plan_minutes(MinuteState(), 3, {T, T + M}, T + 3 * M + 5, NOW, lateness=60, earliest=0)
    # watermark 3m05s - 60s lateness = 2m05s: minutes 0 and 1 are closed, minute 2 is not.
    assert plan.ranges == [(T, T + M)]
    assert plan.state.to_json() == {
        "seq": 3,
        "watermark": T + 3 * M + 5,
        "next_minute": T + 2 * M,
        "last_commit_at": NOW,
    }


def test_a_late_event_in_an_already_requested_minute_asks_for_a_recount():
    state = MinuteState(seq=3, watermark=T + 10 * M, next_minute=T + 9 * M)
    plan = plan_minutes(state, 4, {T + 2 * M}, T + 2 * M + 30, NOW, lateness=60, earliest=0)
    assert plan.ranges == [(T + 2 * M, T + 2 * M)]
    assert plan.state.next_minute == T + 9 * M and plan.state.watermark == T + 10 * M


def test_a_replayed_tick_with_nothing_new_asks_for_nothing_while_the_stream_is_busy():
    state = MinuteState(seq=4, watermark=T + 10 * M, next_minute=T + 9 * M, last_commit_at=T + 10 * M)
    assert plan_minutes(state, 4, set(), None, T + 10 * M + 30, lateness=60, earliest=0).ranges == []


def test_when_nothing_was_committed_for_the_lateness_the_wall_clock_closes_the_last_minutes():
    state = MinuteState(seq=4, watermark=T + 10 * M, next_minute=T + 9 * M, last_commit_at=T + 10 * M)
    plan = plan_minutes(state, 4, set(), None, T + 13 * M, lateness=60, earliest=0)
    assert plan.ranges == [(T + 9 * M, T + 11 * M)]


def test_ranges_are_at_most_a_day_and_skip_minutes_before_retention():
    plan = plan_minutes(MinuteState(), 1, {T}, T + 2 * 86400 + 120, NOW, lateness=1, earliest=T + M)
    firsts = [a for a, _ in plan.ranges]
    assert firsts[0] == T + M
    assert all((b - a) // M < 1440 for a, b in plan.ranges)
    assert plan.ranges[-1][1] == T + 2 * 86400  # the next minute ends at the watermark, within lateness
