"""The schedules ask for the right partitions: the hour that just closed, yesterday, the month that begins."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from quarantine_platform.definitions import defs


def run_requests(name: str, at: dt.datetime) -> list[dg.RunRequest]:
    schedule = defs.resolve_schedule_def(name)
    context = dg.build_schedule_context(scheduled_execution_time=at, repository_def=defs.get_repository_def())
    result = schedule.evaluate_tick(context)
    return list(result.run_requests or [])


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("at", "partition"),
    [
        (utc(2019, 12, 16, 14, 5), "2019-12-16-13:00"),
        (utc(2019, 12, 17, 0, 5), "2019-12-16-23:00"),
        (utc(2020, 1, 1, 0, 5), "2019-12-31-23:00"),
    ],
)
def test_each_hour_at_minute_5_reads_the_hour_that_just_closed(at: dt.datetime, partition: str) -> None:
    schedule = defs.resolve_schedule_def("chatbot_answers_hourly_schedule")

    [request] = run_requests("chatbot_answers_hourly_schedule", at)

    assert schedule.cron_schedule == "5 * * * *"
    assert request.partition_key == partition
    assert schedule.job.name == "chatbot_answers_hourly"


@pytest.mark.parametrize(
    ("at", "partition"),
    [(utc(2019, 12, 17, 0, 30), "2019-12-16"), (utc(2020, 3, 1, 0, 30), "2020-02-29")],
)
def test_each_day_at_00_30_utc_reports_the_day_before(at: dt.datetime, partition: str) -> None:
    schedule = defs.resolve_schedule_def("chatbot_report_daily_schedule")

    [request] = run_requests("chatbot_report_daily_schedule", at)

    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 0 * * *", "UTC")
    assert request.partition_key == partition


def test_on_the_first_of_each_month_the_month_that_begins_is_the_reference_month() -> None:
    schedule = defs.resolve_schedule_def("invoice_averages_schedule")

    [request] = run_requests("invoice_averages_schedule", utc(2020, 1, 1, 2, 0))

    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 1 * *", "UTC")
    assert (request.partition_key, request.run_key) == ("2020-01", "invoice_averages:2020-01")
    assert schedule.job.name == "invoice_averages_monthly"


def test_the_schedules_are_on_by_default() -> None:
    names = ("chatbot_answers_hourly_schedule", "chatbot_report_daily_schedule", "invoice_averages_schedule")
    for name in names:
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.RUNNING
