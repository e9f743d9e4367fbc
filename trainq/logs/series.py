"""Each job's metric series: the numeric fields of its progress lines, in a capped stream.

The runner appends one point per progress line it reads (:mod:`trainq.worker.runner`):
``{"attempt": N, "ts": unix_s, "epoch": ..., "loss": ..., <any other numeric field>}``,
as compact JSON in the entry's one field ``p``. The stream keeps about ``max_points``
points (``XADD MAXLEN ~``: whole nodes are trimmed, so a few more may stay) and expires
with the job's log stream: ``retention_s`` after its last point. Readers poll it with
the id of the last point they saw (``GET /train/{id}/metrics?after=``).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis

from trainq.store.keys import Keys

# A point's values: the numbers a progress line carried, its attempt and time.
Point = dict[str, int | float]
# A stream entry id a reader may give: "<ms>-<seq>", each part under Redis's 64-bit limit.
ENTRY_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
_READ_BATCH = 1000  # entries per XRANGE


@dataclass(frozen=True)
class Points:
    """Points oldest first, and the id of the last one (``after`` when there is none)."""

    points: list[Point]
    last: str | None


def point_of(values: Mapping[str, Any], attempt: int, ts: float) -> Point:
    """The point of one progress line: its finite numbers (never a bool), its attempt
    and its time (``attempt`` and ``ts`` win over fields of the same name)."""
    numbers: Point = {
        name: value
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
    return {**numbers, "attempt": attempt, "ts": ts}


class MetricSeries(Protocol):
    def append(self, job_id: str, point: Point) -> None:
        """Add ``point`` to the job's series, trimming it to its cap."""

    def read(self, job_id: str, after: str | None = None, limit: int | None = None) -> Points:
        """The points after the entry id ``after`` (all without), oldest first, at most
        ``limit`` of them (the oldest: poll again from ``last`` for the rest)."""


class RedisMetricSeries:
    """The series in Redis (:meth:`~trainq.store.keys.Keys.metric_series`)."""

    def __init__(
        self, client: redis.Redis, keys: Keys, max_points: int, retention_s: float
    ) -> None:
        self._redis = client
        self._keys = keys
        self._max_points = max_points
        self._retention_s = max(1, int(retention_s))

    def append(self, job_id: str, point: Point) -> None:
        key = self._keys.metric_series(job_id)
        pipe = self._redis.pipeline(transaction=False)  # one round trip
        pipe.xadd(key, {"p": _compact(point)}, maxlen=self._max_points, approximate=True)
        pipe.expire(key, self._retention_s)
        pipe.execute()

    def read(self, job_id: str, after: str | None = None, limit: int | None = None) -> Points:
        key = self._keys.metric_series(job_id)
        wanted = self._max_points if limit is None else limit
        start = "-" if after is None else f"({after}"
        points: list[Point] = []
        last = after
        while len(points) < wanted:
            count = min(_READ_BATCH, wanted - len(points))
            batch = cast(
                list[tuple[str, dict[str, str]]], self._redis.xrange(key, min=start, count=count)
            )
            for entry_id, fields in batch:
                points.append(_parsed(fields.get("p", "{}")))
                last = entry_id
            if len(batch) < count:
                break
            start = f"({last}"
        return Points(points, last)


class MemoryMetricSeries:
    """The in-memory twin for unit tests: ids ``<n>-0``, the cap kept exactly."""

    def __init__(self, max_points: int = 10_000) -> None:
        self._max_points = max_points
        self._series: dict[str, list[tuple[str, Point]]] = {}
        self._appended: dict[str, int] = {}
        self._lock = threading.Lock()

    def append(self, job_id: str, point: Point) -> None:
        with self._lock:
            number = self._appended.get(job_id, 0) + 1
            self._appended[job_id] = number
            series = self._series.setdefault(job_id, [])
            series.append((f"{number}-0", _parsed(_compact(point))))
            del series[: max(len(series) - self._max_points, 0)]

    def read(self, job_id: str, after: str | None = None, limit: int | None = None) -> Points:
        with self._lock:
            series = list(self._series.get(job_id, []))
        seen = _order(after) if after is not None else (-1, -1)
        newer = [(i, p) for i, p in series if _order(i) > seen]
        if limit is not None:
            newer = newer[:limit]
        return Points([p for _, p in newer], newer[-1][0] if newer else after)


def _compact(point: Point) -> str:
    return json.dumps(point, separators=(",", ":"))


def _parsed(text: str) -> Point:
    value = json.loads(text)
    return cast(Point, value) if isinstance(value, dict) else {}


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
