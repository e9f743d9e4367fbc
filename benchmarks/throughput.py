"""Training throughput: samples/s of train.py under trainq against the same run bare.

The same image and command (train.py with a fixed number of samples and epochs)
run by trainq on a worker and by hand, interleaved: for the Docker runtime the bare
run is the docker SDK's ``containers.run`` of the same image, for the process
runtime a bare ``subprocess.run`` of the same command. A run's rate is the median
of its epochs' ``samples_per_s`` after the first (which pays for warm-up); the
figure is the median over runs. Goal: >= 98% of bare.

Run alone: .venv/bin/python -m benchmarks.throughput [--runs N] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, interleave, report

EPOCHS = 4
Command = Callable[[], list[str]]  # a fresh command per run: a fresh checkpoint dir


def samples_per_s(lines: Iterable[str]) -> list[float]:
    """The rates of the run's epochs after the first, from its progress lines."""
    rates = []
    for line in lines:
        if line.startswith('{"trainq": "progress"'):
            progress = json.loads(line)
            if progress["epoch"] > 1:
                rates.append(float(progress["samples_per_s"]))
    assert rates, "the run printed no progress after its first epoch"
    return rates


def via_trainq(command: Command) -> list[float]:
    from trainq import connections, submit_training

    job = submit_training.delay(command=command(), epochs=EPOCHS)
    job.get(timeout=300)
    log_path = connections.records().get(job.id).log_path
    assert log_path is not None
    with open(log_path, encoding="utf-8") as log:
        return samples_per_s(json.loads(entry).get("msg", "") for entry in log)


def bare_container(image: str, command: Command) -> Callable[[], list[float]]:
    from docker.client import DockerClient

    client = DockerClient.from_env()

    def run() -> list[float]:
        container = client.containers.run(image, command(), detach=True)
        try:
            container.wait()
            return samples_per_s(container.logs().decode().splitlines())
        finally:
            container.remove(force=True)

    return run


def bare_process(command: Command) -> list[float]:
    done = subprocess.run(command(), capture_output=True, text=True, check=True)
    return samples_per_s(done.stdout.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=30_000)
    args = parser.parse_args()

    from trainq.config import get_settings

    settings = get_settings()
    train = ["--epochs", str(EPOCHS), "--samples", str(args.samples)]
    scratch = Path(tempfile.mkdtemp(prefix="trainq-bench-throughput-"))

    def in_container() -> list[str]:  # the container's own /tmp is fresh every run
        return ["python3", "/app/train.py", *train, "--checkpoint-dir", "/tmp/ckpt"]

    def as_process() -> list[str]:
        fresh = tempfile.mkdtemp(dir=scratch)
        python, script = settings.process_python, str(settings.train_script)
        return [python, script, *train, "--checkpoint-dir", fresh]

    variants: dict[str, dict[str, Callable[[], list[float]]]] = {
        "docker": {
            "trainq": partial(via_trainq, in_container),
            "bare": bare_container(settings.default_image, in_container),
        },
        "process": {
            "trainq": partial(via_trainq, as_process),
            "bare": partial(bare_process, as_process),
        },
    }
    figures = []
    with _cluster.redis_server():
        for runtime, pair in variants.items():
            with _cluster.worker_processes(1, runtime):
                runs = interleave(args.runs, pair)
            epochs = {name: [rate for run in rates for rate in run] for name, rates in runs.items()}
            figures.append(
                Figure(
                    f"{runtime}: train.py samples/s with trainq (median of epochs)",
                    "samples/s",
                    statistics.median(epochs["trainq"]),
                    statistics.median(epochs["bare"]),
                    ">= 0.98",
                    goal_on="ratio",
                )
            )
            print(f"{runtime}: trainq {runs['trainq']}, bare {runs['bare']}", flush=True)
    report("throughput", figures)


if __name__ == "__main__":
    main()
