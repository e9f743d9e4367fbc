"""Log collection cost: a container printing N lines as fast as it can.

Bare: the same image and command run with the docker SDK (``containers.run`` then
``wait``), nobody reading its output. trainq: the job through a worker, which
follows, stores and streams every line. Figures: the container's own run time
(the engine's StartedAt → FinishedAt) with trainq against bare (goal: at most 5 %
longer), the same at a realistic rate (RATE lines/s for RATE_S s, paced: at most 2 %
longer; it only grows when the reader makes writing block), lines stored per
second, whether ``trainq logs JOB`` gives back every line in order, and the worker's
CPU seconds per million lines (its main process and pool child: stable where wall time
on a shared machine is not; the job's container is not in the worker's session).

Run alone: .venv/bin/python -m benchmarks.logs [--lines N] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, interleave, report
from benchmarks.procs import session_cpu_s

# The same lines at a realistic rate: RATE lines/s, paced to a schedule, so that the
# run time only grows when writing a line blocks (the log's reader falls behind).
PACED = (
    "import sys, time\nw = sys.stdout.write\nstart = time.monotonic()\n"
    "for i in range({n}):\n    w(f'line {{i}}\\n')\n"
    "    if i % 200 == 199:\n        pause = start + (i + 1) / {rate} - time.monotonic()\n"
    "        if pause > 0:\n            time.sleep(pause)\n"
)
RATE, RATE_S = 20_000, 30
T = TypeVar("T")
SPEW = "import sys\nw = sys.stdout.write\nfor i in range({n}):\n    w(f'line {{i}}\\n')\n"


def bare_run_s(image: str, command: list[str], follow_with_cli: bool = False) -> float:
    """The same container as trainq starts (env, init, log options), nobody reading it
    (or, as a reference, the docker CLI's own ``docker logs -f`` reading it)."""
    from docker.client import DockerClient
    from docker.types import LogConfig

    from trainq.config import get_settings
    from trainq.runtime.container import _run_time_s

    settings = get_settings()
    client = DockerClient.from_env()
    logs = {"max-size": settings.container_log_max_size,
            "max-file": str(settings.container_log_max_files)}  # fmt: skip
    container = client.containers.run(
        image, command, detach=True, init=True, environment={"PYTHONUNBUFFERED": "1"},
        log_config=LogConfig(type=LogConfig.types.JSON, config=logs),
    )  # fmt: skip
    try:
        if follow_with_cli:
            reader = ["docker", "logs", "-f", "-t", container.id]
            subprocess.run(reader, check=True, capture_output=True)
        container.wait()
        container.reload()
        ran = _run_time_s(container.attrs["State"])
    finally:
        container.remove(force=True)
        client.close()
    assert ran is not None
    return ran


def settled(run: Callable[[], T]) -> Callable[[], T]:
    """``run`` from a quiet disk: what the run before it left for the kernel to write
    back (a 1M-line job's log file alone is 157 MB) is written first, so that it slows
    neither variant (bare runs after trainq's took 2.8-3.9 s, alone 2.4-2.5 s)."""

    def call() -> T:
        os.sync()
        return run()

    return call


class Managed(NamedTuple):
    run_s: float  # the container's own run time
    stored_per_s: float
    complete: bool  # `trainq logs JOB` gave back every line, in order
    worker_cpu_s: float  # the worker's CPU (main process and pool child) while it ran


def via_trainq(command: list[str], lines: int, worker_pid: int) -> Managed:
    from trainq import connections, submit_training
    from trainq.testing import BIN

    cpu_before_s = session_cpu_s(worker_pid)
    job = submit_training.delay(command=command)
    job.get(timeout=900)
    worker_cpu_s = session_cpu_s(worker_pid) - cpu_before_s
    attempt = connections.records().get(job.id).attempts[0]
    assert attempt.run_s is not None and attempt.ended_at and attempt.started_at
    printed = subprocess.run(
        [str(BIN / "trainq"), "logs", job.id], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return Managed(
        attempt.run_s,
        lines / (attempt.ended_at - attempt.started_at),
        printed == [f"line {i}" for i in range(lines)],
        worker_cpu_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--paced-runs", type=int, default=2, help=f"pairs at {RATE} lines/s for {RATE_S} s"
    )
    args = parser.parse_args()

    from trainq.config import get_settings

    image = get_settings().default_image
    command = ["python3", "-c", SPEW.format(n=args.lines)]
    managed: list[Managed] = []

    def managed_run_s() -> float:
        managed.append(via_trainq(command, args.lines, worker_pid))
        return managed[-1].run_s

    with _cluster.cluster(workers=1, runtime="docker") as (worker,):
        assert worker.proc is not None
        worker_pid = worker.proc.pid
        runs = interleave(
            args.runs,
            {
                "bare": settled(lambda: bare_run_s(image, command)),
                "cli": settled(lambda: bare_run_s(image, command, follow_with_cli=True)),
                "trainq": settled(managed_run_s),
            },
        )
        paced_lines = RATE * RATE_S
        paced = ["python3", "-c", PACED.format(n=paced_lines, rate=RATE)]
        paced_runs = interleave(
            args.paced_runs,
            {
                "bare": settled(lambda: bare_run_s(image, paced)),
                "trainq": settled(lambda: via_trainq(paced, paced_lines, worker_pid).run_s),
            },
        )
    print(f"run times (s): {runs}; at {RATE} lines/s: {paced_runs}")
    bare_s = statistics.median(runs["bare"])
    report(
        "logs",
        [
            Figure(
                "container run time with trainq (median)",
                "s",
                statistics.median(runs["trainq"]),
                bare_s,
                "<= 1.05",  # issue 17: in every make bench
                goal_on="ratio",
            ),
            Figure(
                f"container run time with trainq at {RATE} lines/s for {RATE_S} s (median)",
                "s",
                statistics.median(paced_runs["trainq"]),
                statistics.median(paced_runs["bare"]),
                "<= 1.02",
                goal_on="ratio",
            ),
            Figure(
                "container run time with `docker logs -f` reading (reference, median)",
                "s",
                statistics.median(runs["cli"]),
                bare_s,
                "",
            ),
            Figure(
                "worker CPU per million lines captured (main process and pool child, median)",
                "CPU s",
                statistics.median(m.worker_cpu_s for m in managed) * 1e6 / args.lines,
                None,
                "<= 3",
            ),
            Figure(
                "lines stored per second (median)",
                "lines/s",
                statistics.median(m.stored_per_s for m in managed),
                None,
                "",
            ),
            Figure(
                f"runs where trainq logs gave all {args.lines} lines in order",
                "runs",
                sum(m.complete for m in managed),
                args.runs,
                "== 1",
                goal_on="ratio",
            ),
        ],
    )


if __name__ == "__main__":
    main()
