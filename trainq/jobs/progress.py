"""The progress protocol: JSON lines a training program prints on stdout.

``{"trainq": "progress", "epoch": 2, "epochs": 5, "loss": 0.41, ...}`` reports
progress; ``{"trainq": "result", "final_loss": ..., ...}`` reports the outcome. Any
image whose program prints these lines gets the same tracking; every other line,
including malformed JSON, is plain log output. A program that exits with
:data:`EXIT_PREEMPTED` says "stopped after checkpointing, safe to resume".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from trainq.jobs.record import Progress

_MARKER = '"trainq"'
# Exit code that train.py (and any well-behaved image) uses for "stopped after
# checkpointing, safe to resume": a preemption, not a bug.
EXIT_PREEMPTED = 75


@dataclass(frozen=True)
class ResultLine:
    """The program's own summary of a successful run."""

    values: dict[str, Any]


def parse_line(line: str) -> Progress | ResultLine | None:
    """The protocol message on ``line``, or None for plain output."""
    text = line.strip()
    if not text.startswith("{") or _MARKER not in text:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    kind = message.pop("trainq", None)
    if kind == "result":
        return ResultLine(message)
    if kind != "progress" or not all(_json_finite(v) for v in message.values()):
        return None
    try:
        return Progress.model_validate(message)
    except ValidationError:
        return None


def protocol_messages(lines: list[str]) -> list[Progress | ResultLine]:
    """The protocol messages among ``lines``, in order (most lines of a chatty job are
    plain output, passed over without a call each)."""
    found = (parse_line(line) for line in lines if _MARKER in line)
    return [message for message in found if message is not None]


def _json_finite(value: Any) -> bool:
    # json.loads accepts NaN and Infinity, which JSON (and the store) does not.
    return not (isinstance(value, float) and not math.isfinite(value))
