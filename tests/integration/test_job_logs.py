"""Job logs end to end: live follow from another process, search, caps, Flower progress."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import BIN, REPO, Worker, wait_until
from trainq import JobStatus, submit_training
from trainq.client import default_store
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
            arrived.put((line.rstrip("\n"), default_store().get(r.id).status))

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
    assert default_store().get(r.id).status == JobStatus.SUCCEEDED


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


def test_flower_shows_the_job_in_progress_state(docker_worker: Worker, tmp_path: Path) -> None:
    port = free_port()
    flower = subprocess.Popen(
        [str(BIN / "celery"), "-A", "trainq", "flower", f"--port={port}", "--address=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthcheck") is not None, 60, "Flower")
        slow = ["python3", "/app/train.py", "--epoch-sleep-s", "1.5"]
        r = submit_training.delay(epochs=4, command=slow)

        def in_progress() -> bool:
            # The task page's state badge (Flower's JSON API needs auth; the page does not).
            page = _get(f"http://127.0.0.1:{port}/task/{r.id}") or {}
            return ">PROGRESS</span>" in str(page.get("body", ""))

        wait_until(in_progress, 90, "Flower's task page to show PROGRESS", interval_s=0.3)
        assert r.get(timeout=120)["final_loss"] > 0
    finally:
        flower.terminate()
        flower.wait(20)


def _get(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            body = reply.read().decode()
    except OSError:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return {"body": body}
    return data if isinstance(data, dict) else {"body": body}
