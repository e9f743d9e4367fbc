"""A job's page follows it through one feed per job (trainq.api.feeds): the watch reads
only what is new, bounded, and one read serves every follower."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from trainq.api import feeds
from trainq.api.feeds import Feeds
from trainq.client.watching import WAITING_EVERY_S, JobWatch
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.logs.series import MemoryMetricSeries
from trainq.logs.stream import MemoryLogStream
from trainq.store.memory import MemoryJobRecords

TAIL = 50


class Job:
    """A job in memory twins, and a watch on it that counts its reads."""

    def __init__(self) -> None:
        self.records = MemoryJobRecords()
        self.records.create(JobRecord(id="j", spec=JobSpec(name="feed")))
        self.stream = MemoryLogStream()
        self.series = MemoryMetricSeries()
        self.reads = 0
        self.reasons = 0
        self.now_s = 0.0

    def watch(self, job_id: str = "j") -> JobWatch:
        def read(job_id: str) -> JobRecord:
            self.reads += 1
            return self.records.get(job_id)

        def waiting(record: JobRecord) -> str | None:
            self.reasons += 1
            return "behind 3 jobs" if record.status == JobStatus.QUEUED else None

        return JobWatch(
            job_id, Settings(), TAIL, read_record=read, stream=self.stream,
            series=self.series, waiting=waiting, clock_s=lambda: self.now_s,
        )  # fmt: skip

    def print(self, *lines: str) -> None:
        self.stream.append("j", [(1, 1.0, line) for line in lines])

    def status(self, status: JobStatus) -> None:
        self.records.update("j", lambda r: r.model_copy(update={"status": status}))


def test_a_watch_reads_everything_first_then_only_what_is_new() -> None:
    job = Job()
    job.print(*(f"old {n}" for n in range(80)))
    job.series.append("j", {"epoch": 1, "loss": 0.5})
    watch = job.watch()

    first = watch.first()
    quiet = watch.next()
    job.print("new 1", "new 2")
    job.series.append("j", {"epoch": 2, "loss": 0.25})
    job.status(JobStatus.RUNNING)
    news = watch.next()

    assert first.record is not None and first.record.status == JobStatus.QUEUED
    assert [line.line for line in first.lines] == [f"old {n}" for n in range(30, 80)]
    assert [p["epoch"] for p in first.points] == [1]
    assert (quiet.record, quiet.points, quiet.lines) == (None, [], [])
    assert news.record is not None and news.record.status == JobStatus.RUNNING
    assert [line.line for line in news.lines] == ["new 1", "new 2"]
    assert [p["epoch"] for p in news.points] == [2]


def test_a_step_gives_at_most_the_tail_of_a_chatty_jobs_lines() -> None:
    job = Job()
    watch = job.watch()
    watch.first()
    job.print(*(f"line {n}" for n in range(5000)))

    news = watch.next()

    assert [line.line for line in news.lines] == [f"line {n}" for n in range(4950, 5000)]
    assert watch.next().lines == []


def test_a_queued_jobs_reason_is_worked_out_again_only_every_few_seconds() -> None:
    job = Job()
    watch = job.watch()

    first = watch.first()
    watch.next()
    job.now_s += WAITING_EVERY_S
    again = watch.next()

    assert first.waiting == "behind 3 jobs"
    assert job.reasons == 2  # the first step's, then one 5 s later: not every step
    assert again.record is None  # neither the record nor the reason changed


def events(text: str) -> list[tuple[str, Any]]:
    """The (event, data) pairs of an SSE text."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


async def collect(stream: AsyncIterator[str], until: str) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    async for text in stream:
        seen += events(text)
        if seen and seen[-1][0] == until:
            return seen
    return seen


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "STEP_S", 0.01)


def make_feeds(job: Job) -> Feeds:
    return Feeds(job.watch, lambda record, why: record.model_dump_json(), max_points=100)


@pytest.mark.usefixtures("fast")
def test_twenty_followers_share_one_read_per_step_and_all_see_the_end() -> None:
    job = Job()
    job.print("hello")
    hub = make_feeds(job)

    async def scenario() -> list[list[tuple[str, Any]]]:
        followers = [asyncio.create_task(collect(hub.follow("j"), until="end")) for _ in range(20)]
        await until(lambda: hub.followers("j") == 20)
        reads = job.reads
        await asyncio.sleep(0.2)  # about 20 steps
        steps = job.reads - reads
        job.print("bye")
        job.series.append("j", {"epoch": 1, "loss": 0.5})
        job.status(JobStatus.RUNNING)
        job.status(JobStatus.SUCCEEDED)
        seen = await asyncio.wait_for(asyncio.gather(*followers), 10)
        assert 5 <= steps <= 40, steps  # one read a step, not one per follower
        return seen

    seen = asyncio.run(scenario())

    for one in seen:
        names = [name for name, _ in one]
        assert names[0] == "snapshot" and names[-1] == "end"
        snapshot = one[0][1]
        assert snapshot["job"]["status"] == "queued"
        assert [line["line"] for line in snapshot["lines"]] == ["hello"]
        assert ("lines", [{"attempt": 1, "ts": 1.0, "line": "bye"}]) in one
        assert ("points", [{"epoch": 1, "loss": 0.5}]) in one
        assert one[-1] == ("end", {"status": "succeeded"})
    assert hub.followers("j") == 0


@pytest.mark.usefixtures("fast")
def test_a_feed_stops_reading_once_its_last_follower_has_gone() -> None:
    job = Job()
    hub = make_feeds(job)

    async def scenario() -> tuple[int, int]:
        stream = hub.follow("j")
        first = await anext(stream)
        assert events(first)[0][0] == "snapshot"
        await stream.aclose()  # the browser closed the page
        await asyncio.sleep(0.1)
        reads = job.reads
        await asyncio.sleep(0.2)
        return reads, job.reads

    before, after = asyncio.run(scenario())

    assert before == after  # no step after the follower left


@pytest.mark.usefixtures("fast")
def test_a_finished_jobs_follower_gets_the_snapshot_and_the_end_at_once() -> None:
    job = Job()
    job.print("done")
    job.status(JobStatus.RUNNING)
    job.status(JobStatus.SUCCEEDED)
    hub = make_feeds(job)

    seen = asyncio.run(asyncio.wait_for(collect(hub.follow("j"), until="end"), 5))

    assert [name for name, _ in seen] == ["snapshot", "end"]
    assert seen[1][1] == {"status": "succeeded"}


@pytest.mark.usefixtures("fast")
def test_a_follower_too_far_behind_is_dropped_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feeds, "QUEUE_STEPS", 3)
    job = Job()
    hub = make_feeds(job)

    async def scenario() -> tuple[list[str], list[tuple[str, Any]]]:
        stuck = hub.follow("j")
        await anext(stuck)  # its snapshot; then it reads nothing
        reading = asyncio.create_task(collect(hub.follow("j"), until="end"))
        for n in range(10):
            job.print(f"line {n}")
            await until(lambda n=n: job.stream.last("j", 1)[-1].line == f"line {n}")
            await asyncio.sleep(0.03)
        job.status(JobStatus.RUNNING)
        job.status(JobStatus.CANCELLED)
        seen = await asyncio.wait_for(reading, 5)
        rest = [text async for text in stuck]
        return rest, seen

    rest, seen = asyncio.run(scenario())

    assert rest == []  # dropped: its browser reconnects and starts from a snapshot
    printed = [line["line"] for name, data in seen if name == "lines" for line in data]
    assert printed == [f"line {n}" for n in range(10)]
    assert seen[-1] == ("end", {"status": "cancelled"})


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


@pytest.mark.usefixtures("fast")
def test_followers_are_told_while_redis_does_not_answer_and_when_it_does_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feeds, "OUTAGE_STEP_S", 0.01)
    job = Job()
    down = False
    hub = Feeds(lambda job_id: broken(job, job_id), lambda record, why: "{}", max_points=10)

    def broken(job: Job, job_id: str) -> JobWatch:
        watch = job.watch(job_id)
        step = watch.next

        def next_or_fail() -> Any:
            if down:
                raise redis.ConnectionError("Connection refused")
            return step()

        watch.next = next_or_fail  # type: ignore[method-assign]
        return watch

    async def scenario() -> list[tuple[str, Any]]:
        nonlocal down
        reading = asyncio.create_task(collect(hub.follow("j"), until="end"))
        await until(lambda: hub.followers("j") == 1)
        down = True
        await asyncio.sleep(0.1)
        down = False
        job.status(JobStatus.RUNNING)
        job.status(JobStatus.FAILED)
        return await asyncio.wait_for(reading, 5)

    seen = asyncio.run(scenario())

    problems = [data["detail"] for name, data in seen if name == "problem"]
    assert len(problems) == 2 and problems[1] is None  # told once, then told it is over
    assert "Redis at" in problems[0] and "Connection refused" in problems[0]
    assert seen[-1] == ("end", {"status": "failed"})
