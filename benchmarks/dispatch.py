"""Dispatch latency: what trainq adds between a submit and a no-op job's start and end.

For each runtime, one worker and a no-op job (``true``), interleaved with its bare
baseline: the docker SDK's ``containers.run`` + ``wait`` of the same image, or a
bare ``subprocess`` of the same command. Two spans, from the moment of the call:
submit → started (trainq: the attempt's recorded start, taken right after the
runtime started it; bare: ``containers.run``/``Popen`` returned) and submit →
finished (trainq: the job's record written final; bare: ``wait`` returned).
Figures: p50 and p95 of each, in ms. Goals (issue 17), on the p50s: docker submit →
recorded finished at most 10 ms over bare run + wait; process submit → recorded
finished at most 5 ms in all; every other p50 at most 50 ms over its baseline.

Run alone: .venv/bin/python -m benchmarks.dispatch [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from typing import Literal, NamedTuple

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, interleave, percentile, report

WARM_UP_RUNS = 2
GOAL_OVERHEAD_MS = "<= 50"
# (runtime, span) -> (goal, what it is held against), where issue 17 asks more.
GOALS = {
    ("docker", "finished_ms"): ("<= 10", "overhead"),
    ("process", "finished_ms"): ("<= 5", "value"),
}


class Spans(NamedTuple):
    started_ms: float
    finished_ms: float


def via_trainq(command: list[str]) -> Spans:
    from trainq import connections, submit_training

    submitted = time.time()
    job = submit_training.delay(command=command)
    job.get(timeout=120)
    record = connections.records().get(job.id)
    started, finished = record.attempts[0].started_at, record.finished_at
    assert started is not None and finished is not None, record
    return Spans((started - submitted) * 1000, (finished - submitted) * 1000)


def bare_container(image: str, command: list[str]) -> Callable[[], Spans]:
    from docker.client import DockerClient

    client = DockerClient.from_env()

    def run() -> Spans:
        submitted = time.time()
        container = client.containers.run(image, command, detach=True)
        started = time.time()
        container.wait()
        finished = time.time()
        container.remove(force=True)
        return Spans((started - submitted) * 1000, (finished - submitted) * 1000)

    return run


def bare_process(command: list[str]) -> Spans:
    submitted = time.time()
    proc = subprocess.Popen(command)
    started = time.time()
    proc.wait()
    finished = time.time()
    return Spans((started - submitted) * 1000, (finished - submitted) * 1000)


def figures(runtime: str, trainq: list[Spans], bare: list[Spans]) -> list[Figure]:
    out = []
    for span, label in (("started_ms", "started"), ("finished_ms", "recorded finished")):
        for q in (50, 95):
            value = percentile([getattr(s, span) for s in trainq], q)
            baseline = percentile([getattr(s, span) for s in bare], q)
            goal, on = GOALS.get((runtime, span), (GOAL_OVERHEAD_MS, "overhead"))
            name = f"{runtime}: submit → {label}, p{q}"
            held: Literal["value", "overhead"] = "value" if on == "value" else "overhead"
            out.append(Figure(name, "ms", value, baseline, goal if q == 50 else "", held))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--command", default="true", help="the job (default: a no-op)")
    args = parser.parse_args()
    command = args.command.split()

    from trainq.config import get_settings

    results: list[Figure] = []
    bare_of: dict[str, Callable[[], Spans]] = {
        "docker": bare_container(get_settings().default_image, command),
        "process": lambda: bare_process(command),
    }
    with _cluster.redis_server():
        for runtime, bare in bare_of.items():
            with _cluster.worker_processes(1, runtime):
                variants = {"trainq": lambda: via_trainq(command), "bare": bare}
                interleave(WARM_UP_RUNS, variants)  # first jobs pay for imports and clients
                runs = interleave(args.runs, variants)
            results += figures(runtime, runs["trainq"], runs["bare"])
    report("dispatch", results)


if __name__ == "__main__":
    main()
