"""Schedules (design.md): when each batch domain runs. One section per domain."""

import dagster as dg

schedules: list[dg.ScheduleDefinition] = []

# --- quarantine: the sources, then quarantine_global for the day, at 06:00 in QP_TIMEZONE ---
from quarantine_platform.assets.quarantine import quarantine_schedules  # noqa: E402

schedules += quarantine_schedules

# --- invoices: invoice_averages on the first day of each month; chatbot: each hour, then each day ---
from quarantine_platform.assets.chatbot import chatbot_schedules  # noqa: E402
from quarantine_platform.assets.invoices import invoice_schedules  # noqa: E402

schedules += invoice_schedules + chatbot_schedules

# --- billing: yesterday's billing_daily at 00:10 + allowed lateness; hourly re-check against the minutes ---
from quarantine_platform.assets.billing import billing_schedules  # noqa: E402

schedules += billing_schedules

# --- report days: yesterday laid out for the detailed export, when billing runs ---
from quarantine_platform.assets.report_days import report_days_schedules  # noqa: E402

schedules += report_days_schedules
