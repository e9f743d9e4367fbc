"""Job logs end to end: live follow from another process, search, caps, Flower progress."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.harness import BIN, REPO, Worker, wait_until
from trainq import JobStatus, connections, submit_training
from trainq.testing import free_port

pytestmark = pytest.mark.integration

Workers = Callable[[str], Worker]


def trainq(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trainq"), *args], capture_output=True, text=True, cwd=REPO, timeout=timeout_s
    )


def python(script: str) -> list[str]:
    return ["python3", "-c", script]


def test_logs_follow_from_another_process_shows_lines_live_and_exits_at_the_end(
    docker_worker: Worker,
) -> None:
    ticks = (
        "import time\nfor i in range(8):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.5)"
    )
    r = submit_training.delay(command=python(ticks))
    follower = subprocess.Popen(
        [str(BIN / "trainq"), "logs", r.id, "-f"], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    arrived: queue.Queue[tuple[str, JobStatus]] = queue.Queue()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            arrived.put((line.rstrip("\n"), connections.records().get(r.id).status))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first, status_then = arrived.get(timeout=60)

    assert first == "tick 0"
    assert status_then == JobStatus.RUNNING  # shown while the job still ran
    assert follower.wait(60) == 0  # and it exits by itself once the job ended
    reader.join(10)
    assert follower.stdout is not None
    follower.stdout.close()
    rest = [arrived.get_nowait()[0] for _ in range(arrived.qsize())]
    assert [first, *rest] == [f"tick {i}" for i in range(8)]
    assert connections.records().get(r.id).status == JobStatus.SUCCEEDED


def test_search_across_jobs_names_job_and_attempt_and_filters_work(
    docker_worker: Worker,
) -> None:
    token = f"needle-{time.monotonic_ns()}"
    flaky = (
        "import os, sys\n"
        "n = os.environ['TRAINQ_ATTEMPT']\n"
        f"print('{token} from attempt', n)\n"
        "print('plain line of attempt', n)\n"
        "sys.exit(75 if n == '1' else 0)\n"
    )
    retried = submit_training.delay(command=python(flaky), max_retries=1)
    once = submit_training.delay(command=python(f"print('{token} once')"))
    retried.get(timeout=90)
    once.get(timeout=90)

    found = trainq("logs", "--grep", token)
    assert found.returncode == 0, found.stderr
    assert sorted(found.stdout.splitlines()) == sorted(
        [
            f"{retried.id} [1] {token} from attempt 1",
            f"{retried.id} [2] {token} from attempt 2",
            f"{once.id} [1] {token} once",
        ]
    )
    second = trainq("logs", retried.id, "--attempt", "2")
    assert second.stdout.splitlines() == [f"{token} from attempt 2", "plain line of attempt 2"]
    last = trainq("logs", retried.id, "--tail", "1", "--json")
    (entry,) = [json.loads(line) for line in last.stdout.splitlines()]
    assert set(entry) == {"ts", "level", "component", "job_id", "attempt", "msg"}
    assert (entry["job_id"], entry["attempt"], entry["msg"]) == (
        retried.id, 2, "plain line of attempt 2",
    )  # fmt: skip
    future = trainq("logs", retried.id, "--since", "2999-01-01T00:00:00Z")
    assert future.stdout == ""
    bad = trainq("logs", retried.id, "--since", "yesterday-ish")
    assert bad.returncode == 2 and "since" in bad.stderr


def test_flower_needs_its_password_and_shows_the_job_in_progress(
    docker_worker: Worker, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "TRAINQ_FLOWER_BASIC_AUTH": "admin:flower-pw"}
    flower = subprocess.Popen(
        [str(BIN / "trainq"), "flower", f"--port={port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    auth = ("admin", "flower-pw")
    try:
        wait_until(lambda: _status(f"{base}/healthcheck") == 200, 60, "Flower")
        slow = ["python3", "/app/train.py", "--epoch-sleep-s", "1.5"]
        r = submit_training.delay(epochs=4, command=slow)

        def in_progress() -> bool:
            reply = httpx.get(f"{base}/api/task/info/{r.id}", auth=auth, timeout=2)
            return reply.status_code == 200 and reply.json().get("state") == "PROGRESS"

        wait_until(in_progress, 90, "Flower to show the task in PROGRESS", interval_s=0.3)
        assert _status(f"{base}/api/task/info/{r.id}") == 401
        assert _status(f"{base}/task/{r.id}") == 401
        assert (
            httpx.get(f"{base}/api/workers", auth=("admin", "wrong"), timeout=5).status_code == 401
        )
        assert r.get(timeout=120)["final_loss"] > 0
        metrics = httpx.get(f"{base}/metrics", auth=auth, timeout=5).text
        # Runtime buckets fit hours-long jobs, not Prometheus' default 10 s top bucket.
        assert 'flower_task_runtime_seconds_bucket{le="86400.0"' in metrics
    finally:
        flower.terminate()
        flower.wait(20)


def test_flower_refuses_to_start_without_a_password(redis_server: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRAINQ_FLOWER_BASIC_AUTH"}
    started = subprocess.run(
        [str(BIN / "trainq"), "flower", f"--port={free_port()}"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False,
    )  # fmt: skip

    assert started.returncode == 2
    assert "TRAINQ_FLOWER_BASIC_AUTH" in started.stderr


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None
