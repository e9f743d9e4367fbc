"""Job logs end to end: live follow from another process, search, caps, Flower progress."""

from __future__ import annotations

import asyncio
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
from trainq.api.app import create_app
from trainq.artifacts.logs import archive_log
from trainq.artifacts.store import ArtifactStore
from trainq.config import Settings
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.logs.writer import JobLog
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


def test_line_indices_round_trip_through_the_redis_append_and_go_on_after_a_resume(
    redis_server: str, tmp_path: Path
) -> None:
    job_id = f"index-{time.monotonic_ns()}"
    stream = connections.log_stream()
    path = tmp_path / f"{job_id}.log"
    first = [f"line {n}" for n in range(250)]  # several entries of LINES_PER_ENTRY
    with JobLog(path, job_id, 1, stream=stream, tail_lines=5, max_bytes=10**7) as log:
        for line in first[:130]:
            log.write(line)
        log.flush()
    mark = stream.capture(job_id)
    assert mark is not None and mark.lines == 130
    # A supervisor that re-attaches to attempt 1 goes on from the mark.
    with JobLog(path, job_id, 1, stream=stream, tail_lines=5, max_bytes=10**7, resume=mark) as log:
        for line in first[130:]:
            log.write(line)
    with JobLog(path, job_id, 2, stream=stream, tail_lines=5, max_bytes=10**7) as log:
        log.write("second attempt")

    got = [(line.attempt, line.index, line.line) for line in stream.read(job_id)]

    assert got == [(1, n, text) for n, text in enumerate(first)] + [(2, 0, "second attempt")]
    assert [line.index for line in stream.follow(job_id, "0-0", 0)][-3:] == [248, 249, 0]


def test_entries_written_before_line_indices_read_back_without_one(redis_server: str) -> None:
    job_id = f"old-{time.monotonic_ns()}"
    key = connections.keys().log(job_id)
    connections.client().xadd(key, {"a": 1, "t": 1.5, "n": 2, "o": 0, "l": "one\ntwo"})

    got = list(connections.log_stream().read(job_id))

    assert [(line.line, line.index) for line in got] == [("one", None), ("two", None)]
    connections.client().delete(key)


def _trimmed_job_with_an_archive(folder: Path) -> tuple[str, list[str], Path]:
    """A job of one attempt whose stream keeps only its last entry, whose log file is on
    another host (not here), and whose archive in the store at ``folder / "store"``
    lacks the attempt's last 50 lines; its id, its lines and the store."""
    job_id = f"archived-{time.monotonic_ns()}"
    stream = connections.log_stream()
    worker_log = folder / "worker-host" / f"{job_id}.log"
    lines = [f"line {n} ✓" for n in range(300)]
    with JobLog(worker_log, job_id, 1, stream=stream, tail_lines=5, max_bytes=10**7) as log:
        for line in lines:
            log.write(line)
    connections.client().xtrim(connections.keys().log(job_id), maxlen=1, approximate=False)
    assert 200 <= stream.dropped(job_id) <= 250  # the last entry: at most 100 lines
    # What the worker archived before its host died: the first 250 lines.
    archived = folder / "archived.log"
    kept = worker_log.read_text(encoding="utf-8").splitlines(keepends=True)[: 1 + 250]
    archived.write_text("".join(kept), encoding="utf-8")
    store = folder / "store"
    assert archive_log(ArtifactStore(store.as_uri()), job_id, 1, archived) is not None
    record = JobRecord(
        id=job_id,
        spec=JobSpec(),
        log_path=str(folder / "this-host" / f"{job_id}.log"),  # not on this host
        attempts=[Attempt(number=1)],
    )
    assert connections.records().create(record)
    return job_id, lines, store


def test_logs_of_a_trimmed_job_join_its_archive_and_stream_each_line_once(
    redis_server: str, tmp_path: Path
) -> None:
    job_id, lines, store = _trimmed_job_with_an_archive(tmp_path)

    shown = _logs_with_store(job_id, store.as_uri())

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == lines
    assert "[lines from: archive attempt 1, stream]" in shown.stderr
    assert "missing" not in shown.stderr


def test_logs_when_the_store_fails_show_what_the_stream_holds_and_say_why(
    redis_server: str, tmp_path: Path
) -> None:
    job_id, lines, _ = _trimmed_job_with_an_archive(tmp_path)
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("a file where the store should be")
    dropped = connections.log_stream().dropped(job_id)

    shown = _logs_with_store(job_id, not_a_folder.as_uri())

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == lines[dropped:]
    failed = [line for line in shown.stderr.splitlines() if "artifact store" in line]
    assert len(failed) == 1 and str(not_a_folder) in failed[0]
    assert f"[lines missing: {dropped} of attempt 1:" in shown.stderr


def test_the_logs_route_joins_the_archive_and_names_the_sources(
    redis_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, lines, store = _trimmed_job_with_an_archive(tmp_path)
    monkeypatch.setattr(connections, "artifact_store", lambda: ArtifactStore(store.as_uri()))
    app = create_app(Settings(api_tokens="t"))  # type: ignore[arg-type]

    async def get(params: dict[str, int]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            url = f"/train/{job_id}/logs"
            return await api.get(url, params=params, headers={"Authorization": "Bearer t"})

    text = asyncio.run(get({}))
    tail = asyncio.run(get({"tail": 5}))

    assert text.status_code == 200, text.text
    assert text.text.splitlines() == lines
    assert text.headers["X-Trainq-Log-Sources"] == "archive attempt 1, stream"
    assert "X-Trainq-Log-Missing" not in text.headers
    assert tail.text.splitlines() == lines[-5:]
    assert tail.headers["X-Trainq-Log-Sources"] == "stream"


def _logs_with_store(job_id: str, store_url: str) -> subprocess.CompletedProcess[str]:
    """``trainq logs JOB`` in another process, with ``store_url`` as its artifact store."""
    return subprocess.run(
        [str(BIN / "trainq"), "logs", job_id],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "TRAINQ_ARTIFACT_URL": store_url},
    )
