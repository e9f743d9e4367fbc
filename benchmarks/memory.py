"""Memory: a worker's RSS idle and while supervising a job; Redis bytes per job.

Worker: one prefork worker (process runtime, concurrency 1); RSS summed over its
main process and pool children (its session; the job runs in a session of its
own and is not counted), idle after a first job (baseline: a bare Celery worker,
:mod:`benchmarks.bare_app`, prefork with one child on the same Redis, measured the
same way after one no-op task; goal: at most 1.1 times its RSS), and at its peak
while it supervises a 3 s job (baseline: idle). Redis: ``used_memory`` before and after
N jobs queued where no worker consumes (record, indexes, broker message), and
before and after N short jobs run to the end (record with its attempt, log
stream, result, lease fence), per job; the keys of one finished job are listed.

Run alone: .venv/bin/python -m benchmarks.memory [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
from contextlib import AbstractContextManager
from pathlib import Path

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, report

PARKED = "bench-parked"  # a queue no worker consumes
MB = 1024 * 1024
# The bare worker's Redis database: the private server's, apart from trainq's keys.
BARE_REDIS_URL = f"redis://127.0.0.1:{_cluster.PORT}/1"
BARE_URL_ENV = "BARE_BROKER_URL"  # how benchmarks.bare_app is told it (not imported here)
BARE_NAME = "bare@benchhost"


def session_rss_bytes(leader: int) -> int:
    """RSS of every process in ``leader``'s session."""
    session = os.getsid(leader)
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def peak_rss_bytes(leader: int, until: threading.Event, interval_s: float = 0.05) -> int:
    peak = 0
    while not until.wait(interval_s):
        peak = max(peak, session_rss_bytes(leader))
    return peak


def bare_worker() -> AbstractContextManager[list[subprocess.Popen[bytes]]]:
    """A bare Celery worker (prefork, one child) in a session of its own; stopped after."""
    return _cluster.celery_workers(
        "benchmarks.bare_app", [BARE_NAME], ["--loglevel=INFO"], {BARE_URL_ENV: BARE_REDIS_URL}
    )


def bare_idle_rss_bytes() -> int:
    """A bare Celery worker's RSS (its session), idle after running one no-op task."""
    from celery import Celery

    from trainq.testing import wait_until

    client = Celery("bare", broker=BARE_REDIS_URL, backend=BARE_REDIS_URL)
    try:
        with bare_worker() as (proc,):
            result = client.send_task("bare.noop")

            def done() -> bool:
                if proc.poll() is not None:
                    log = _cluster.worker_log(BARE_NAME).read_text(errors="replace")
                    raise RuntimeError(f"bare worker exited with {proc.returncode}: {log[-2000:]}")
                return bool(result.ready())

            wait_until(done, 60, "the bare worker's task")
            result.get(timeout=5)  # raises what the task raised
            return session_rss_bytes(proc.pid)
    finally:
        client.close()


def redis_bytes() -> int:
    from trainq import connections

    return int(connections.records().client.info("memory")["used_memory"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()

    from trainq import JobStatus, connections, submit_training
    from trainq.testing import wait_until

    store = connections.records()
    sleeper = ["python3", "-c", "import time; time.sleep(3)"]
    with _cluster.cluster(workers=1, runtime="process") as (worker,):
        assert worker.proc is not None
        leader = worker.proc.pid
        submit_training.delay(command=["true"]).get(timeout=60)
        idle = session_rss_bytes(leader)
        bare = bare_idle_rss_bytes()

        running = submit_training.delay(command=sleeper)
        wait_until(lambda: store.get(running.id).status == JobStatus.RUNNING, 30, "the job")
        finished = threading.Event()

        def wait_for_it() -> None:
            running.get(timeout=60)
            finished.set()

        threading.Thread(target=wait_for_it, daemon=True).start()
        supervising = peak_rss_bytes(leader, finished)

        before = redis_bytes()
        for _ in range(args.jobs):
            submit_training.apply_async(kwargs={"command": ["true"]}, queue=PARKED)
        queued = (redis_bytes() - before) / args.jobs

        before = redis_bytes()
        done_before = store.count(JobStatus.SUCCEEDED)
        last = ""
        for _ in range(args.jobs):
            last = submit_training.delay(command=["true"]).id
        wait_until(
            lambda: store.count(JobStatus.SUCCEEDED) - done_before >= args.jobs, 300, "the jobs"
        )
        wait_until(lambda: submit_training.AsyncResult(last).ready(), 30, "the last result")
        ended = (redis_bytes() - before) / args.jobs
        keys = sorted(store.client.scan_iter(f"*{last}*"))
        sizes = {key: store.client.memory_usage(key) for key in keys}
    report(
        "memory",
        [
            Figure("worker RSS, idle", "MB", idle / MB, bare / MB, "<= 1.1", goal_on="ratio"),
            Figure("worker RSS, supervising one job (peak)", "MB", supervising / MB, idle / MB, ""),
            Figure("Redis bytes per queued job", "bytes", queued, None, ""),
            Figure("Redis bytes per finished job", "bytes", ended, None, ""),
        ],
    )
    for key, size in sizes.items():
        print(f"  {size} bytes: {key}")


if __name__ == "__main__":
    main()
