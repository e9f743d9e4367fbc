"""Log caps: the Redis stream and the job file are capped, visibly (a worker of its own)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.harness import BIN, REPO, Worker
from trainq import connections, submit_training

pytestmark = pytest.mark.integration


def trainq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trainq"), *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def python(script: str) -> list[str]:
    return ["python3", "-c", script]


def test_caps_keep_a_visible_marker_and_every_line_stays_readable(
    redis_server: str, docker_engine: str, tmp_path: Path
) -> None:
    worker = Worker(
        "capped@testhost",
        tmp_path / "capped.log",
        {"TRAINQ_RUNTIME": "docker", "TRAINQ_LOG_STREAM_MAX_LINES": "100",
         "TRAINQ_JOB_LOG_MAX_BYTES": "400000"},
    )  # fmt: skip
    worker.start()
    try:
        r = submit_training.delay(command=python("for i in range(3000): print('row', i)"))
        r.get(timeout=90)
    finally:
        worker.stop()
    job = connections.records().get(r.id)
    stream = connections.log_stream()
    assert stream.dropped(r.id) > 2000  # the stream kept about its cap only

    # On the worker's host the file has the lines the stream dropped, up to its cap.
    local = trainq("logs", r.id)
    shown = local.stdout.splitlines()
    assert shown == [f"row {i}" for i in range(len(shown))] and len(shown) > 1000
    records = [json.loads(line) for line in Path(job.log_path or "").read_text().splitlines()]
    assert [rec["event"] for rec in records if rec.get("event")] == [
        "attempt_started", "truncated", "attempt_ended",
    ]  # fmt: skip
    assert "3000 lines" in records[-1]["msg"]

    # From another host (no file), the stream's tail and a marker saying what is missing.
    Path(job.log_path or "").rename(tmp_path / "elsewhere.log")
    remote = trainq("logs", r.id)
    tail = remote.stdout.splitlines()
    assert tail[-1] == "row 2999" and len(tail) < 3000
    assert "earlier lines were trimmed" in remote.stderr
