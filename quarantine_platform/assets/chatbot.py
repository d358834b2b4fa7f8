"""Chatbot answers: `chatbot_answers` per hourly file, `chatbot_report` per day, and their schedules.

Files live at `$QP_CHATBOT_URI/date=YYYY-MM-DD/hour=HH.json` (a folder or `s3://bucket/prefix`). An hour
with no file is an empty partition, not an error: a quiet hour has no traffic. A range of hours or days
(a backfill) is one run. Answer values are personal data (CPFs, names): nothing here logs them or puts
them in metadata; rejected records are reported by file, position and reason only.
"""

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import ExitStack, closing
from functools import partial

import dagster as dg
import polars as pl

from quarantine_platform import settings
from quarantine_platform.partitions import DAY_FORMAT, utc_daily_partitions, utc_hourly_partitions
from quarantine_platform.resources.s3 import S3Resource
from quarantine_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource
from quarantine_platform.storage import chatbot_warehouse as store
from quarantine_platform.storage.input_files import InputUnavailable, join_location, local_copy
from quarantine_platform.transforms.chatbot import (
    ChatbotInputError,
    ChatbotReadResult,
    chatbot_report,
    empty_chatbot_result,
    read_ahead,
    read_chatbot_hour,
)

GROUP = "chatbot"
CHATBOT_ANSWERS = dg.AssetKey("chatbot_answers")
CHATBOT_REPORT = dg.AssetKey("chatbot_report")
REPORT_CELLS_UNIQUE = dg.AssetCheckSpec(
    "chatbot_report_cells_unique",
    asset=CHATBOT_REPORT,
    description="One row per (date, customer, flow, session, key) on the days the run wrote.",
)
REPORT_CELLS_VALID = dg.AssetCheckSpec(
    "chatbot_report_cells_valid",
    asset=CHATBOT_REPORT,
    description="Every stored value is a valid answer (not blank, trimmed) and every session's first answer "
    "time is not after its last, on the days the run wrote.",
)
REJECTED_SHOWN = 20
_DOWNLOAD = threading.Lock()


def hour_file(hour_start: dt.datetime) -> str:
    """The file of an hour, relative to the root: `date=YYYY-MM-DD/hour=HH.json` (the seeds' layout)."""
    return f"date={hour_start:%Y-%m-%d}/hour={hour_start:%H}.json"


def hours_of(window: dg.TimeWindow) -> list[dt.datetime]:
    start = window.start.astimezone(dt.UTC)
    count = int((window.end - window.start).total_seconds() // 3600)
    return [start + dt.timedelta(hours=i) for i in range(count)]


@dg.asset(
    key=CHATBOT_ANSWERS,
    group_name=GROUP,
    partitions_def=utc_hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"polars", "duckdb"},
    description="One row per answer typed, from that hour's file date=YYYY-MM-DD/hour=HH.json under "
    "QP_CHATBOT_URI (no file: no answers). Records breaking the schema are reported, not stored.",
)
def chatbot_answers(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, s3: S3Resource
) -> dg.MaterializeResult:
    root = settings.get("QP_CHATBOT_URI")
    hours = hours_of(context.partition_time_window)
    found: list[str] = []
    answers_total = 0
    rejected: list[pl.DataFrame] = []
    # Hour by hour, each hour replaced in its own transaction, while the next hours' files are read on the
    # other cores (read_ahead: a few files in memory at a time). The warehouse is opened only to write, so
    # readers (qp export, the panel) are not kept waiting while a file is read.
    with closing(read_ahead(partial(_read_hour, root, hour_start, s3) for hour_start in hours)) as reads:
        for hour_start in hours:
            relative = hour_file(hour_start)
            try:
                location, read, file_found = next(reads)
            except (ChatbotInputError, InputUnavailable) as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            if read.rejected.height:
                positions = ", ".join(str(p) for p in read.rejected["position"].head(10))
                context.log.warning(
                    f"{location}: {read.rejected.height} record(s) rejected (array positions {positions}"
                    f"{' ...' if read.rejected.height > 10 else ''}); the others are stored"
                )
                rejected.append(read.rejected)
            # The stored file name is relative to the root: "later in file order" does not depend on where
            # the files were read from.
            answers = read.answers.with_columns(pl.lit(relative, pl.String).alias("file"))
            with warehouse.connect() as con:
                store.replace_hour(
                    con,
                    hour_start,
                    answers,
                    location=location,
                    file_found=file_found,
                    records_rejected=read.rejected.height,
                    run_id=context.run_id,
                )
            if file_found:
                found.append(relative)
            answers_total += answers.height
    all_rejected = pl.concat(rejected) if rejected else pl.DataFrame(schema={"file": pl.String})
    return dg.MaterializeResult(
        metadata={
            "hours": f"{hours[0]:%Y-%m-%d %H}:00 .. {hours[-1]:%Y-%m-%d %H}:00 UTC ({len(hours)})",
            "files_found": len(found),
            "hours_without_file": len(hours) - len(found),
            "answers": answers_total,
            "records_rejected": all_rejected.height,
            "rejected_records": _rejected_table(all_rejected),
        }
    )


def _read_hour(root: str, hour_start: dt.datetime, s3: S3Resource) -> tuple[str, ChatbotReadResult, bool]:
    """One hour's file read: its location, its answers and rejections, and whether the file exists."""
    location = join_location(root, *hour_file(hour_start).split("/"))
    with ExitStack() as stack:
        # Downloads one at a time (boto3's default session is not safe to build clients from in several
        # threads); the parsing, the costly part, runs side by side.
        with _DOWNLOAD:
            path = stack.enter_context(local_copy(location, s3))
        read = read_chatbot_hour(path, name=location) if path else empty_chatbot_result()
    return location, read, path is not None


def _rejected_table(rejected: pl.DataFrame) -> dg.MetadataValue:
    rows = rejected.head(REJECTED_SHOWN).iter_rows() if rejected.height else []
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"file": f, "position": p, "reason": r}) for f, p, r in rows],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("file", "string"),
                dg.TableColumn("position", "int", description="index of the record in the file's array"),
                dg.TableColumn("reason", "string"),
            ]
        ),
    )


@dg.asset(
    key=CHATBOT_REPORT,
    group_name=GROUP,
    deps=[CHATBOT_ANSWERS],
    partitions_def=utc_daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"polars", "duckdb"},
    check_specs=[REPORT_CELLS_UNIQUE, REPORT_CELLS_VALID],
    description="Per (customer, flow, session) over the day's hours: first/last valid answer time (UTC) and "
    "the latest valid value of every key, stored flow-agnostically (one row per session and key, with "
    "the key's column position in its flow). `qp export chatbot --flow F` pivots one flow.",
)
def chatbot_report_asset(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    window = context.partition_time_window
    days = [
        (window.start + dt.timedelta(days=i)).date()
        for i in range((window.end.date() - window.start.date()).days)
    ]
    sessions: dict[str, int] = {}
    answers_read = 0
    with warehouse.connect() as con:
        for day in days:
            missing = sorted(set(range(24)) - store.hours_processed(con, day))
            if missing:
                first, last = (f"{day:%Y-%m-%d}-{h:02d}:00" for h in (missing[0], missing[-1]))
                raise dg.Failure(
                    description=f"chatbot_report for {day:%Y-%m-%d}: chatbot_answers has not been "
                    f"materialized for hour(s) {', '.join(f'{h:02d}' for h in missing)} of that day; "
                    "run: dagster asset materialize -m quarantine_platform.definitions "
                    f"--select chatbot_answers --partition-range {first}...{last}",
                    allow_retries=False,
                )
            answers = store.read_day_answers(con, day)
            report = chatbot_report(answers)
            store.replace_day(con, day, report, answers_read=answers.height, run_id=context.run_id)
            sessions[day.strftime(DAY_FORMAT)] = report.select("customer", "flow", "session").n_unique()
            answers_read += answers.height
        duplicates, invalid = store.duplicate_cells(con, days), store.invalid_cells(con, days)
    yield dg.MaterializeResult(
        metadata={
            "days": f"{days[0]} .. {days[-1]} ({len(days)})",
            "answers_read": answers_read,
            "sessions": sum(sessions.values()),
            "sessions_per_day": dg.MetadataValue.json(dict(list(sessions.items())[-31:])),
        }
    )
    yield dg.AssetCheckResult(
        check_name=REPORT_CELLS_UNIQUE.name, passed=duplicates == 0, metadata={"duplicate_cells": duplicates}
    )
    yield dg.AssetCheckResult(
        check_name=REPORT_CELLS_VALID.name, passed=invalid == 0, metadata={"invalid_cells": invalid}
    )


# --- schedules ----------------------------------------------------------------------------------------

chatbot_answers_job = dg.define_asset_job(
    "chatbot_answers_hourly",
    selection=[CHATBOT_ANSWERS],
    partitions_def=utc_hourly_partitions,
    description="chatbot_answers for one hour.",
)
chatbot_report_job = dg.define_asset_job(
    "chatbot_report_daily",
    selection=[CHATBOT_REPORT],
    partitions_def=utc_daily_partitions,
    description="chatbot_report for one day (UTC).",
)
# A partitioned job's schedule asks for the last closed partition: at 14:05 the hour 13:00-14:00, at
# 00:30 the day before.
chatbot_answers_schedule = dg.build_schedule_from_partitioned_job(
    chatbot_answers_job,
    minute_of_hour=5,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour at minute 5: chatbot_answers of the hour that just closed.",
)
chatbot_report_schedule = dg.build_schedule_from_partitioned_job(
    chatbot_report_job,
    hour_of_day=0,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 00:30 UTC: chatbot_report of the day before (its 24 hours were read by then).",
)

chatbot_schedules = [chatbot_answers_schedule, chatbot_report_schedule]
