"""The jobs' metric series: what a point holds, and the series contract on the in-memory
twin. Every store test takes the ``series`` fixture only, so
tests/integration/test_sessions_store.py runs the same tests against Redis."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tests.unit import test_runner as runs
from trainq.config import Settings
from trainq.logs.series import ENTRY_ID, MemoryMetricSeries, MetricSeries, point_of

CAP = 100
# How many entries past its cap a Redis stream may keep (XADD MAXLEN ~ trims whole
# nodes, of stream-node-max-entries: 100 by default); the twin keeps exactly CAP.
SLACK = 100


@pytest.fixture
def series() -> MetricSeries:
    return MemoryMetricSeries(max_points=CAP)


def test_a_point_holds_the_lines_finite_numbers_its_attempt_and_time() -> None:
    line = {
        "epoch": 2,
        "epochs": 3,
        "loss": 0.5,
        "accuracy": 0.75,
        "phase": "train",
        "done": True,
        "nested": {"a": 1},
        "bad": math.inf,
        "attempt": 9,
        "ts": 0,
    }

    point = point_of(line, attempt=2, ts=1_700_000_000.5)

    assert point == {
        "epoch": 2,
        "epochs": 3,
        "loss": 0.5,
        "accuracy": 0.75,
        "attempt": 2,
        "ts": 1_700_000_000.5,
    }
    assert isinstance(point["epoch"], int)


def test_points_come_back_oldest_first_with_the_last_id(series: MetricSeries) -> None:
    for epoch in (1, 2, 3):
        series.append("job", {"epoch": epoch, "loss": 1 / epoch, "attempt": 1, "ts": epoch})

    found = series.read("job")

    assert [p["epoch"] for p in found.points] == [1, 2, 3]
    assert found.points[1] == {"epoch": 2, "loss": 0.5, "attempt": 1, "ts": 2}
    assert found.last is not None and ENTRY_ID.fullmatch(found.last)
    assert series.read("other").points == [] and series.read("other").last is None


def test_after_a_points_id_only_newer_points_come(series: MetricSeries) -> None:
    series.append("job", {"epoch": 1, "attempt": 1, "ts": 1})
    first = series.read("job")
    assert first.last is not None

    nothing_new = series.read("job", first.last)
    series.append("job", {"epoch": 2, "attempt": 1, "ts": 2})
    series.append("job", {"epoch": 1, "attempt": 2, "ts": 3})
    newer = series.read("job", first.last)

    assert nothing_new.points == [] and nothing_new.last == first.last
    assert [(p["epoch"], p["attempt"]) for p in newer.points] == [(2, 1), (1, 2)]
    assert newer.last is not None and newer.last != first.last
    assert series.read("job", newer.last).points == []


def test_a_limit_gives_the_oldest_and_the_rest_follows_from_last(series: MetricSeries) -> None:
    for step in range(10):
        series.append("job", {"step": step, "attempt": 1, "ts": step})

    head = series.read("job", limit=4)
    rest = series.read("job", head.last)

    assert [p["step"] for p in head.points] == [0, 1, 2, 3]
    assert [p["step"] for p in rest.points] == list(range(4, 10))


def test_the_series_keeps_about_its_cap_of_the_newest_points(series: MetricSeries) -> None:
    total = CAP * 3
    for step in range(total):
        series.append("job", {"step": step, "attempt": 1, "ts": step})

    kept = [p["step"] for p in series.read("job", limit=total).points]

    assert CAP <= len(kept) <= CAP + SLACK
    assert kept == list(range(total - len(kept), total))  # the newest, in order


def test_the_runner_adds_a_point_per_progress_line_of_each_attempt(tmp_path: Path) -> None:
    settings = Settings(log_dir=tmp_path / "logs", checkpoint_dir=tmp_path / "ck",
                        retry_backoff_s=0, retry_backoff_max_s=0)  # fmt: skip
    h = runs.harness(settings, runs.preempted_once)  # attempt 1: epoch 1; attempt 2: 1, 2
    before = time.time()

    h.runner.run(runs.JOB, runs.queued(h, runs.spec()))

    points = h.runner.series.read(runs.JOB).points
    assert [(p["attempt"], p["epoch"], p["loss"]) for p in points] == [
        (1, 1, 0.5),
        (2, 1, 0.5),
        (2, 2, 0.3),
    ]
    assert all(p["epochs"] == 2 for p in points)
    stamps = [p["ts"] for p in points]
    assert before <= stamps[0] <= stamps[1] <= stamps[2] <= time.time()
