"""A job's live data for its page through a real API server, Redis and worker: its
metric series (GET /train/{id}/metrics) and its events (GET /train/{id}/events: the
record, points and console lines pushed as they change, until the job ends)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.ui_api import COOKIE, Api, start_api
from tests.harness import PREFIX, Worker, wait_until
from trainq.config import Settings

pytestmark = pytest.mark.e2e

# Prints epoch 1, waits for the test's go-ahead (a file), then epochs 2 and 3.
PROGRAM = """
import json, os, sys, time
go = sys.argv[1]
def progress(epoch):
    print(json.dumps({"trainq": "progress", "epoch": epoch, "epochs": 3,
                      "loss": 1.0 / epoch, "accuracy": 0.25 * epoch, "phase": "train"}),
          flush=True)
progress(1)
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
progress(2)
progress(3)
"""


@pytest.fixture(scope="module")
def api(
    redis_server: str, worker: Worker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """An API server on the worker's cluster (its key prefix and queue)."""
    folder = tmp_path_factory.mktemp("events-api")
    server, api = start_api(
        redis_server, folder, ["alice"], TRAINQ_KEY_PREFIX=PREFIX, TRAINQ_QUEUE=Settings().queue
    )
    yield api
    server.stop()


@pytest.mark.timeout(180)
def test_a_jobs_metrics_gain_its_progress_points_while_it_runs(api: Api, tmp_path: Path) -> None:
    go = tmp_path / "go"
    started = time.time()
    cookie, _ = api.session("alice")
    headers = {"Authorization": f"Bearer {api.tokens['alice']}"}
    spec = {"command": [sys.executable, "-c", PROGRAM, str(go)], "name": "ui-metrics"}
    submitted = api.call("POST", "/train", json=spec, headers=headers)
    assert submitted.status_code == 202, submitted.text
    path = f"/train/{submitted.json()['id']}/metrics"

    def first_point() -> dict[str, Any] | None:
        got: dict[str, Any] = api.call("GET", path, cookie).json()
        return got if got["points"] else None

    first = wait_until(first_point, 90, "the job's first metric point")
    go.touch()
    assert first is not None
    assert [p["epoch"] for p in first["points"]] == [1]
    point = first["points"][0]
    assert set(point) == {"epoch", "epochs", "loss", "accuracy", "attempt", "ts"}
    assert (point["loss"], point["accuracy"], point["attempt"]) == (1.0, 0.25, 1)
    assert started <= point["ts"] <= time.time()

    def finished() -> bool:
        job = api.call("GET", path.removesuffix("/metrics"), headers=headers).json()
        return bool(job["status"] in ("succeeded", "failed"))

    wait_until(finished, 90, "the job to finish")
    newer = api.call("GET", path, cookie, params={"after": first["last"]}).json()
    assert [(p["epoch"], p["accuracy"]) for p in newer["points"]] == [(2, 0.5), (3, 0.75)]
    whole = api.call("GET", path, headers=headers).json()  # a token reads it too
    assert [p["epoch"] for p in whole["points"]] == [1, 2, 3]
    assert whole["last"] == newer["last"]
    nothing = api.call("GET", path, cookie, params={"after": newer["last"]}).json()
    assert nothing == {"points": [], "last": newer["last"]}
    assert api.call("GET", path, cookie, params={"after": "junk"}).status_code == 422


class Follower(threading.Thread):
    """A page's event stream, read in a thread: the (event, data) pairs so far."""

    def __init__(self, url: str, cookie: str) -> None:
        super().__init__(daemon=True)
        self.url, self.cookie = url, cookie
        self.seen: list[tuple[str, Any]] = []
        self.status = 0
        self.start()

    def run(self) -> None:
        headers = {"Cookie": f"{COOKIE}={self.cookie}", "Accept": "text/event-stream"}
        with httpx.stream("GET", self.url, headers=headers, timeout=60) as answer:
            self.status = answer.status_code
            name = ""
            for line in answer.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.seen.append((name, json.loads(line.removeprefix("data: "))))

    def named(self, name: str) -> list[Any]:
        return [data for event, data in list(self.seen) if event == name]


@pytest.mark.timeout(180)
def test_a_page_following_a_job_gets_its_record_points_and_lines_as_they_come(
    api: Api, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    cookie, _ = api.session("alice")
    headers = {"Authorization": f"Bearer {api.tokens['alice']}"}
    spec = {"command": [sys.executable, "-c", PROGRAM, str(go)], "name": "ui-events"}
    submitted = api.call("POST", "/train", json=spec, headers=headers)
    assert submitted.status_code == 202, submitted.text
    events = f"{api.url}/train/{submitted.json()['id']}/events"
    page = Follower(events, cookie)

    def points() -> list[int]:
        snapshots = [s["points"] for s in page.named("snapshot")]
        return [p["epoch"] for batch in snapshots + page.named("points") for p in batch]

    wait_until(lambda: points() == [1], 90, "epoch 1's point on the stream")
    running = [job["status"] for job in page.named("job")] + [
        s["job"]["status"] for s in page.named("snapshot")
    ]
    go.touch()
    page.join(90)
    late = Follower(events, cookie)  # after the end: everything at once, then the end
    late.join(30)

    assert page.status == 200 and not page.is_alive()
    names = [name for name, _ in page.seen]
    assert names[0] == "snapshot" and names[-1] == "end" and names.count("snapshot") == 1
    assert page.seen[-1][1] == {"status": "succeeded"}
    assert "running" in running
    assert points() == [1, 2, 3]  # each point once, in order
    printed = [line["line"] for s in page.named("snapshot") for line in s["lines"]]
    printed += [line["line"] for batch in page.named("lines") for line in batch]
    assert [json.loads(text)["epoch"] for text in printed if '"progress"' in text] == [1, 2, 3]
    assert page.named("job")[-1]["status"] == "succeeded"
    assert [name for name, _ in late.seen] == ["snapshot", "end"]
    snapshot = late.named("snapshot")[0]
    assert [p["epoch"] for p in snapshot["points"]] == [1, 2, 3]
    assert snapshot["job"]["status"] == "succeeded"
