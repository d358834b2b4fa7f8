"""chatbot_answers and chatbot_report through Dagster (materialize in process) and `qp export chatbot` in
process: the design's tables, single-run ranges, a missing hour, S3, schema breaks reported without
values, masking."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from quarantine_platform.assets.chatbot import chatbot_answers, chatbot_report_asset
from quarantine_platform_tests.invoices_chatbot.conftest import SEED_DAY
from quarantine_platform_tests.invoices_chatbot.helpers import (
    CHATBOT_F1000_CSV,
    CHATBOT_F2000_CSV,
    failure_message,
    materialization_metadata,
    materialize,
    qp,
    warehouse_query,
)


def materialize_day(day: str = SEED_DAY, instance: dg.DagsterInstance | None = None) -> tuple[Any, Any]:
    """The day's 24 hours in one run, then its report."""
    instance = instance or dg.DagsterInstance.ephemeral()
    hours = materialize(chatbot_answers, first=f"{day}-00:00", last=f"{day}-23:00", instance=instance)
    report = materialize(chatbot_report_asset, partition=day, instance=instance)
    return hours, report


def record(session: str, time: str, content: dict[str, Any], *, customer="C1", flow="F1", day=SEED_DAY):
    return {
        "customer": customer,
        "flow": flow,
        "session": session,
        "timestamp": f"{day}T{time}+00:00",
        "content": content,
    }


def write_hour(hour: int, records: list[Any], day: str = SEED_DAY) -> Path:
    path = Path(os.environ["QP_CHATBOT_URI"]) / f"date={day}" / f"hour={hour:02d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2))
    return path


def test_the_seed_gives_the_design_tables(seed_data: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()

    hours, report = materialize_day(instance=instance)

    assert len(instance.get_runs()) == 2  # 24 hours in one run, the day in another
    assert {k: v for k, v in materialization_metadata(hours).items() if k != "rejected_records"} == {
        "hours": "2019-12-16 00:00 .. 2019-12-16 23:00 UTC (24)",
        "files_found": 2,
        "hours_without_file": 22,
        "answers": 10,
        "records_rejected": 0,
    }
    assert materialization_metadata(report)["sessions"] == 3
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F1000") == (0, CHATBOT_F1000_CSV, "")
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F2000") == (0, CHATBOT_F2000_CSV, "")


def test_without_flow_the_export_is_json_lines_of_sessions_with_their_answers(
    materialized_seed_day: Path,
) -> None:
    code, out, _ = qp("export", "chatbot", "--date", SEED_DAY)

    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "customer": "C1000",
            "flow": "F1000",
            "session": "S1000",
            "first_answer_dt": "2019-12-16T13:59:58",
            "last_answer_dt": "2019-12-16T14:00:01",
            "answers": {"name": "maria", "cpf": "305.584.960-40", "delivery_confirmed": "true"},
        },
        {
            "customer": "C1000",
            "flow": "F1000",
            "session": "S2000",
            "first_answer_dt": "2019-12-16T13:59:59",
            "last_answer_dt": "2019-12-16T14:00:00",
            "answers": {"name": "joao", "cpf": "733.600.420-26", "delivery_confirmed": "false"},
        },
        {
            "customer": "C2000",
            "flow": "F2000",
            "session": "S3000",
            "first_answer_dt": "2019-12-16T13:59:59",
            "last_answer_dt": "2019-12-16T14:00:01",
            "answers": {"recomenda": "Simmmmmmm", "nota": "9"},
        },
    ]
    # The JSON keeps the key order of the flow's columns.
    assert list(json.loads(out.splitlines()[0])["answers"]) == ["name", "cpf", "delivery_confirmed"]


def test_mask_hides_a_keys_values_in_every_form(materialized_seed_day: Path, tmp_path: Path) -> None:
    code, out, _ = qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F1000", "--mask", "cpf")
    _, lines, _ = qp("export", "chatbot", "--date", SEED_DAY, "--mask", "cpf", "--mask", "name")
    qp("export", "chatbot", "--date", SEED_DAY, "--mask", "cpf", "--output", str(tmp_path / "s.parquet"))

    assert (code, out) == (
        0,
        "customer,flow,session,first_answer_dt,last_answer_dt,name,cpf,delivery_confirmed\n"
        "C1000,F1000,S1000,2019-12-16T13:59:58,2019-12-16T14:00:01,maria,***.***.***-**,true\n"
        "C1000,F1000,S2000,2019-12-16T13:59:59,2019-12-16T14:00:00,joao,***.***.***-**,false\n",
    )
    assert [json.loads(line)["answers"] for line in lines.splitlines()][:2] == [
        {"name": "*****", "cpf": "***.***.***-**", "delivery_confirmed": "true"},
        {"name": "****", "cpf": "***.***.***-**", "delivery_confirmed": "false"},
    ]
    parquet = pl.read_parquet(tmp_path / "s.parquet")
    assert parquet["answers"].map.get("cpf").to_list() == ["***.***.***-**", "***.***.***-**", None]


def test_exporting_a_day_never_materialized_says_how_to_materialize_it(platform_env: Path) -> None:
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F1000") == (
        2,
        "",
        "qp: error: chatbot_report for 2019-12-16 has not been materialized; run: dagster asset materialize "
        "-m quarantine_platform.definitions --select chatbot_report --partition 2019-12-16\n",
    )


def test_export_errors_are_one_line_for_the_user(materialized_seed_day: Path) -> None:
    assert qp("export", "chatbot", "--date", SEED_DAY, "--format", "csv") == (
        2,
        "",
        "qp: error: csv needs --flow: each flow has its own columns (without --flow: json or parquet)\n",
    )
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F9") == (
        2,
        "",
        "qp: error: no session of flow 'F9' on 2019-12-16 (flows that day: F1000, F2000)\n",
    )


def test_a_day_with_no_file_at_all_is_an_empty_report(platform_env: Path) -> None:
    hours, _ = materialize_day("2019-12-17")

    assert materialization_metadata(hours)["files_found"] == 0
    assert warehouse_query("select count(*) as n from chatbot_answers_hours").item() == 24
    assert qp("export", "chatbot", "--date", "2019-12-17") == (0, "", "")


def test_the_report_refuses_a_day_whose_hours_were_not_all_read(seed_data: Path) -> None:
    materialize(chatbot_answers, first=f"{SEED_DAY}-13:00", last=f"{SEED_DAY}-14:00")

    message = failure_message(materialize(chatbot_report_asset, partition=SEED_DAY, raise_on_error=False))

    assert message == (
        "chatbot_report for 2019-12-16: chatbot_answers has not been materialized for hour(s) 00, 01, 02, "
        "03, 04, 05, 06, 07, 08, 09, 10, 11, 12, 15, 16, 17, 18, 19, 20, 21, 22, 23 of that day; run: "
        "dagster asset materialize -m quarantine_platform.definitions --select chatbot_answers "
        "--partition-range 2019-12-16-00:00...2019-12-16-23:00"
    )


def test_answers_are_stored_one_row_per_answer_and_an_hour_rerun_replaces(seed_data: Path) -> None:
    materialize(chatbot_answers, partition=f"{SEED_DAY}-14:00")
    materialize(chatbot_answers, partition=f"{SEED_DAY}-14:00")

    rows = warehouse_query(
        "select hour, session, strftime(timestamp, '%H:%M:%S') as t, key, file, position "
        "from chatbot_answers order by position"
    )
    assert rows.rows() == [
        (14, "S1000", "14:00:00", "cpf", "date=2019-12-16/hour=14.json", 0),
        (14, "S2000", "14:00:00", "delivery_confirmed", "date=2019-12-16/hour=14.json", 1),
        (14, "S1000", "14:00:01", "cpf", "date=2019-12-16/hour=14.json", 2),
        (14, "S3000", "14:00:01", "nota", "date=2019-12-16/hour=14.json", 3),
        (14, "S1000", "14:00:01", "delivery_confirmed", "date=2019-12-16/hour=14.json", 4),
    ]


def test_a_session_spanning_two_hours_and_a_new_flow_with_new_keys(platform_env: Path) -> None:
    write_hour(
        9,
        [
            record("S1", "09:59:58", {"a": "first"}),
            record("S7", "09:59:59", {"colour": "blue", "size": " M "}, customer="C9", flow="F3000"),
        ],
    )
    write_hour(10, [record("S1", "10:00:03", {"b": "2", "a": "second"}), record("S1", "10:00:04", {"a": ""})])

    materialize_day()

    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F1")[1] == (
        "customer,flow,session,first_answer_dt,last_answer_dt,a,b\n"
        "C1,F1,S1,2019-12-16T09:59:58,2019-12-16T10:00:03,second,2\n"
    )
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F3000")[1] == (
        "customer,flow,session,first_answer_dt,last_answer_dt,colour,size\n"
        "C9,F3000,S7,2019-12-16T09:59:59,2019-12-16T09:59:59,blue,M\n"
    )


def test_records_breaking_the_schema_are_reported_without_values_and_the_rest_stored(
    platform_env: Path, caplog
) -> None:
    path = write_hour(
        13,
        [
            record("S1", "13:00:00", {"cpf": "111.222.333-44"}),
            {k: v for k, v in record("S9", "13:00:01", {"a": "x"}).items() if k != "session"},
            record("S2", "13:00:02", ["secret-list-value"]),  # type: ignore[arg-type]
            record("S3", "13:00:03", {"cpf": 12345678900}),
        ],
    )
    instance = dg.DagsterInstance.ephemeral()

    with caplog.at_level(logging.DEBUG):
        hours, _ = materialize_day(instance=instance)

    metadata = materialization_metadata(hours)
    assert metadata["records_rejected"] == 3
    table = metadata["rejected_records"].records
    assert [(r.data["file"], r.data["position"], r.data["reason"]) for r in table] == [
        (str(path), 1, "no session"),
        (str(path), 2, "content is not an object (got array)"),
        (str(path), 3, "content value of 'cpf' is not a string (got number)"),
    ]
    warnings = [r.user_message for r in instance.all_logs(hours.run_id) if r.level == logging.WARNING]
    assert warnings == [f"{path}: 3 record(s) rejected (array positions 1, 2, 3); the others are stored"]
    everything_logged = "\n".join(
        [caplog.text, *(r.user_message for r in instance.all_logs(hours.run_id)), json.dumps(str(metadata))]
    )
    for value in ("111.222.333-44", "secret-list-value", "12345678900"):
        assert value not in everything_logged
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F1")[1] == (
        "customer,flow,session,first_answer_dt,last_answer_dt,cpf\n"
        "C1,F1,S1,2019-12-16T13:00:00,2019-12-16T13:00:00,111.222.333-44\n"
    )


def test_a_file_that_is_not_a_json_array_fails_the_run_naming_file_and_line(platform_env: Path) -> None:
    path = write_hour(13, [])
    path.write_text('[\n  {"customer": "C1",}\n]')

    result = materialize(
        chatbot_answers, first=f"{SEED_DAY}-00:00", last=f"{SEED_DAY}-23:00", raise_on_error=False
    )

    assert failure_message(result) == (
        f"{path}, line 2: invalid JSON: Expecting property name enclosed in double quotes"
    )


def test_hours_read_ahead_are_stored_in_order_up_to_the_bad_file_of_a_range(platform_env: Path) -> None:
    for hour in (10, 11, 14, 15):
        write_hour(hour, [record(f"S{hour}", f"{hour}:00:00", {"a": str(hour)})])
    bad = write_hour(13, [])
    bad.write_text('[\n  {"customer": "C1",}\n]')

    result = materialize(
        chatbot_answers, first=f"{SEED_DAY}-10:00", last=f"{SEED_DAY}-15:00", raise_on_error=False
    )

    assert failure_message(result) == (
        f"{bad}, line 2: invalid JSON: Expecting property name enclosed in double quotes"
    )
    # The hours before the bad file were stored (the files after it may have been read, never stored).
    assert warehouse_query("select hour, file_found from chatbot_answers_hours order by hour").rows() == [
        (10, True),
        (11, True),
        (12, False),
    ]
    assert warehouse_query("select session, value from chatbot_answers order by hour").rows() == [
        ("S10", "10"),
        ("S11", "11"),
    ]


def test_an_empty_file_fails_the_run_naming_it(platform_env: Path) -> None:
    path = write_hour(13, [])
    path.write_text("")

    result = materialize(chatbot_answers, partition=f"{SEED_DAY}-13:00", raise_on_error=False)

    assert failure_message(result) == f"{path}, line 1: file is empty (expected a JSON array)"


def test_hours_are_read_from_s3_and_a_missing_object_is_an_empty_hour(
    seed_data: Path, s3_bucket, monkeypatch
) -> None:
    for hour in (13, 14):
        s3_bucket.upload_file(
            str(seed_data / "chatbot" / f"date={SEED_DAY}" / f"hour={hour}.json"),
            "qp-inputs",
            f"lake/chatbot/date={SEED_DAY}/hour={hour}.json",
        )
    monkeypatch.setenv("QP_CHATBOT_URI", "s3://qp-inputs/lake/chatbot/")

    hours, _ = materialize_day()

    assert materialization_metadata(hours)["files_found"] == 2
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F1000")[1] == CHATBOT_F1000_CSV
    assert qp("export", "chatbot", "--date", SEED_DAY, "--flow", "F2000")[1] == CHATBOT_F2000_CSV
    locations = warehouse_query("select location from chatbot_answers_hours where hour = 13")
    assert locations.item() == "s3://qp-inputs/lake/chatbot/date=2019-12-16/hour=13.json"


def test_report_rows_are_stored_long_form_with_the_key_order(materialized_seed_day: Path) -> None:
    assert_frame_equal(
        warehouse_query("select session, key, value, key_order from chatbot_report order by 1, 4"),
        pl.DataFrame(
            {
                "session": ["S1000"] * 3 + ["S2000"] * 3 + ["S3000"] * 2,
                "key": ["name", "cpf", "delivery_confirmed"] * 2 + ["recomenda", "nota"],
                "value": ["maria", "305.584.960-40", "true", "joao", "733.600.420-26", "false"]
                + ["Simmmmmmm", "9"],
                "key_order": [1, 2, 3, 1, 2, 3, 1, 2],
            }
        ),
    )


def test_the_report_checks_pass_on_the_seed_and_fail_on_a_repeated_or_blank_cell(
    seed_data: Path, monkeypatch
) -> None:
    from quarantine_platform.assets import chatbot as chatbot_assets

    instance = dg.DagsterInstance.ephemeral()
    _, report = materialize_day(instance=instance)
    assert {e.check_name: e.passed for e in report.get_asset_check_evaluations()} == {
        "chatbot_report_cells_unique": True,
        "chatbot_report_cells_valid": True,
    }

    right = chatbot_assets.chatbot_report

    def wrong(answers: pl.DataFrame) -> pl.DataFrame:  # a cell twice and a blank value, as a bug would
        rows = right(answers)
        return pl.concat(
            [rows, rows.head(1), rows.head(1).with_columns(key=pl.lit("other"), value=pl.lit(" "))]
        )

    monkeypatch.setattr(chatbot_assets, "chatbot_report", wrong)
    again = materialize(chatbot_report_asset, partition=SEED_DAY, instance=instance)
    failed = {e.check_name: e.metadata for e in again.get_asset_check_evaluations() if not e.passed}
    assert failed["chatbot_report_cells_unique"]["duplicate_cells"].value == 1
    assert failed["chatbot_report_cells_valid"]["invalid_cells"].value == 1
