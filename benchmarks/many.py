"""Many jobs: 1,000 short jobs through 2 workers (process runtime) against bare subprocesses.

trainq: the jobs (``true``) submitted at once, run by 2 prefork workers, timed from
the first submit to the last job recorded succeeded. Bare: the same command run
1,000 times by 2 threads with ``subprocess.run``. Figure: time per job and worker
(wall time x workers / jobs), so value - baseline is trainq's mean overhead per job;
goal (issue 17): at most 5 ms.

Run alone: .venv/bin/python -m benchmarks.many [--jobs N] [--workers N]
"""

from __future__ import annotations

import argparse
import subprocess
from concurrent.futures import ThreadPoolExecutor

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, interleave, report, timed

COMMAND = ["true"]


def via_trainq(jobs: int) -> float:
    from trainq import JobStatus, connections, submit_training
    from trainq.testing import wait_until

    store = connections.records()
    done_before = store.count(JobStatus.SUCCEEDED)
    with timed() as elapsed_s:
        for _ in range(jobs):
            submit_training.delay(command=COMMAND)
        wait_until(
            lambda: store.count(JobStatus.SUCCEEDED) - done_before >= jobs,
            600,
            f"{jobs} jobs to succeed",
            interval_s=0.05,
        )
        return elapsed_s()


def bare(jobs: int, workers: int) -> float:
    with timed() as elapsed_s, ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: subprocess.run(COMMAND, check=True), range(jobs)))
        return elapsed_s()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with _cluster.cluster(workers=args.workers, runtime="process"):
        walls = interleave(
            1,
            {
                "trainq": lambda: via_trainq(args.jobs),
                "bare": lambda: bare(args.jobs, args.workers),
            },
        )
    per_job_ms = {name: s[0] * args.workers / args.jobs * 1000 for name, s in walls.items()}
    report(
        "many",
        [
            Figure(
                f"{args.jobs} jobs through {args.workers} workers: wall time",
                "s",
                walls["trainq"][0],
                walls["bare"][0],
                "",
            ),
            Figure(
                "time per job and worker (overhead: value - baseline)",
                "ms",
                per_job_ms["trainq"],
                per_job_ms["bare"],
                "<= 5",
                goal_on="overhead",
            ),
        ],
    )


if __name__ == "__main__":
    main()
