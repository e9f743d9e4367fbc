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

    # On the worker's host: the file's lines up to its cap, then the stream's last ones;
    # the lines between (past the file's cap, trimmed from the stream) are counted.
    streamed = [line.line for line in stream.read(r.id)]
    local = trainq("logs", r.id)
    shown = local.stdout.splitlines()
    in_file = len(shown) - len(streamed)
    assert shown == [f"row {i}" for i in range(in_file)] + streamed and in_file > 1000
    assert streamed[-1] == "row 2999"
    assert f"[lines from: local file {job.log_path}, stream]" in local.stderr
    assert f"[lines missing: {3000 - len(shown)} of attempt 1:" in local.stderr
    records = [json.loads(line) for line in Path(job.log_path or "").read_text().splitlines()]
    assert [rec["event"] for rec in records if rec.get("event")] == [
        "attempt_started", "truncated", "attempt_ended",
    ]  # fmt: skip
    assert "3000 lines" in records[-1]["msg"]

    # From another host (no file): the same lines, the file's from the job's archive.
    Path(job.log_path or "").rename(tmp_path / "elsewhere.log")
    remote = trainq("logs", r.id)
    assert remote.stdout == local.stdout
    assert "[lines from: archive attempt 1, stream]" in remote.stderr
    assert f"[lines missing: {3000 - len(shown)} of attempt 1:" in remote.stderr
