"""Idle cluster load: the Redis commands an idle cluster sends, per worker and second.

8 prefork workers (process runtime) on the private Redis, nobody submitting: their
Celery consumers, event heartbeats, registry heartbeats, reconcilers and the
admission loop (leader lease, passes). Counted with Redis's own ``INFO
commandstats`` (every command, those run inside scripts and transactions too) over
``--window-s`` seconds, less the benchmark's own two INFO calls; first on an empty
store, then after ``--jobs`` short jobs have run to the end (the idle load must not
grow with the history). Goals: <= 1.5 commands per idle worker and second, and the
same load after the jobs as before them (ratio <= 1.2).

Run alone: .venv/bin/python -m benchmarks.idle [--workers N] [--jobs N] [--window-s S]
"""

from __future__ import annotations

import argparse
import time

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, report

SETTLE_S = 15.0  # workers registered, a scheduler leader elected, first passes done


def commands() -> int:
    """Every command Redis has run so far (INFO commandstats), this call's INFO included."""
    from trainq import connections

    stats = connections.records().client.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


def idle_rate(workers: int, window_s: float) -> tuple[float, dict[str, int]]:
    """Commands per worker and second over ``window_s`` of nobody submitting, and the
    count per command."""
    from trainq import connections

    client = connections.records().client
    before_by = {name: int(e["calls"]) for name, e in client.info("commandstats").items()}
    before = sum(before_by.values())
    time.sleep(window_s)
    after_by = {name: int(e["calls"]) for name, e in client.info("commandstats").items()}
    total = sum(after_by.values()) - before - 1  # the second INFO counts itself
    by_command = {
        name.removeprefix("cmdstat_"): calls - before_by.get(name, 0)
        for name, calls in after_by.items()
        if calls - before_by.get(name, 0) > 0
    }
    return total / workers / window_s, by_command


def run_jobs(jobs: int) -> None:
    from trainq import JobStatus, connections, submit_training
    from trainq.testing import wait_until

    store = connections.records()
    for _ in range(jobs):
        submit_training.delay(command=["true"])
    wait_until(
        lambda: store.count(JobStatus.SUCCEEDED) >= jobs, 600, f"{jobs} jobs to succeed", 0.2
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=500, help="run before the second window")
    parser.add_argument("--window-s", type=float, default=30.0)
    args = parser.parse_args()

    with _cluster.cluster(args.workers, "process"):
        time.sleep(SETTLE_S)
        empty, empty_by = idle_rate(args.workers, args.window_s)
        run_jobs(args.jobs)
        time.sleep(SETTLE_S)
        after, after_by = idle_rate(args.workers, args.window_s)
    for name, by in (("empty store", empty_by), (f"after {args.jobs} jobs", after_by)):
        shown = ", ".join(f"{c} {n}" for c, n in sorted(by.items(), key=lambda kv: -kv[1]))
        print(f"idle, {name}: {shown}")
    report(
        "idle",
        [
            Figure(
                f"Redis commands per idle worker and second, {args.workers} workers, empty store",
                "commands/s",
                empty,
                None,
                "<= 1.5",
            ),
            Figure(
                f"Redis commands per idle worker and second, after {args.jobs} finished "
                "jobs (baseline: the same cluster before them)",
                "commands/s",
                after,
                empty,
                "<= 1.2",
                goal_on="ratio",
            ),
            Figure(
                f"Redis commands per idle worker and second, after {args.jobs} finished jobs",
                "commands/s",
                after,
                None,
                "<= 1.5",
            ),
        ],
    )


if __name__ == "__main__":
    main()
