"""A benchmark's verdict: a missed goal fails it, naming the figure, after writing all."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks import figures
from benchmarks.figures import GOAL_MISSED_EXIT, Figure, report


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Results and table written under ``tmp_path``, never into the repository."""
    monkeypatch.setattr(figures, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(figures, "TABLE", tmp_path / "docs" / "benchmarks.md")
    return tmp_path


def test_a_missed_goal_exits_non_zero_naming_the_figure_after_writing_every_figure(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    met = Figure("submits", "jobs/s", 900.0, 1000.0, ">= 0.85", goal_on="ratio")
    missed = Figure("POST /train", "jobs/s", 300.0, 1000.0, ">= 0.77", goal_on="ratio")
    after = Figure("list page, p95", "ms", 7.0, None, "<= 50")

    with pytest.raises(SystemExit) as exited:
        report("demo", [met, missed, after])

    assert exited.value.code == GOAL_MISSED_EXIT != 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "GOAL MISSED: demo: POST /train: 300 jobs/s (goal ratio >= 0.77; ratio 0.3)"
    ]
    assert [line.split(":")[1].strip() for line in out.splitlines()] == [
        "submits",
        "POST /train",
        "list page, p95",
    ]
    written = json.loads((results / "results" / "demo.json").read_text())
    assert [(f["name"], f["met"]) for f in written] == [
        ("submits", True),
        ("POST /train", False),
        ("list page, p95", True),
    ]
    assert "| demo | POST /train | 300 |" in (results / "docs" / "benchmarks.md").read_text()


def test_all_goals_met_returns_the_results_and_says_nothing_on_stderr(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = report(
        "demo",
        [
            Figure("p95", "ms", 2.0, 1.0, "<= 4", goal_on="ratio"),
            Figure("overhead", "ms", 30.0, 10.0, "<= 50", goal_on="overhead"),
            Figure("no goal", "ms", 1e9, None, ""),
        ],
    )

    assert path == results / "results" / "demo.json"
    assert capsys.readouterr().err == ""


def test_every_missed_goal_is_named_and_a_ratio_goal_without_baseline_is_missed(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        report(
            "demo",
            [
                Figure("overhead", "ms", 80.0, 10.0, "<= 50", goal_on="overhead"),
                Figure("ratio", "ms", 5.0, None, "<= 4", goal_on="ratio"),
                Figure("value", "MB", 200.0, None, "<= 150"),
            ],
        )

    assert capsys.readouterr().err.splitlines() == [
        "GOAL MISSED: demo: overhead: 80 ms (goal overhead <= 50; overhead 70)",
        "GOAL MISSED: demo: ratio: 5 ms (goal ratio <= 4; ratio none: no baseline)",
        "GOAL MISSED: demo: value: 200 MB (goal value <= 150)",
    ]


@pytest.mark.parametrize("goal", ["> 1", "<= fast", "<=1", ">= 1 2"])
def test_a_malformed_goal_is_refused_naming_the_figure(goal: str) -> None:
    with pytest.raises(ValueError, match=r"figure 'p95': goal .* is not '<op> <number>'"):
        Figure("p95", "ms", 1.0, None, goal)


def test_the_process_exit_status_says_a_goal_was_missed(results: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from benchmarks import figures
        figures.RESULTS = Path({str(results / "results")!r})
        figures.TABLE = Path({str(results / "benchmarks.md")!r})
        figures.report("demo", [figures.Figure("rate", "jobs/s", 1.0, None, ">= 2")])
        """
    )
    root = Path(figures.__file__).resolve().parent.parent

    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == GOAL_MISSED_EXIT, done.stderr
    assert done.stderr == "GOAL MISSED: demo: rate: 1 jobs/s (goal value >= 2)\n"
    assert "demo: rate: 1 jobs/s goal value >= 2: NOT MET" in done.stdout
