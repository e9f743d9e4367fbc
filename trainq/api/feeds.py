"""Pages following a job (``GET /train/{id}/events``): one watch per job in this API
process, however many pages follow it, its news fanned out as server-sent events.

A job's :class:`Feed` reads it every ``STEP_S`` in a worker thread
(:class:`~trainq.client.watching.JobWatch`: a few Redis calls, bounded whatever the job
prints), keeps what a page shows (the record, every metric point, the console's last
lines), and hands each follower the same event texts. A follower costs the server an
event's bytes on its connection when something changed, and a comment every
``KEEPALIVE_S`` when nothing did; never a read of its own.

Events: ``snapshot`` first (``{"job", "points", "lines"}``: everything a page shows),
then ``job`` (the record, when it or its reason to wait changed), ``points`` (new metric
points), ``lines`` (new console lines, the newest ``tail`` of a step's), ``problem``
(``{"detail"}``: Redis does not answer; ``null`` once it does again) and ``end``
(``{"status"}``, the job has ended; the stream closes). A follower that falls more than
``QUEUE_STEPS`` steps behind is dropped: its browser reconnects and starts from a
fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any

from anyio import to_thread

from trainq import connections
from trainq.client.watching import JobWatch, Sighting
from trainq.jobs.record import JobRecord
from trainq.logs.series import Point
from trainq.logs.stream import LogLine

STEP_S = 0.5  # between a feed's reads of its job
OUTAGE_STEP_S = 2.0  # between reads while Redis does not answer
KEEPALIVE_S = 15.0  # an SSE comment to a follower after this long without an event
QUEUE_STEPS = 256  # steps' events a follower may fall behind before it is dropped
RETRY_MS = 3000  # a browser's wait before it reconnects a stream that closed

# The job's record as the API shows it (GET /train/{id}), as JSON.
Render = Callable[[JobRecord, str | None], str]
MakeWatch = Callable[[str], JobWatch]


class Feed:
    """One job, watched for its followers."""

    def __init__(self, watch: JobWatch, render: Render, max_points: int) -> None:
        self.watch = watch
        self.render = render
        self.followers: set[asyncio.Queue[str | None]] = set()
        self.joining = 0  # followers waiting for the first read
        self.ready = asyncio.Event()
        self.job = "null"  # the record's JSON
        self.points: deque[Point] = deque(maxlen=max_points)
        self.lines: deque[dict[str, Any]] = deque(maxlen=watch.tail)
        self.last: str | None = None  # the event that ends every stream (end or a failure)

    def snapshot(self) -> str:
        points, lines = _json(list(self.points)), _json(list(self.lines))
        return event("snapshot", f'{{"job":{self.job},"points":{points},"lines":{lines}}}')

    def absorb(self, sighting: Sighting) -> list[str]:
        """Keep what ``sighting`` saw; the events that tell followers."""
        events = []
        if sighting.record is not None:
            self.job = self.render(sighting.record, sighting.waiting)
            events.append(event("job", self.job))
        if sighting.points:
            self.points.extend(sighting.points)
            events.append(event("points", _json(sighting.points)))
        if sighting.lines:
            fresh = [_line(line) for line in sighting.lines]
            self.lines.extend(fresh)
            events.append(event("lines", _json(fresh)))
        if sighting.final and sighting.record is not None:
            self.last = event("end", _json({"status": sighting.record.status.value}))
        return events

    def tell(self, events: list[str]) -> None:
        """Hand ``events`` to every follower, as one write on its connection."""
        if not events:
            return
        text = "".join(events)
        for follower in list(self.followers):
            try:
                follower.put_nowait(text)
            except asyncio.QueueFull:  # too far behind: it starts again from a snapshot
                self.drop(follower)

    def drop(self, follower: asyncio.Queue[str | None]) -> None:
        self.followers.discard(follower)
        while not follower.empty():
            follower.get_nowait()
        follower.put_nowait(None)

    def close(self, follower: asyncio.Queue[str | None]) -> None:
        """End ``follower``'s stream after the events it holds."""
        self.followers.discard(follower)
        try:
            follower.put_nowait(None)
        except asyncio.QueueFull:
            self.drop(follower)

    @property
    def watched(self) -> bool:
        return bool(self.followers) or self.joining > 0


class Feeds:
    """This process's feeds, one per followed job."""

    def __init__(self, make_watch: MakeWatch, render: Render, max_points: int) -> None:
        self._make_watch = make_watch
        self._render = render
        self._max_points = max_points
        self._feeds: dict[str, Feed] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def followers(self, job_id: str) -> int:
        feed = self._feeds.get(job_id)
        return len(feed.followers) if feed else 0

    async def follow(self, job_id: str) -> AsyncGenerator[str, None]:
        """The job's events for one follower, until the job ends or it goes away."""
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = Feed(
                self._make_watch(job_id), self._render, self._max_points
            )
            task = asyncio.get_running_loop().create_task(self._run(job_id, feed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        mine: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_STEPS)
        feed.joining += 1
        try:
            await feed.ready.wait()
        finally:
            feed.joining -= 1
        # Nothing awaited from here to the first yield: the snapshot holds every event
        # told before the follower was added, and its queue every one told after.
        start = [f"retry: {RETRY_MS}\n\n"]
        if feed.job != "null":
            start.append(feed.snapshot())
        if feed.last is not None:  # the job has ended (or cannot be read)
            yield "".join([*start, feed.last])
            return
        feed.followers.add(mine)
        try:
            yield "".join(start)
            while True:
                try:
                    text = await asyncio.wait_for(mine.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if text is None:
                    return
                yield text
        finally:
            feed.followers.discard(mine)

    async def _run(self, job_id: str, feed: Feed) -> None:
        """Read the job while anyone follows it and it has not ended; then tell the end."""
        try:
            await self._first(feed)
            outage = False
            while feed.last is None:
                await asyncio.sleep(OUTAGE_STEP_S if outage else STEP_S)
                if not feed.watched:
                    return
                try:
                    sighting = await to_thread.run_sync(feed.watch.next)
                except connections.OUTAGE_ERRORS as exc:
                    if not outage:
                        feed.tell([_problem(str(connections.unavailable(exc)))])
                    outage = True
                    continue
                events = feed.absorb(sighting)
                if outage:
                    events.insert(0, _problem(None))
                    outage = False
                feed.tell(events + ([feed.last] if feed.last else []))
        except Exception as exc:  # e.g. the job was purged: its followers learn why
            feed.last = _problem(str(exc))
            feed.ready.set()
            feed.tell([feed.last])
        finally:
            if self._feeds.get(job_id) is feed:
                del self._feeds[job_id]
            for follower in list(feed.followers):
                feed.close(follower)

    async def _first(self, feed: Feed) -> None:
        try:
            feed.absorb(await to_thread.run_sync(feed.watch.first))
        except connections.OUTAGE_ERRORS as exc:
            feed.last = _problem(str(connections.unavailable(exc)))
        finally:
            feed.ready.set()


def event(name: str, data: str) -> str:
    """One server-sent event (``data`` is JSON: one line)."""
    return f"event: {name}\ndata: {data}\n\n"


def _problem(detail: str | None) -> str:
    return event("problem", _json({"detail": detail}))


def _line(line: LogLine) -> dict[str, Any]:
    return {"attempt": line.attempt, "ts": line.ts, "line": line.line}


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
