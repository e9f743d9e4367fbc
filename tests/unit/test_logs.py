"""trainq.logs: the one JSON log format, the daily component files, the job context."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trainq.logs.components import DailyFileHandler, JsonFormatter, configure, job_context
from trainq.logs.format import decode, lines_encoder
from trainq.logs.format import encode as record

BASE_KEYS = {"ts", "level", "component", "job_id", "attempt", "msg"}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse_ts(text: str) -> datetime:
    assert ISO_Z.fullmatch(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _micros_since_epoch(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _day(ts_text: str) -> str:
    return _parse_ts(ts_text).strftime("%Y%m%d")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _daily_handlers() -> list[DailyFileHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, DailyFileHandler)]


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger; afterwards, the DailyFileHandlers configure() added are gone and
    closed, and the root level is what it was."""
    root = logging.getLogger()
    level = root.level
    before = set(_daily_handlers())
    yield root
    for handler in _daily_handlers():
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


# record()


def test_record_has_exactly_the_format_keys() -> None:
    entry = json.loads(record("cli", "hello", job_id="j-1", attempt=3, ts=1_700_000_000.25))

    assert set(entry) == BASE_KEYS
    assert entry["component"] == "cli"
    assert entry["msg"] == "hello"
    assert entry["job_id"] == "j-1"
    assert entry["attempt"] == 3
    assert entry["level"] == "INFO"


def test_record_defaults_job_and_attempt_to_null() -> None:
    entry = json.loads(record("worker", "m", level="WARNING"))

    assert set(entry) == BASE_KEYS
    assert entry["job_id"] is None
    assert entry["attempt"] is None
    assert entry["level"] == "WARNING"


def test_record_adds_extras_after_the_format_keys() -> None:
    entry = json.loads(record("job", "m", ts=1.0, event="attempt_started", logger="x.y"))

    assert set(entry) == BASE_KEYS | {"event", "logger"}
    assert entry["event"] == "attempt_started"
    assert entry["logger"] == "x.y"


def test_record_is_one_line() -> None:
    line = record("job", "first\nsecond\r\nthird", ts=5.0)

    assert "\n" not in line
    assert json.loads(line)["msg"] == "first\nsecond\r\nthird"


@pytest.mark.parametrize(
    "ts",
    [
        0.0,
        0.5,
        1.000001,
        59.999999,
        86_399.9999995,
        1_700_000_000.0,
        1_700_000_000.123456,
        1_764_460_799.999999,
        1_764_460_800.000001,
    ],
)
def test_record_ts_is_iso_utc_with_microseconds(ts: float) -> None:
    text = json.loads(record("cli", "m", ts=ts))["ts"]
    moment = _parse_ts(text)

    assert moment.utcoffset() == timedelta(0)
    # Exact arithmetic: the printed time is within 1 µs of the given float.
    assert abs(Decimal(_micros_since_epoch(moment)) - Decimal(ts) * 1_000_000) <= 1


def test_record_ts_round_trips_for_many_times() -> None:
    rng = random.Random(20261129)
    for _ in range(2_000):
        ts = rng.uniform(0, 4_102_444_800)  # up to 2100
        moment = _parse_ts(json.loads(record("cli", "m", ts=ts))["ts"])
        error = abs(Decimal(_micros_since_epoch(moment)) - Decimal(ts) * 1_000_000)
        assert error <= 1, (ts, moment)


def test_record_ts_defaults_to_now() -> None:
    before = datetime.now(UTC)
    moment = _parse_ts(json.loads(record("cli", "m"))["ts"])
    after = datetime.now(UTC)

    assert before - timedelta(microseconds=1) <= moment <= after


def test_record_keeps_non_ascii() -> None:
    msg = "époque 3 ✓ 損失 📉"
    line = record("worker", msg, job_id="jöb")

    assert msg in line
    assert "jöb" in line
    assert "\\u" not in line
    assert json.loads(line)["msg"] == msg


# configure() and the component log


def test_configure_writes_json_lines_to_the_daily_component_file(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    assert configure("worker", tmp_path) == tmp_path

    logging.getLogger("trainq.tests.logs").info("hello %s", "world")

    files = sorted(tmp_path.iterdir())
    assert len(files) == 1
    [entry] = _lines(files[0])
    assert files[0].name == f"TrainingWorker_{_day(entry['ts'])}.log"
    assert entry["component"] == "worker"
    assert entry["logger"] == "trainq.tests.logs"
    assert entry["msg"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["job_id"] is None
    assert entry["attempt"] is None
    assert set(entry) == BASE_KEYS | {"logger"}


def test_configure_names_the_file_for_its_component(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    configure("cli", tmp_path)

    logging.getLogger("trainq.tests.logs").warning("from the cli")

    [path] = tmp_path.iterdir()
    [entry] = _lines(path)
    assert path.name == f"TrainingAgent_{_day(entry['ts'])}.log"
    assert entry["component"] == "cli"
    assert entry["level"] == "WARNING"


def test_configure_lowers_the_root_level_to_info(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    root_logging.setLevel(logging.WARNING)

    configure("worker", tmp_path)
    logging.getLogger("trainq.tests.logs").debug("not kept")
    logging.getLogger("trainq.tests.logs").info("kept")

    assert root_logging.level == logging.INFO
    [path] = tmp_path.iterdir()
    assert [e["msg"] for e in _lines(path)] == ["kept"]


def test_job_context_tags_records_inside_it_only(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    configure("worker", tmp_path)
    log = logging.getLogger("trainq.tests.logs")

    log.info("before")
    with job_context("job-9", 2):
        log.info("inside")
        with job_context("job-10"):
            log.info("nested")
        log.info("inside again")
    log.info("after")

    [path] = tmp_path.iterdir()
    tags = [(e["msg"], e["job_id"], e["attempt"]) for e in _lines(path)]
    assert tags == [
        ("before", None, None),
        ("inside", "job-9", 2),
        ("nested", "job-10", None),
        ("inside again", "job-9", 2),
        ("after", None, None),
    ]


def test_job_context_is_reset_when_the_block_raises(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    configure("worker", tmp_path)
    log = logging.getLogger("trainq.tests.logs")

    with pytest.raises(RuntimeError), job_context("job-9", 2):
        raise RuntimeError("boom")
    log.info("after")

    [path] = tmp_path.iterdir()
    [entry] = _lines(path)
    assert (entry["job_id"], entry["attempt"]) == (None, None)


def test_logged_exception_carries_its_traceback(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    configure("worker", tmp_path)
    log = logging.getLogger("trainq.tests.logs")

    def fail() -> None:
        raise ValueError("the reason")

    try:
        fail()
    except ValueError:
        log.exception("step failed")

    [path] = tmp_path.iterdir()
    [entry] = _lines(path)  # the traceback stays inside the one JSON line
    assert entry["level"] == "ERROR"
    assert entry["msg"].startswith("step failed\n")
    assert "Traceback (most recent call last)" in entry["msg"]
    assert "in fail" in entry["msg"]
    assert "ValueError: the reason" in entry["msg"]


def test_configure_twice_keeps_one_handler_for_the_latest_component(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    log = logging.getLogger("trainq.tests.logs")

    configure("cli", tmp_path)
    [first] = _daily_handlers()
    log.info("as the cli")
    configure("worker", tmp_path)
    log.info("as the worker")

    handlers = _daily_handlers()
    assert len(handlers) == 1
    assert handlers[0] is not first
    assert handlers[0].stem == "TrainingWorker"
    assert first._stream is None  # the replaced handler was closed
    files = {p.name.split("_")[0]: p for p in tmp_path.iterdir()}
    assert set(files) == {"TrainingAgent", "TrainingWorker"}
    assert [(e["component"], e["msg"]) for e in _lines(files["TrainingAgent"])] == [
        ("cli", "as the cli")
    ]
    assert [(e["component"], e["msg"]) for e in _lines(files["TrainingWorker"])] == [
        ("worker", "as the worker")
    ]


# DailyFileHandler


def _log_record(msg: str, created: float) -> logging.LogRecord:
    rec = logging.LogRecord("trainq.tests.daily", logging.INFO, __file__, 1, msg, None, None)
    rec.created = created
    return rec


def test_daily_file_handler_switches_file_when_the_utc_day_changes(tmp_path: Path) -> None:
    midnight = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
    folder = tmp_path / "made" / "on demand"
    handler = DailyFileHandler(folder, "Stem")
    handler.setFormatter(JsonFormatter("worker"))
    try:
        handler.emit(_log_record("late on the 29th", midnight - 0.5))
        handler.emit(_log_record("also the 29th", midnight - 0.000001))
        handler.emit(_log_record("early on the 30th", midnight + 0.5))
    finally:
        handler.close()

    files = {p.name: p for p in folder.iterdir()}
    assert set(files) == {"Stem_20261129.log", "Stem_20261130.log"}
    day1 = _lines(files["Stem_20261129.log"])
    day2 = _lines(files["Stem_20261130.log"])
    assert [e["msg"] for e in day1] == ["late on the 29th", "also the 29th"]
    assert [e["msg"] for e in day2] == ["early on the 30th"]
    assert all(_day(e["ts"]) == "20261129" for e in day1)
    assert all(_day(e["ts"]) == "20261130" for e in day2)


def test_daily_file_handler_appends_to_an_existing_days_file(tmp_path: Path) -> None:
    noon = datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp()
    existing = tmp_path / "Stem_20261129.log"
    existing.write_text("already here\n", encoding="utf-8")
    handler = DailyFileHandler(tmp_path, "Stem")
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        handler.emit(_log_record("day one", noon))
        handler.emit(_log_record("day two", noon + 86_400))
        handler.emit(_log_record("day one again", noon + 60))
    finally:
        handler.close()

    assert existing.read_text(encoding="utf-8").splitlines() == [
        "already here",
        "day one",
        "day one again",
    ]
    assert (tmp_path / "Stem_20261130.log").read_text(encoding="utf-8") == "day two\n"


@pytest.mark.parametrize(
    "msg", ["plain", 'quotes " and \\ back', "tab\tand\u00e9\u4e2d", "\x00\x1f", ""]
)
def test_line_formatter_writes_what_record_writes(msg: str) -> None:
    ts = 1_764_460_799.123456
    fmt = lines_encoder("job", job_id="j-1", attempt=2)
    expected = record("job", msg, job_id="j-1", attempt=2, ts=ts) + "\n"

    assert fmt([msg], ts) == expected.encode()
    assert (
        fmt([msg, "next"], ts)
        == (expected + record("job", "next", job_id="j-1", attempt=2, ts=ts) + "\n").encode()
    )


def test_a_line_decodes_to_what_was_encoded() -> None:
    line = record("job", "out\tput", job_id="j", attempt=4, ts=1_700_000_000.5, event="x")
    decoded = decode(line)
    assert decoded is not None
    assert (decoded.ts, decoded.attempt, decoded.msg, decoded.event) == (
        1_700_000_000.5,
        4,
        "out\tput",
        "x",
    )
    assert decode("not json") is None and decode('{"msg": "no time"}') is None
