"""The brief's "40% fewer failed trainings", measured.

N jobs each meet a transient fault (a preemption: exit 75 after checkpointing) with
probability P on every attempt. The same jobs run once with trainq's retries
(max_retries=3) and once with retries off (max_retries=0); the figure is how many
fewer jobs fail with retries. User-error jobs (a Python exception) run alongside
with retries on, and must each have run exactly once.

Run alone: .venv/bin/python -m benchmarks.retry [--jobs N] [--fault-rate P]
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, report, timed

# Decides from the job id, attempt and seed (not from chance at run time) whether
# this attempt is preempted, so both runs meet the same faults.
FLAKY = """
import os, random, sys, json
job, attempt = os.environ["TRAINQ_JOB_ID"], os.environ["TRAINQ_ATTEMPT"]
key = os.environ["BENCH_KEY"]
if random.Random(f"{key}:{attempt}").random() < float(os.environ["BENCH_P"]):
    print("node preempted; checkpoint saved", flush=True)
    sys.exit(75)
print(json.dumps({"trainq": "progress", "epoch": 1, "epochs": 1, "loss": 0.1}))
"""
USER_BUG = "raise ValueError('the user made a mistake')"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--user-errors", type=int, default=10)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    args = parser.parse_args()

    from trainq import JobStatus, connections, submit_training
    from trainq.testing import wait_until

    def submit(retries: int, n: int, script: str) -> str:
        env = {"BENCH_KEY": f"job{n}", "BENCH_P": str(args.fault_rate)}
        command = [sys.executable, "-c", script]
        return str(submit_training.delay(command=command, env=env, max_retries=retries).id)

    with _cluster.cluster(workers=2, runtime="process"), timed() as elapsed_s:
        with_retries = [submit(3, n, FLAKY) for n in range(args.jobs)]
        without = [submit(0, n, FLAKY) for n in range(args.jobs)]
        bugs = [submit(3, n, USER_BUG) for n in range(args.user_errors)]
        store = connections.records()
        everything = with_retries + without + bugs

        def all_final() -> bool:
            return all(store.get(j).status.is_terminal for j in everything)

        wait_until(all_final, 600, "every benchmark job to end", interval_s=0.5)
        took_s = elapsed_s()
        records = {j: store.get(j) for j in everything}

    def failed(ids: list[str]) -> int:
        return sum(records[j].status != JobStatus.SUCCEEDED for j in ids)

    failed_on, failed_off = failed(with_retries), failed(without)
    bug_attempts = [len(records[j].attempts) for j in bugs]
    attempts_on = sum(len(records[j].attempts) for j in with_retries)
    figures = [
        Figure(
            "success rate with retries",
            "fraction",
            1 - failed_on / args.jobs,
            1 - failed_off / args.jobs,
            ">= 1.0",
            goal_on="ratio",
        ),
        Figure(
            "failed trainings, fewer with retries",
            "fraction",
            1 - failed_on / failed_off if failed_off else 0.0,
            None,
            ">= 0.40",
        ),
        Figure(
            "attempts per flaky job with retries", "attempts", attempts_on / args.jobs, None, "<= 4"
        ),
        Figure("attempts per user-error job", "attempts", max(bug_attempts), None, "== 1"),
        Figure("benchmark wall time", "s", took_s, None, ""),
    ]
    path = report("retry", figures)
    print(f"fault rate {args.fault_rate}: {failed_off}/{args.jobs} failed without retries, "
          f"{failed_on}/{args.jobs} with; written to {path}")  # fmt: skip


if __name__ == "__main__":
    main()
