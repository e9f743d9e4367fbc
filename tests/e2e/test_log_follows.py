"""Many ``/logs?follow=true`` streams of a quiet job hold no threadpool thread: the
API's other calls still answer at once (every sync route shares that pool)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.ui_api import ADMIN, start_api
from tests.harness import wait_until

pytestmark = pytest.mark.e2e

FOLLOWS = 60  # more than the 40 threads of Starlette's threadpool


@pytest.mark.timeout(120)
def test_sixty_follows_of_a_quiet_job_leave_the_other_calls_answering(
    redis_server: str, tmp_path: Path
) -> None:
    # One API process, so all the follows land on one threadpool.
    server, api = start_api(redis_server, tmp_path, [], TRAINQ_API_WORKERS="1")
    stop = threading.Event()
    opened: list[int] = []

    def follow(job_id: str) -> None:
        url = f"{api.url}/train/{job_id}/logs"
        try:
            with httpx.stream(
                "GET", url, params={"follow": "true"}, headers=ADMIN, timeout=60
            ) as s:
                opened.append(s.status_code)
                for _ in s.iter_raw():  # nothing comes but keep-alives: the job never starts
                    if stop.is_set():
                        return
        except httpx.TransportError:
            if not stop.is_set():  # the server stopping at the end cuts the streams
                raise

    try:
        queued = api.call("POST", "/train", json={"epochs": 1}, headers=ADMIN).json()["id"]
        follows = [
            threading.Thread(target=follow, args=(queued,), daemon=True) for _ in range(FOLLOWS)
        ]
        for thread in follows:
            thread.start()
        wait_until(lambda: len(opened) == FOLLOWS, 60, f"{FOLLOWS} follows to start")
        time.sleep(2)  # several of the follows' polls of their stream
        slowest_s = 0.0
        for _ in range(5):
            started = time.monotonic()
            answer = api.call("GET", f"/train/{queued}", headers=ADMIN)
            slowest_s = max(slowest_s, time.monotonic() - started)
            assert answer.status_code == 200, answer.text
    finally:
        stop.set()
        server.stop()

    assert opened == [200] * FOLLOWS
    assert slowest_s < 2.0  # with a thread held per follow it waited ~15 s (the keep-alive)
