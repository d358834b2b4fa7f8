"""Schedules (design.md): when each batch domain runs. One section per domain."""

import dagster as dg

schedules: list[dg.ScheduleDefinition] = []
