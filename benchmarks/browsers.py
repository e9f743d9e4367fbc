"""Simulated browsers on a job's page (``/ui/jobs/{id}``), for ``benchmarks.ui``.

They run in a process of their own (``python -m benchmarks.browsers URL``) scheduled
``SCHED_IDLE``: real browsers run on other machines, so these take only a core that
would idle, never one the job or the API wants; the process's CPU while watching is
part of the result. Each browser logs in (a session and connections of its own). On
``watch page JOB`` (a line on stdin) every browser opens the job's page (its HTML,
styles and scripts) at a random moment within 2 s and does what
trainq/ui/static/job.js does: it follows ``GET /train/{id}/events`` (and reads
``/artifacts`` when a ``job`` event shows their count changed) until the ``end`` event.
On ``leave`` they close the page; on ``quit`` what they saw comes back as one JSON
line, by mode (:class:`Browsing`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

import httpx

from benchmarks.figures import timed

ARRIVAL_S = 2.0  # browsers open the page within this long of each other
TAIL = 500  # console.js's TAIL_LINES
_TOKEN_ENV = "BENCH_BROWSERS_TOKEN"  # not on the command line, where ps shows it


@dataclass
class Browsing:
    """What the browsers saw, and their process's CPU and wall time while following."""

    cpu_s: float = 0.0
    wall_s: float = 0.0
    call_ms: list[float] = field(default_factory=list)  # every GET but the event streams'
    points: list[int] = field(default_factory=list)  # metric points each browser got
    events: int = 0  # events received, all browsers
    stream_bytes: int = 0  # of the event streams, all browsers
    retries: int = 0  # GETs sent again on a new connection
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        failed = f"{len(self.errors)} failed" + (f": {self.errors[0]}" if self.errors else "")
        return (f"{len(self.points)} page views, metric points {min(self.points)}-"
                f"{max(self.points)} each, {self.events} events ({self.stream_bytes} bytes), "
                f"{len(self.call_ms)} other calls "
                f"(max {max(self.call_ms):.0f} ms, {self.retries} retried, {failed}), "
                f"{self.cpu_s:.2f} CPU s")  # fmt: skip


class Browsers:
    """The browsers' process, logged in: :meth:`watch` a job, :meth:`leave` it, and
    :meth:`results`. A context manager: the process is killed if it outlives the block."""

    def __init__(self, url: str, token: str, count: int) -> None:
        argv = [sys.executable, "-m", "benchmarks.browsers", url, "--count", str(count)]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, _TOKEN_ENV: token},
        )  # fmt: skip
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            self._proc.kill()
            raise RuntimeError(f"the browsers did not start: exit {self._proc.wait()}")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def watch(self, mode: str, job_id: str) -> None:
        self._say(f"watch {mode} {job_id}")

    def leave(self) -> None:
        self._say("leave")

    def results(self, timeout_s: float = 60) -> dict[str, Browsing]:
        """What they saw in each mode."""
        self._say("quit")
        out = self._proc.communicate(timeout=timeout_s)[0].splitlines()
        if self._proc.returncode or not out:
            raise RuntimeError(f"the browsers' process exited with {self._proc.returncode}")
        return {mode: Browsing(**seen) for mode, seen in json.loads(out[-1]).items()}

    def _say(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def __enter__(self) -> Browsers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._proc.kill()  # nothing once it has exited
        self._proc.wait()


async def _login(url: str, token: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(60.0))
    reply = await browser.post("/ui/login", data={"token": token})
    if "trainq_session" not in browser.cookies:
        raise RuntimeError(f"POST /ui/login: {reply.status_code}, no session cookie")
    return browser


async def _get(browser: httpx.AsyncClient, path: str, seen: Browsing, **params: str) -> Any:
    with timed() as elapsed_s:
        try:
            reply = await browser.get(path, params=params)
        except (httpx.ReadError, httpx.RemoteProtocolError):  # a kept-alive connection
            seen.retries += 1  # the server closed: a browser sends the GET again
            reply = await browser.get(path, params=params)
    seen.call_ms.append(elapsed_s() * 1000)
    if reply.status_code != 200:
        seen.errors.append(f"GET {path}: {reply.status_code} {reply.text[:200]}")
    json_reply = reply.headers.get("content-type", "").split(";")[0] == "application/json"
    return reply.json() if json_reply and reply.status_code == 200 else reply.text


async def _page(
    browser: httpx.AsyncClient, job_id: str, seen: Browsing, leave: asyncio.Event
) -> None:
    """One browser on the job's page until it leaves or the job has ended."""
    if await _left(leave, random.uniform(0, ARRIVAL_S)):  # people open the page at any time
        return
    shell = await _get(browser, f"/ui/jobs/{job_id}", seen)
    for asset in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', shell):
        await _get(browser, asset, seen)
    following = asyncio.create_task(_follow(browser, f"/train/{job_id}", seen))
    left = asyncio.create_task(leave.wait())
    await asyncio.wait([following, left], return_when=asyncio.FIRST_COMPLETED)
    for task in (following, left):
        task.cancel()  # the page closes: so does its stream
    await asyncio.gather(following, left, return_exceptions=True)


async def _left(leave: asyncio.Event, wait_s: float) -> bool:
    """Whether ``leave`` was set within ``wait_s``."""
    try:
        await asyncio.wait_for(leave.wait(), wait_s)
    except TimeoutError:
        return False
    return True


async def _follow(browser: httpx.AsyncClient, base: str, seen: Browsing) -> None:
    """The job's events until the end event; the artifacts read when their count changes."""
    points, artifacts, name = 0, -1, ""
    try:
        try:
            async with browser.stream("GET", f"{base}/events") as reply:
                if reply.status_code != 200:
                    seen.errors.append(f"GET {base}/events: {reply.status_code}")
                    return
                async for text in reply.aiter_lines():
                    seen.stream_bytes += len(text) + 1
                    if text.startswith("event: "):
                        name = text.removeprefix("event: ")
                        seen.events += 1
                        if name == "end":
                            return
                    if not text.startswith("data: "):
                        continue
                    data = json.loads(text.removeprefix("data: "))
                    job = data["job"] if name == "snapshot" else data if name == "job" else None
                    points += len(
                        data["points"] if name == "snapshot" else data if name == "points" else []
                    )
                    if job is not None and len(job["artifacts"]) != artifacts:
                        artifacts = len(job["artifacts"])
                        await _get(browser, f"{base}/artifacts", seen)
        except httpx.TransportError as exc:  # e.g. the server cut the stream
            seen.errors.append(f"GET {base}/events: {exc!r}")
            return
        seen.errors.append(f"GET {base}/events: closed without an end event")
    finally:
        seen.points.append(points)


async def serve(url: str, token: str, count: int) -> dict[str, Browsing]:
    """Log ``count`` browsers in, say ``ready``, then obey stdin until ``quit``."""
    clients = [await _login(url, token) for _ in range(count)]
    print("ready", flush=True)
    seen: dict[str, Browsing] = {}
    while (command := (await asyncio.to_thread(sys.stdin.readline)).split())[:1] == ["watch"]:
        mode, job_id = command[1:]
        mine, leave = seen.setdefault(mode, Browsing()), asyncio.Event()
        cpu_before_s = time.process_time()
        with timed() as elapsed_s:
            views = [_page(b, job_id, mine, leave) for b in clients]
            watching = asyncio.gather(*views)
            await asyncio.to_thread(sys.stdin.readline)  # leave
            leave.set()
            await watching
            mine.cpu_s += time.process_time() - cpu_before_s
            mine.wall_s += elapsed_s()
    await asyncio.gather(*(b.aclose() for b in clients))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the API's base URL")
    parser.add_argument("--count", type=int, default=50, help="browsers")
    args = parser.parse_args()
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # only on an idle core
    seen = asyncio.run(serve(args.url, os.environ[_TOKEN_ENV], args.count))
    print(json.dumps({mode: asdict(s) for mode, s in seen.items()}), flush=True)


if __name__ == "__main__":
    main()
