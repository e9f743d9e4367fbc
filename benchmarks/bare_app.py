"""A bare Celery app: the baseline a trainq worker's memory is held against.

One no-op task and nothing else, on the Redis that :data:`BROKER_URL_ENV` names
(broker and result backend), so a worker of it is what Celery itself costs. Started
by :mod:`benchmarks.memory` as ``celery -A benchmarks.bare_app worker``; it imports
nothing from trainq.
"""

from __future__ import annotations

import os

from celery import Celery

# The environment variable that names the Redis URL: benchmarks.memory sets it.
BROKER_URL_ENV = "BARE_BROKER_URL"
URL = os.environ.get(BROKER_URL_ENV, "")
if not URL:
    raise SystemExit(f"benchmarks.bare_app: set {BROKER_URL_ENV} to a Redis URL")

app = Celery("bare", broker=URL, backend=URL)


@app.task(name="bare.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Does nothing: one task run, so the worker is measured as it idles after work."""
