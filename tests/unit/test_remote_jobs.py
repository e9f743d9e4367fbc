"""RemoteJobs against an in-memory API (httpx.MockTransport): records, pages, waits,
log lines with client-side filters, server-sent events, downloads."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainq.errors import ArtifactNotFound, Unavailable
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.logs.joining import LogSources
from trainq.logs.reader import LogQuery
from trainq.remote import ApiClient, RemoteJobs

URL = "http://api.test"
Handler = Callable[[httpx.Request], httpx.Response]


def remote(handler: Handler) -> RemoteJobs:
    api = ApiClient(URL, "tq_t", timeout_s=5, transport=httpx.MockTransport(handler))
    return RemoteJobs(api, poll_interval_s=0)


def job(job_id: str = "j1", status: JobStatus = JobStatus.QUEUED, **changes: Any) -> JobRecord:
    return JobRecord(id=job_id, spec=JobSpec(epochs=2), status=status, owner="alice", **changes)


def view(record: JobRecord, waiting: str | None = None) -> dict[str, Any]:
    return {**record.model_dump(mode="json"), "waiting": waiting}


# The job's output: (attempt, ts, line).
OUTPUT = [(1, 100.0, "start"), (1, 101.0, "loss 0.5"), (2, 200.0, "retry"), (2, 201.0, "loss 0.2")]


def jsonl(lines: list[tuple[int, float, str]]) -> str:
    return "".join(json.dumps({"attempt": a, "ts": t, "line": text}) + "\n" for a, t, text in lines)


def events(lines: list[tuple[int, float, str]], end: bool = True) -> str:
    sent = "".join(
        f"event: line\ndata: {json.dumps({'attempt': a, 'ts': t, 'line': text})}\n\n"
        for a, t, text in lines
    )
    return sent + ('event: end\ndata: {"status": "succeeded"}\n\n' if end else "")


def test_a_job_is_its_record_and_why_it_waits() -> None:
    record = job()
    got = remote(lambda r: httpx.Response(200, json=view(record, "in queue cpu: 2 ahead")))

    assert got.get_job("j1") == (record, "in queue cpu: 2 ahead")


def test_a_list_longer_than_the_apis_page_is_read_page_by_page() -> None:
    everyone = [job(f"j{i:04d}") for i in range(1200)]
    limits: list[int] = []

    def pages(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("cursor", "0"))
        assert request.url.params["owner"] == "alice"
        limits.append(limit)
        chunk = everyone[start : start + limit]
        more = str(start + limit) if start + limit < len(everyone) else None
        return httpx.Response(200, json={"jobs": [view(r) for r in chunk], "next_cursor": more})

    page = remote(pages).list_jobs(limit=1000, owner="alice")

    assert [r.id for r in page.records] == [r.id for r in everyone[:1000]]
    assert page.next_cursor == "1000"
    assert limits == [500, 500]


def test_a_name_filtered_list_gathers_short_pages_up_to_the_limit() -> None:
    # The API's pages of a name filter may be short, even empty, before the end.
    answers = {
        None: (["j9", "j8"], "c1"),
        "c1": ([], "c2"),
        "c2": (["j5", "j4"], "c3"),
        "c3": (["j1"], None),
    }
    asked: list[tuple[str | None, str, str]] = []

    def pages(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        asked.append((cursor, request.url.params["name"], request.url.params["limit"]))
        ids, more = answers[cursor]
        assert len(ids) <= int(request.url.params["limit"])
        return httpx.Response(200, json={"jobs": [view(job(i)) for i in ids], "next_cursor": more})

    page = remote(pages).list_jobs(limit=4, name="sweep")
    rest = remote(pages).list_jobs(limit=4, cursor=page.next_cursor, name="sweep")

    assert [r.id for r in page.records] == ["j9", "j8", "j5", "j4"]
    assert page.next_cursor == "c3"
    assert [r.id for r in rest.records] == ["j1"]
    assert rest.next_cursor is None
    assert asked[:3] == [(None, "sweep", "4"), ("c1", "sweep", "2"), ("c2", "sweep", "2")]


def test_wait_for_sees_each_new_version_once_until_the_job_is_final() -> None:
    versions = [
        job(updated_at=1.0),
        job(updated_at=1.0),
        job(status=JobStatus.RUNNING, updated_at=2.0),
        job(status=JobStatus.SUCCEEDED, updated_at=3.0),
    ]
    answers = iter(versions)
    seen: list[str] = []

    final = remote(lambda r: httpx.Response(200, json=view(next(answers)))).wait_for(
        "j1", on_update=lambda r: seen.append(r.status.value)
    )

    assert final.status == JobStatus.SUCCEEDED
    assert seen == ["queued", "running", "succeeded"]


def test_since_and_grep_are_applied_here_and_tail_after_them() -> None:
    asked: list[dict[str, str]] = []

    def logs(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        return httpx.Response(200, text=jsonl(OUTPUT))

    query = LogQuery(since=101.0, grep=re.compile("loss"), tail=1)
    lines = list(remote(logs).log_lines("j1", query))

    assert [(line.job_id, line.attempt, line.line) for line in lines] == [(
        "j1", 2, "loss 0.2")]  # fmt: skip
    assert asked == [{"format": "jsonl"}]  # the API's tail would cut before the filters

    list(remote(logs).log_lines("j1", LogQuery(tail=3, attempt=2)))
    assert asked[-1] == {"format": "jsonl", "attempt": "2", "tail": "3"}


def test_the_log_headers_say_where_the_lines_came_from() -> None:
    headers = {
        "X-Trainq-Log-Sources": "archive attempt 1, stream",
        "X-Trainq-Log-Missing": "attempt 1: 40, attempt 2: 3",
        "X-Trainq-Log-Archive-Error": "bucket gone",
    }
    sources, told = LogSources(), list[str]()
    got = remote(lambda r: httpx.Response(200, text=jsonl(OUTPUT), headers=headers))

    lines = list(got.log_lines("j1", LogQuery(), sources=sources, archive_failed=told.append))

    assert len(lines) == 4
    assert sources.used == ["archive attempt 1", "stream"]
    assert sources.missing == {1: 40, 2: 3}
    assert told == ["the artifact store of the API could not be read (bucket gone)"]


def test_follow_reads_line_events_until_the_end_event() -> None:
    asked: list[dict[str, str]] = []

    def follow(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        return httpx.Response(200, text=events(OUTPUT) + events([(3, 300.0, "never shown")]))

    lines = list(remote(follow).log_lines("j1", LogQuery(grep=re.compile("loss")), follow=True))

    assert [line.line for line in lines] == ["loss 0.5", "loss 0.2"]
    assert asked == [{"follow": "true"}]


def test_a_follow_cut_before_the_end_event_is_the_api_gone() -> None:
    cut = remote(lambda r: httpx.Response(200, text=events(OUTPUT[:2], end=False)))

    with pytest.raises(Unavailable, match=URL):
        list(cut.log_lines("j1", LogQuery(), follow=True))


def test_follow_with_tail_and_a_filter_shows_the_backlogs_last_kept_then_new_lines() -> None:
    backlog, later = OUTPUT[:3], [(2, 201.0, "loss 0.2"), (2, 202.0, "loss 0.1")]

    def logs(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("follow") == "true":
            return httpx.Response(200, text=events(backlog + later))
        return httpx.Response(200, text=jsonl(backlog))

    query = LogQuery(grep=re.compile("loss|start"), tail=1)
    lines = list(remote(logs).log_lines("j1", query, follow=True))

    assert [line.line for line in lines] == ["loss 0.5", "loss 0.2", "loss 0.1"]


def test_a_download_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    def files(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/train/j1/artifacts/outputs/model.pt":
            return httpx.Response(200, content=b"weights" * 1000)
        return httpx.Response(404, json={"detail": "job j1 has no artifact 'outputs/none.pt'"})

    target = tmp_path / "got" / "outputs" / "model.pt"
    remote(files).download("j1", "outputs/model.pt", target)
    assert target.read_bytes() == b"weights" * 1000

    missing = tmp_path / "got" / "outputs" / "none.pt"
    with pytest.raises(ArtifactNotFound, match=r"none\.pt"):
        remote(files).download("j1", "outputs/none.pt", missing)
    assert sorted(p.name for p in missing.parent.iterdir()) == ["model.pt"]
