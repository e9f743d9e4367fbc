"""Benchmark figures: one shape for every benchmark, written as JSON and as a table.

Each figure is ``{"name", "unit", "value", "baseline", "ratio", "goal", "met"}``:
``ratio`` is value / baseline from the same run, ``goal`` a readable target such as
``">= 0.40"`` and ``met`` whether the figure it applies to (``goal_on``) meets it.
"""

from __future__ import annotations

import json
import operator
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
TABLE = ROOT.parent / "docs" / "benchmarks.md"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    value: float
    baseline: float | None
    goal: str  # "<op> <number>", e.g. ">= 0.98"; "" when there is none
    goal_on: Literal["value", "ratio"] = "value"
    ratio: float | None = field(init=False)
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        ratio = None if not self.baseline else self.value / self.baseline
        object.__setattr__(self, "ratio", ratio)
        met = None
        if self.goal:
            op, number = self.goal.split()
            subject = self.value if self.goal_on == "value" else ratio
            met = subject is not None and _COMPARE[op](subject, float(number))
        object.__setattr__(self, "met", met)

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["goal"] = f"{self.goal_on} {self.goal}" if self.goal else None
        del data["goal_on"]
        return data


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """``with timed() as elapsed_s:`` — seconds since the block began, on a monotonic clock."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def write(benchmark: str, figures: list[Figure]) -> Path:
    """Write benchmarks/results/<benchmark>.json and refresh docs/benchmarks.md."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{benchmark}.json"
    path.write_text(json.dumps([f.as_json() for f in figures], indent=2) + "\n")
    _write_table()
    return path


def _write_table() -> None:
    rows = [
        "# Benchmarks",
        "",
        "Written by `make bench` (one benchmark alone: `.venv/bin/python -m benchmarks.NAME`).",
        "Ratios compare against a baseline measured in the same run.",
        "",
        "| benchmark | figure | value | unit | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        for f in json.loads(path.read_text()):
            rows.append(
                f"| {path.stem} | {f['name']} | {_num(f['value'])} | {f['unit']} | "
                f"{_num(f['baseline'])} | {_num(f['ratio'])} | {f['goal'] or ''} | "
                f"{'' if f['met'] is None else ('yes' if f['met'] else 'NO')} |"
            )
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text("\n".join(rows) + "\n")


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"
