"""parse_line: the JSON-lines progress protocol; everything else is plain output."""

from __future__ import annotations

import json

import pytest

from trainq.jobs.progress import ResultLine, parse_line
from trainq.jobs.record import Progress


def test_progress_line_becomes_progress() -> None:
    line = json.dumps(
        {
            "trainq": "progress",
            "epoch": 2,
            "epochs": 5,
            "step": 40,
            "loss": 0.41,
            "samples_per_s": 1200.5,
            "eta_s": 12.0,
        }
    )

    message = parse_line(line)

    assert isinstance(message, Progress)
    assert message.epoch == 2
    assert message.epochs == 5
    assert message.step == 40
    assert message.loss == pytest.approx(0.41)
    assert message.samples_per_s == pytest.approx(1200.5)
    assert message.eta_s == pytest.approx(12.0)


def test_progress_keeps_extra_metrics() -> None:
    message = parse_line('{"trainq": "progress", "epoch": 1, "accuracy": 0.9, "lr": 0.001}')

    assert isinstance(message, Progress)
    dumped = message.model_dump(exclude_none=True)
    assert dumped["accuracy"] == pytest.approx(0.9)
    assert dumped["lr"] == pytest.approx(0.001)
    assert "trainq" not in dumped


def test_result_line_becomes_result() -> None:
    message = parse_line('{"trainq": "result", "final_loss": 0.12, "checkpoint": "/c/last.pt"}')

    assert isinstance(message, ResultLine)
    assert message.values == {"final_loss": 0.12, "checkpoint": "/c/last.pt"}


@pytest.mark.parametrize(
    "line",
    [
        "",
        "epoch 1 loss 0.4",
        "Traceback (most recent call last):",
        '{"epoch": 1, "loss": 0.4}',
        '{"trainq": "progress", "epoch": 1',
        '[{"trainq": "progress", "epoch": 1}]',
        '{"trainq": "progress", "epoch": 1, "loss": NaN}',
        '{"trainq": "progress", "epoch": 1, "loss": Infinity}',
        '{"trainq": "progress", "epoch": "two"}',
        '{"trainq": "something-else", "epoch": 1}',
        '{"trainq": null, "epoch": 1}',
        'log: {"trainq": "progress", "epoch": 1}',
    ],
)
def test_other_lines_are_plain_output(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize("pad", ["  ", "\t", "\r\n", " \n"])
def test_surrounding_whitespace_is_tolerated(pad: str) -> None:
    progress = parse_line(f'{pad}{{"trainq": "progress", "epoch": 3}}{pad}')
    result = parse_line(f'{pad}{{"trainq": "result", "final_loss": 1.5}}{pad}')

    assert isinstance(progress, Progress)
    assert progress.epoch == 3
    assert isinstance(result, ResultLine)
    assert result.values == {"final_loss": 1.5}
