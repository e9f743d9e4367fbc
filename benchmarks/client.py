"""A long-lived client: the RSS a Python script gains calling ``delay()`` 10,000 times.

Each variant runs in a fresh interpreter against the private Redis (no worker: what a
script that submits jobs all day keeps in memory, not what runs them): 200 warm-up
calls, then the RSS before and after ``--calls`` more. ``delay()`` with the fair
scheduler (the default: the job is recorded pending, the admission loop sends it),
with ``TRAINQ_SCHEDULER=fifo`` (sent at once, through Celery's ``apply_async``, whose
Redis result backend subscribes the process to each job's result channel), and the
baseline, Celery's bare ``send_task`` of the same task name and kwargs. Goal: growth
<= 20 MB for each ``delay()``.

Run alone: .venv/bin/python -m benchmarks.client [--calls N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.figures import Figure, report

WARM_UP = 200
MB = 1024 * 1024
VARIANTS = {
    "delay": {},
    "delay-fifo": {"TRAINQ_SCHEDULER": "fifo"},
    "send_task": {},
}


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(variant: str, calls: int) -> None:
    """In the fresh interpreter: make the calls, print the RSS before and after."""
    from trainq import submit_training
    from trainq.celery_app import TASK_NAME, app

    def call() -> None:
        if variant == "send_task":
            app.send_task(TASK_NAME, kwargs={"command": ["true"]})
        else:
            submit_training.delay(command=["true"])

    for _ in range(WARM_UP):
        call()
    before = rss_bytes()
    for _ in range(calls):
        call()
    print(json.dumps({"before": before, "after": rss_bytes()}))


def growth_bytes(variant: str, calls: int) -> int:
    env = {**os.environ, **VARIANTS[variant]}
    argv = [sys.executable, "-m", "benchmarks.client", "--child", variant, "--calls", str(calls)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=True)
    seen = json.loads(out.stdout.splitlines()[-1])
    return int(seen["after"]) - int(seen["before"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the parent's environment points it at the private Redis
        child(args.child, args.calls)
        return
    from benchmarks import cluster as _cluster  # before trainq: it points it at a private Redis

    with _cluster.redis_server():
        grown = {variant: growth_bytes(variant, args.calls) for variant in VARIANTS}
    bare = grown["send_task"] / MB
    report(
        "client",
        [
            Figure(
                f"RSS a script gains over {args.calls} submit_training.delay() (fair "
                "scheduler; baseline: bare send_task)",
                "MB",
                grown["delay"] / MB,
                bare,
                "<= 20",
            ),
            Figure(
                f"RSS a script gains over {args.calls} submit_training.delay() with "
                "TRAINQ_SCHEDULER=fifo (baseline: bare send_task)",
                "MB",
                grown["delay-fifo"] / MB,
                bare,
                "<= 20",
            ),
        ],
    )


if __name__ == "__main__":
    main()
