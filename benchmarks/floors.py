"""Floors: what Celery, its prefork pool, FastAPI and uvicorn cost here on their own.

Three of issue 17's goals are held against baselines that skip Celery or HTTP (a bare
subprocess, a bare ``send_task``). These are the same measurements with Celery (or
FastAPI) in them and none of trainq's work, on the same private Redis with trainq's own
Celery options and worker arguments (:mod:`benchmarks.floor_app`), no trainq worker
running:

- latency: a task that runs ``true``, through one prefork worker, submit → its result
  read, p50 (trainq: ``dispatch``'s process submit → recorded finished, goal <= 5 ms);
- many: 1,000 such tasks through 2 prefork workers, time per task and worker, against
  the same bare subprocesses as ``many`` (trainq: overhead <= 5 ms);
- API: a FastAPI endpoint that validates a body and sends the task, under uvicorn with
  ``trainq api``'s processes and 8 ApacheBench connections, against a bare
  ``send_task`` in interleaved batches (trainq: ``POST /train`` >= 0.77).

No goals: reference figures, so that a goal set below its floor shows as such.
Run alone: .venv/bin/python -m benchmarks.floors [--runs N] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import ROOT, Figure, interleave, percentile, report, timed
from benchmarks.http import post_rate

API_CLIENTS = 8
BATCHES = 6
APP = "benchmarks.floor_app"


@contextmanager
def floor_workers(count: int) -> Iterator[None]:
    """``count`` prefork workers of the floor app (one child each), with the flags
    ``trainq worker`` gives Celery; stopped after."""
    from benchmarks.floor_app import app
    from trainq.worker.startup import WORKER_FLAGS

    names = [f"floor{n}@benchhost" for n in range(count)]
    with _cluster.celery_workers(APP, names, [*WORKER_FLAGS, "--loglevel=WARNING"]):
        deadline = time.monotonic() + 60
        while not set(names) <= _answering(app):
            if time.monotonic() > deadline:
                raise RuntimeError(f"floor workers did not answer; see {_cluster.STATE}")
        yield


def _answering(app: Celery) -> set[str]:
    """The workers that answer a ping within half a second."""
    return {name for reply in app.control.ping(timeout=0.5) for name in reply}


def run_once() -> float:
    """Submit → result of one task that runs ``true``, in ms."""
    from benchmarks.floor_app import TASK, app

    with timed() as elapsed_s:
        app.send_task(TASK, kwargs={"command": ["true"]}).get(timeout=30)
        return elapsed_s() * 1000


def many_s(jobs: int) -> float:
    from benchmarks.floor_app import TASK, app

    with timed() as elapsed_s:
        sent = [app.send_task(TASK, kwargs={"command": ["true"]}) for _ in range(jobs)]
        for result in sent:
            result.get(timeout=300)
        return elapsed_s()


@contextmanager
def floor_api() -> Iterator[str]:
    """The floor endpoint under uvicorn with ``trainq api``'s process count; its URL."""
    from trainq.config import get_settings
    from trainq.testing import free_port, serves, wait_until

    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", f"{APP}:create_api", "--factory",
            "--workers", str(get_settings().api_workers), "--port", str(port),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    with (_cluster.STATE / "floor-api.log").open("ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=ROOT.parent, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: serves(f"{url}/openapi.json"), 30, "the floor API", interval_s=0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()

    from benchmarks.floor_app import TASK, app
    from benchmarks.many import bare
    from benchmarks.submit import submit_rate

    with _cluster.redis_server():
        with floor_workers(1):
            for _ in range(3):
                run_once()
            latency = [run_once() for _ in range(args.runs)]
        with floor_workers(2):
            many_s(50)
            walls = interleave(1, {"celery": lambda: many_s(args.jobs),
                                   "bare": lambda: bare(args.jobs, 2)})  # fmt: skip
        body = json.dumps({"command": ["true"]}).encode()
        headers = {"Content-Type": "application/json"}
        with floor_api() as url:
            rates = interleave(
                BATCHES,
                {
                    "api": lambda: post_rate(
                        f"{url}/train", headers, body, requests=2000, clients=API_CLIENTS
                    ),
                    "bare": lambda: submit_rate(
                        lambda: app.send_task(TASK, kwargs={"command": ["true"]}), 2000
                    ),
                },
            )
    per_task_ms = {name: s[0] * 2 / args.jobs * 1000 for name, s in walls.items()}
    report(
        "floors",
        [
            Figure(
                "Celery alone: submit → result of a task that runs `true`, 1 prefork worker, p50",
                "ms",
                statistics.median(latency),
                None,
                "",
            ),
            Figure("Celery alone: the same, p95", "ms", percentile(latency, 95), None, ""),
            Figure(
                f"Celery alone: {args.jobs} such tasks through 2 prefork workers, time per "
                "task and worker (baseline: bare subprocess, as in many)",
                "ms",
                per_task_ms["celery"],
                per_task_ms["bare"],
                "",
            ),
            Figure(
                f"FastAPI alone: a validated body sent as the task, {API_CLIENTS} connections "
                "(median of batches; baseline: bare Celery send_task)",
                "jobs/s",
                statistics.median(rates["api"]),
                statistics.median(rates["bare"]),
                "",
            ),
        ],
    )


if __name__ == "__main__":
    main()
