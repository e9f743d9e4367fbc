"""The API's parts without a server: tokens, the body limit, totals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from trainq.api.app import create_app
from trainq.api.auth import Authenticate
from trainq.api.limits import BodyLimit
from trainq.config import Settings
from trainq.errors import IllegalTransition, NotAuthenticated, SpecError
from trainq.jobs.policy import image_allowed, with_defaults
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store import totals as tally
from trainq.store.rates import Rate
from trainq.users.model import DEV_USER, ENV_TOKEN_USER, Principal


def bearer(token: str) -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


class Users:
    """A user store that knows one token."""

    def authenticate(self, token: str, rate: Rate | None = None) -> Principal:
        if token == "tq_user":
            return Principal("alice", admin=False, token_id="t1")
        raise NotAuthenticated("unknown or revoked token")


def request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": []})


def test_an_admin_token_or_a_users_token_passes_and_anything_else_is_401() -> None:
    authenticate = Authenticate(Settings(api_tokens="first,second"), lambda: Users())  # type: ignore[arg-type]

    assert authenticate(request(), bearer("second")) == Principal(ENV_TOKEN_USER, admin=True)
    asked = request()
    assert authenticate(asked, bearer("tq_user")) == Principal("alice", False, "t1")
    assert asked.state.principal.name == "alice"  # for the audit trail
    for credentials in (None, bearer("third"), bearer(""), bearer("secon")):
        with pytest.raises(HTTPException) as refused:
            authenticate(request(), credentials)
        assert refused.value.status_code == 401
        assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
        assert "secon" not in str(refused.value.detail)


def test_without_a_token_only_dev_mode_lets_a_request_in() -> None:
    closed = Authenticate(Settings(api_tokens=""), lambda: Users())  # type: ignore[arg-type]
    with pytest.raises(HTTPException, match="missing bearer token"):
        closed(request(), None)
    open_ = Authenticate(Settings(api_tokens="", dev_mode=True), lambda: Users())  # type: ignore[arg-type]
    assert open_(request(), None) == Principal(DEV_USER, admin=True)
    assert create_app(Settings(api_tokens="")).title == "trainq"  # type: ignore[arg-type]
    assert Settings(api_tokens=" a, b ,,").api_token_list == ["a", "b"]  # type: ignore[arg-type]


class Echo:
    """An ASGI app that reads the whole body and answers with its length."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def call(chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    asyncio.run(BodyLimit(Echo(), max_bytes=10)(scope, receive, send))
    return sent


def test_bodies_up_to_the_limit_pass_through() -> None:
    sent = call([b"12345", b"67890"], [])

    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]
    assert sent[-1]["body"] == b"10"


@pytest.mark.parametrize(
    ("chunks", "headers"),
    [
        ([b"x" * 11], [(b"content-length", b"11")]),  # declared too long
        ([b"x" * 6, b"x" * 6], []),  # chunked, counted as it arrives
        ([b"x"], [(b"content-length", b"lots")]),  # not a length at all
    ],
)
def test_a_body_over_the_limit_is_413_json_and_the_app_answers_nothing(
    chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> None:
    sent = call(chunks, headers)

    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413]
    assert (b"content-type", b"application/json") in starts[0]["headers"]
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len(bodies) == 1
    assert "limit is 10" in json.loads(bodies[0]["body"])["detail"]


def test_the_allow_list_takes_the_default_image_and_patterns() -> None:
    settings = Settings(default_image="team/train:v1", allowed_images="trainq-train:*, lab/*")

    assert image_allowed("team/train:v1", settings)
    assert image_allowed("trainq-train:latest", settings)
    assert image_allowed("lab/anything:tag", settings)
    assert not image_allowed("team/train:v2", settings)
    assert not image_allowed("evil/lab/x", settings)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"image": "evil/miner:latest"}, "image"),
        ({"memory": "9g"}, "memory"),
        ({"cpus": 3.0}, "cpus"),
        ({"timeout": 10_000}, "timeout_s"),
    ],
)
def test_submit_refuses_what_the_cluster_does_not_allow(spec: dict[str, Any], field: str) -> None:
    settings = Settings(container_memory="8g", container_cpus=2.0, max_job_s=3600)

    with pytest.raises(SpecError, match=f"{field}:"):
        with_defaults(JobSpec.parse(spec), settings)


def test_container_user_may_not_be_root() -> None:
    with pytest.raises(ValueError, match="container_user"):
        Settings(container_user="0:0")


def finished(status: JobStatus, attempts: list[Attempt], run_s: float) -> JobRecord:
    record = JobRecord(id="j", spec=JobSpec(), attempts=attempts)
    record = record.moved_to(JobStatus.RUNNING)
    record = record.model_copy(update={"started_at": 1000.0})
    record = record.moved_to(status)
    return record.model_copy(update={"finished_at": 1000.0 + run_s})


def test_a_finished_job_adds_its_status_attempts_failures_and_duration() -> None:
    attempts = [
        Attempt(number=1, failure_class="transient"),
        Attempt(number=2, failure_class="transient"),
        Attempt(number=3),
    ]

    added = tally.increments(finished(JobStatus.SUCCEEDED, attempts, run_s=7200.5))

    assert added["finished:succeeded"] == 1
    assert added["attempts"] == 3 and added["retries"] == 2
    assert added["failure_class:transient"] == 2
    assert added["duration_count"] == 1 and added["duration_sum_s"] == pytest.approx(7200.5)
    below = [b for b in tally.DURATION_BUCKETS_S if f"duration_le:{b}" in added]
    assert below == [b for b in tally.DURATION_BUCKETS_S if b >= 7200.5]


def test_the_memory_store_adds_totals_once_when_a_job_finishes() -> None:
    from trainq.store.memory import MemoryJobRecords

    store = MemoryJobRecords()
    store.create(JobRecord(id="j", spec=JobSpec()))
    store.update("j", lambda r: r.moved_to(JobStatus.RUNNING))
    assert store.totals() == {}
    store.update("j", lambda r: r.moved_to(JobStatus.FAILED, error="boom"))
    with pytest.raises(IllegalTransition):  # a final record is never written again
        store.update("j", lambda r: r.model_copy(update={"error": "boom!"}))

    totals = store.totals()
    assert totals["finished:failed"] == 1
    assert totals["duration_count"] == 1
