"""Benchmark figures: one shape for every benchmark, written as JSON and as a table.

Each figure is ``{"name", "unit", "value", "baseline", "ratio", "goal", "met"}``:
``ratio`` is value / baseline from the same run, ``goal`` a readable target such as
``"ratio >= 0.98"`` and ``met`` whether the quantity it names meets it: ``value``,
``ratio``, or ``overhead`` (value - baseline).

The one timing helper is :func:`interleave`: it runs the trainq variant and its bare
baseline alternately, round after round (the order flipped every round), so the
machine's drift and noise fall on both alike.

A benchmark that misses a goal fails: :func:`report` writes and prints every figure,
then names each missed one on stderr and exits with :data:`GOAL_MISSED_EXIT`, so
``make bench`` can tell a miss from a crash.
"""

from __future__ import annotations

import json
import math
import operator
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
TABLE = ROOT.parent / "docs" / "benchmarks.md"
# What follows this line in the table's file is written by hand (what each change
# bought, comparisons across commits) and kept when the table is rewritten.
NOTES_MARKER = "<!-- notes: kept when make bench rewrites the table above -->"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
}
# The exit status of a benchmark that ran to its end and missed a goal; a crash exits 1.
GOAL_MISSED_EXIT = 3
T = TypeVar("T")


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    value: float
    baseline: float | None
    goal: str  # "<op> <number>", e.g. ">= 0.98"; "" when there is none
    goal_on: Literal["value", "ratio", "overhead"] = "value"
    ratio: float | None = field(init=False)
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        ratio = None if not self.baseline else self.value / self.baseline
        object.__setattr__(self, "ratio", ratio)
        met = None
        if self.goal:
            op, number = self._goal_parts()
            met = self.subject is not None and _COMPARE[op](self.subject, number)
        object.__setattr__(self, "met", met)

    @property
    def subject(self) -> float | None:
        """What the goal is held against (``goal_on``); None when that needs a missing baseline."""
        if self.goal_on == "ratio":
            return self.ratio
        if self.goal_on == "overhead":
            return None if self.baseline is None else self.value - self.baseline
        return self.value

    @property
    def verdict(self) -> str:
        """The goal and, unless it is on the value, what it was held against."""
        if self.goal_on == "value":
            return f"(goal value {self.goal})"
        held = "none: no baseline" if self.subject is None else _num(self.subject)
        return f"(goal {self.goal_on} {self.goal}; {self.goal_on} {held})"

    def _goal_parts(self) -> tuple[str, float]:
        parts = self.goal.split()
        try:
            op, number = parts
            if op in _COMPARE:
                return op, float(number)
        except ValueError:
            pass
        raise ValueError(
            f"figure {self.name!r}: goal {self.goal!r} is not '<op> <number>' "
            f"with <op> one of {', '.join(_COMPARE)}"
        )

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


def interleave(rounds: int, variants: Mapping[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Run every variant once per round, alternating their order; what each returned.

    A variant returns its own measurement (a duration from :func:`timed`, a rate, a
    record), so one helper serves every benchmark.
    """
    results: dict[str, list[T]] = {name: [] for name in variants}
    names = list(variants)
    for n in range(rounds):
        for name in names if n % 2 == 0 else reversed(names):
            results[name].append(variants[name]())
    return results


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank: a value that was measured."""
    ordered = sorted(samples)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def report(benchmark: str, figures: list[Figure]) -> Path:
    """Write the figures (:func:`write`) and print them, one line each.

    Exits with :data:`GOAL_MISSED_EXIT` once all are written and printed when a goal
    was missed, after a ``GOAL MISSED`` line on stderr for each.
    """
    path = write(benchmark, figures)
    for f in figures:
        base = f" (baseline {_num(f.baseline)}, ratio {_num(f.ratio)})" if f.baseline else ""
        met = f" goal {f.goal_on} {f.goal}: {'met' if f.met else 'NOT MET'}" if f.goal else ""
        print(f"{benchmark}: {f.name}: {_num(f.value)} {f.unit}{base}{met}", flush=True)
    missed = missed_goals(benchmark, figures)
    for line in missed:
        print(line, file=sys.stderr, flush=True)
    if missed:
        raise SystemExit(GOAL_MISSED_EXIT)
    return path


def missed_goals(benchmark: str, figures: list[Figure]) -> list[str]:
    """A line naming each figure whose goal was missed."""
    return [
        f"GOAL MISSED: {benchmark}: {f.name}: {_num(f.value)} {f.unit} {f.verdict}"
        for f in figures
        if f.met is False
    ]


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
        "Written by `make bench`; one benchmark alone: `make bench BENCHMARKS=NAME` or",
        "`.venv/bin/python -m benchmarks.NAME` (each takes `--help`). Ratios compare",
        "against a baseline measured in the same run, interleaved with it. `overhead`",
        "is value - baseline. What each benchmark does: the docstring of",
        "`benchmarks/NAME.py`.",
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
    old = TABLE.read_text() if TABLE.exists() else ""
    notes = old[old.index(NOTES_MARKER) :] if NOTES_MARKER in old else ""
    TABLE.write_text("\n".join(rows) + "\n" + ("\n" + notes if notes else ""))


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"
