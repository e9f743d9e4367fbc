"""The audit trail and the request rate limit against a real Redis: the trail's pages,
the GCRA script, and both middlewares around a small app with a fake sign-in."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx
import pytest
import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Response

from trainq import connections
from trainq.api.auditing import AuditMiddleware
from trainq.api.auth import Authenticate, Caller, current_principal
from trainq.api.ratelimit import GCRA_SCRIPT, Gcra, RateLimit, bucket_key
from trainq.api.routes import audit
from trainq.audit.trail import AuditEntry
from trainq.audit.writer import AuditWriter
from trainq.config import Settings
from trainq.errors import NotAuthenticated
from trainq.store.rates import Rate
from trainq.testing import wait_until
from trainq.users.model import Principal

pytestmark = pytest.mark.integration

ALICE_TOKEN = "tq_alice_0123456789abcdef"
ROOT_TOKEN = "tq_root_fedcba9876543210"
PRINCIPALS = {
    ALICE_TOKEN: Principal("alice", token_id="tok-a1"),
    ROOT_TOKEN: Principal("root", admin=True, token_id="tok-r1"),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(redis_server)
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def raw(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    yield client
    client.close()


def settings_for(url: str, prefix: str, tmp_path: Path, **values: Any) -> Settings:
    values = {"api_rate_per_s": 0, "log_dir": tmp_path / "logs", **values}
    return Settings(redis_url=url, key_prefix=prefix, **values)


@pytest.fixture(autouse=True)
def interactive_patience(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's patience with Redis (it gives up within seconds), whatever an earlier
    test in this process imported: trainq.worker.task makes a process ride out outages
    for a minute (trainq.connections.ride_out_outages)."""
    monkeypatch.setattr(connections, "_patience", [connections.INTERACTIVE])


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A Redis URL whose port refuses every connection: bound, never listening, and held
    for the test (a port merely closed could be taken by another test's server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


class Tokens:
    """The user store as Authenticate asks it: two users' tokens."""

    def authenticate(self, token: str, rate: Rate | None = None) -> Principal:
        if token in PRINCIPALS:
            return PRINCIPALS[token]
        raise NotAuthenticated("unknown or revoked token")


def make_app(settings: Settings) -> FastAPI:
    """Routes shaped like the API's, wrapped as create_app wraps them."""
    app = FastAPI()
    authenticate = Authenticate(settings, users=Tokens)
    app.state.authenticate = authenticate
    jobs = APIRouter(prefix="/train", dependencies=[Depends(current_principal)])

    @jobs.post("", status_code=202)
    def submit(response: Response) -> dict[str, str]:
        job_id = str(uuid.uuid4())
        response.headers["Location"] = f"/train/{job_id}"
        return {"id": job_id}

    @jobs.get("/{job_id}")
    def read(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    @jobs.delete("/{job_id}")
    def cancel(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    @jobs.patch("/{job_id}")
    def priority(job_id: str) -> dict[str, str]:
        raise HTTPException(409, f"job {job_id} is running: its priority is fixed")

    @app.post("/users/{name}/tokens", status_code=201)
    def issue(name: str, principal: Caller) -> dict[str, str]:
        return {"user": name, "secret": "tq_new_secret_shown_once"}

    @app.put("/things/{thing_id}")
    def put_thing(thing_id: str, principal: Caller) -> dict[str, str]:
        return {}

    @app.post("/boom")
    def boom(principal: Caller) -> None:
        raise RuntimeError("the route broke")

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(jobs)
    app.include_router(audit.router(settings))
    app.state.audit_writer = AuditWriter(lambda: connections.audit_trail(settings))
    app.add_middleware(AuditMiddleware, settings=settings, writer=app.state.audit_writer)
    app.add_middleware(RateLimit, settings=settings)
    return app


class Api:
    """A client of ``app`` in this process: each call runs the app to its end and waits
    for its audit entries to be written, so what the middlewares do after the answer is
    done when it returns."""

    def __init__(
        self,
        app: FastAPI,
        client: tuple[str, int] = ("testclient", 50000),
        raise_server_exceptions: bool = True,
    ) -> None:
        self._app = app
        self._client = client
        self._raise = raise_server_exceptions

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(
                app=self._app, client=self._client, raise_app_exceptions=self._raise
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
                return await api.request(method, path, **kwargs)

        answer = anyio.run(call)
        writer: AuditWriter = self._app.state.audit_writer  # type: ignore[attr-defined]
        assert writer.flush(30), "audit entries still unwritten after 30 s"
        return answer

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


def trail_entries(settings: Settings) -> list[AuditEntry]:
    return connections.audit_trail(settings).page(limit=500).entries


# -- The trail's pages -------------------------------------------------------------


@pytest.mark.parametrize("count", [7, 6])
def test_pages_go_newest_first_without_overlap_to_an_end(
    redis_server: str, prefix: str, tmp_path: Path, count: int
) -> None:
    trail = connections.audit_trail(settings_for(redis_server, prefix, tmp_path))
    for n in range(count):
        trail.record(AuditEntry(actor="a", action="submit", answer=202, target=str(n)))
    pages = [trail.page(limit=3)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 5, "the pages never end"
        pages.append(trail.page(limit=3, cursor=pages[-1].next_cursor))
    targets = [e.target for page in pages for e in page.entries]
    assert targets == [str(n) for n in reversed(range(count))]
    assert [len(p.entries) for p in pages] == [3, 3, 1] if count == 7 else [3, 3]
    assert all(e.id for page in pages for e in page.entries)


# -- The GCRA script ---------------------------------------------------------------


def test_a_burst_passes_then_one_per_interval(raw: redis.Redis, prefix: str) -> None:
    limit = Gcra(raw.register_script(GCRA_SCRIPT), rate_per_s=4, burst=5)
    bucket = f"{prefix}rate:one"
    assert all(limit.take(bucket).allowed for _ in range(5))
    refused = limit.take(bucket)
    assert not refused.allowed
    assert 0.15 < refused.retry_after_s <= 0.25  # one emission interval, 1/4 s
    started = time.monotonic()
    wait_until(lambda: limit.take(bucket).allowed, 3, "the bucket to let one more through")
    assert time.monotonic() - started > 0.1
    assert not limit.take(bucket).allowed  # one request's room, used at once
    # The key goes once the bucket is full again: at most the burst's span.
    assert 0 < raw.pttl(bucket) <= 5 * 250 + 1


def test_buckets_are_independent(raw: redis.Redis, prefix: str) -> None:
    limit = Gcra(raw.register_script(GCRA_SCRIPT), rate_per_s=1, burst=2)
    assert [limit.take(f"{prefix}rate:a").allowed for _ in range(3)] == [True, True, False]
    assert [limit.take(f"{prefix}rate:b").allowed for _ in range(3)] == [True, True, False]


def test_a_rate_of_zero_is_not_a_gcra(raw: redis.Redis) -> None:
    with pytest.raises(ValueError, match="above 0"):
        Gcra(raw.register_script(GCRA_SCRIPT), rate_per_s=0, burst=1)


# -- The rate limit middleware ------------------------------------------------------


def test_over_the_rate_a_token_gets_429_and_retry_after(
    redis_server: str, prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path, api_rate_per_s=0.5, api_rate_burst=2)
    with Api(make_app(settings)) as api:
        answers = [api.get("/train/j1", headers=bearer(ALICE_TOKEN)) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].headers["Retry-After"] == "2"
        assert answers[2].json() == {
            "detail": "too many requests: the limit is 0.5 per second per token, bursts of 2; "
            "retry after 2 s"
        }
        # Another token has a bucket of its own; a refused call is not audited.
        assert api.get("/train/j1", headers=bearer(ROOT_TOKEN)).status_code == 200
        assert api.delete("/train/j1", headers=bearer(ALICE_TOKEN)).status_code == 429
        assert trail_entries(settings) == []


def test_the_bucket_is_the_token_hash_never_the_token(
    redis_server: str, prefix: str, tmp_path: Path, raw: redis.Redis
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path, api_rate_per_s=10)
    with Api(make_app(settings)) as api:
        assert api.get("/train/j1", headers=bearer(ALICE_TOKEN)).status_code == 200
    keys = list(raw.scan_iter(f"{prefix}*"))
    assert len(keys) == 1 and keys[0].startswith(f"{prefix}rate:")
    assert len(keys[0]) == len(f"{prefix}rate:") + 32
    assert ALICE_TOKEN not in keys[0]
    scope = {"headers": [(b"authorization", f"Bearer {ALICE_TOKEN}".encode())]}
    assert bucket_key(settings, scope) == keys[0]


def test_without_a_token_the_client_address_is_the_bucket(
    redis_server: str, prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path, api_rate_per_s=0.5, api_rate_burst=1)
    app = make_app(settings)
    with Api(app, client=("10.0.0.1", 5000)) as first:
        assert [first.get("/train/j1").status_code for _ in range(2)] == [401, 429]
    with Api(app, client=("10.0.0.2", 5000)) as second:
        assert second.get("/train/j1").status_code == 401
    assert bucket_key(settings, {"headers": [], "client": ("10.0.0.1", 1)}) == (
        f"{prefix}rate:addr:10.0.0.1"
    )


def test_health_and_the_docs_are_not_limited(
    redis_server: str, prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path, api_rate_per_s=0.5, api_rate_burst=1)
    with Api(make_app(settings)) as api:
        for path in ("/health", "/openapi.json", "/docs", "/redoc") * 3:
            assert api.get(path).status_code == 200, path
        assert [api.get("/audit").status_code for _ in range(2)] == [401, 429]


def test_while_redis_is_down_requests_go_through(
    tmp_path: Path, prefix: str, closed_port_url: str
) -> None:
    settings = settings_for(closed_port_url, prefix, tmp_path, api_rate_per_s=0.5)
    with Api(make_app(settings)) as api:
        started = time.monotonic()
        answers = [api.get("/train/j1", headers=bearer(ALICE_TOKEN)) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        assert time.monotonic() - started < 5


def test_a_rate_of_zero_never_asks_redis(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch, closed_port_url: str
) -> None:
    def no_redis(*_: object) -> redis.Redis:
        raise AssertionError("the rate limit asked Redis")

    monkeypatch.setattr(connections, "client", no_redis)
    settings = settings_for(closed_port_url, prefix, tmp_path, api_rate_per_s=0)
    with Api(make_app(settings)) as api:
        answers = [api.get("/train/j1", headers=bearer(ALICE_TOKEN)) for _ in range(20)]
    assert {a.status_code for a in answers} == {200}


# -- The audit middleware ----------------------------------------------------------


def test_each_state_changing_call_is_one_entry(
    redis_server: str, prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path)
    with Api(make_app(settings), client=("192.0.2.7", 40000)) as api:
        submitted = api.post("/train", headers=bearer(ALICE_TOKEN))
        job_id = submitted.json()["id"]
        api.get(f"/train/{job_id}", headers=bearer(ALICE_TOKEN))  # a read: not audited
        api.delete(f"/train/{job_id}", headers=bearer(ROOT_TOKEN))
        api.patch(f"/train/{job_id}", headers=bearer(ALICE_TOKEN))
        api.post("/users/bob/tokens", headers=bearer(ROOT_TOKEN))
        api.put("/things/x1", headers=bearer(ALICE_TOKEN))
    seen = [
        (e.actor, e.token_id, e.action, e.target, e.answer, e.address, e.detail)
        for e in reversed(trail_entries(settings))
    ]
    assert seen == [
        ("alice", "tok-a1", "submit", job_id, 202, "192.0.2.7", None),
        ("root", "tok-r1", "cancel", job_id, 200, "192.0.2.7", None),
        (
            "alice",
            "tok-a1",
            "priority",
            job_id,
            409,
            "192.0.2.7",
            f"job {job_id} is running: its priority is fixed",
        ),
        ("root", "tok-r1", "users.token", "bob", 201, "192.0.2.7", None),
        ("alice", "tok-a1", "PUT /things/{thing_id}", "x1", 200, "192.0.2.7", None),
    ]
    lines = (tmp_path / "logs").glob("TrainingAudit_*.log")
    assert [e.to_json() for e in reversed(trail_entries(settings))] == [
        line for path in lines for line in path.read_text().splitlines()
    ]


def test_an_unauthenticated_call_is_recorded_as_anonymous_without_its_token(
    redis_server: str, prefix: str, tmp_path: Path, raw: redis.Redis
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path)
    with Api(make_app(settings)) as api:
        wrong = "tq_wrong_token_0000000000"
        assert api.delete("/train/j9", headers=bearer(wrong)).status_code == 401
        assert api.post("/train", headers=bearer(ALICE_TOKEN)).status_code == 202
    (entry, _) = trail_entries(settings)[::-1]
    assert (entry.actor, entry.token_id, entry.action, entry.target) == (
        "anonymous",
        None,
        "cancel",
        "j9",
    )
    assert (entry.answer, entry.address, entry.detail) == (
        401,
        "testclient",
        "unknown or revoked token",
    )
    written = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    streamed = str(raw.xrange(connections.keys(settings).audit))
    for text in (written, streamed):
        assert "j9" in text and "alice" in text
        for token in (wrong, ALICE_TOKEN, "tq_"):
            assert token not in text


def test_a_route_that_fails_is_recorded_as_500(
    redis_server: str, prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path)
    with Api(make_app(settings), raise_server_exceptions=False) as api:
        assert api.post("/boom", headers=bearer(ALICE_TOKEN)).status_code == 500
    [entry] = trail_entries(settings)
    assert (entry.actor, entry.action, entry.answer) == ("alice", "POST /boom", 500)


@pytest.mark.parametrize("where", ["redis down", "log dir unwritable"])
def test_a_failure_to_record_is_logged_and_changes_no_answer(
    redis_server: str,
    prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    where: str,
    closed_port_url: str,
) -> None:
    if where == "redis down":
        settings = settings_for(closed_port_url, prefix, tmp_path)
    else:
        (tmp_path / "a-file").write_text("")
        settings = settings_for(redis_server, prefix, tmp_path, log_dir=tmp_path / "a-file")
    with caplog.at_level(logging.ERROR, "trainq.audit"), Api(make_app(settings)) as api:
        answer = api.post("/train", headers=bearer(ALICE_TOKEN))
    assert answer.status_code == 202 and answer.headers["Location"].startswith("/train/")
    job_id = answer.headers["Location"].rsplit("/", 1)[-1]
    assert f"could not record 1 audit entries (submit {job_id})" in caplog.text
    assert ALICE_TOKEN not in caplog.text


# -- GET /audit ------------------------------------------------------------------


def test_an_admin_pages_through_the_trail(redis_server: str, prefix: str, tmp_path: Path) -> None:
    settings = settings_for(redis_server, prefix, tmp_path)
    with Api(make_app(settings)) as api:
        ids = [api.post("/train", headers=bearer(ALICE_TOKEN)).json()["id"] for _ in range(3)]
        first = api.get("/audit?limit=2", headers=bearer(ROOT_TOKEN)).json()
        assert [e["target"] for e in first["entries"]] == [ids[2], ids[1]]
        assert first["entries"][0]["actor"] == "alice"
        assert first["entries"][0]["token_id"] == "tok-a1"
        assert first["entries"][0]["answer"] == 202
        second = api.get(
            "/audit",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=bearer(ROOT_TOKEN),
        ).json()
        assert [e["target"] for e in second["entries"]] == [ids[0]]
        assert second["next_cursor"] is None


def test_only_an_admin_reads_the_trail_and_bad_queries_are_422(
    redis_server: str, prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(redis_server, prefix, tmp_path)
    with Api(make_app(settings)) as api:
        refused = api.get("/audit", headers=bearer(ALICE_TOKEN))
        assert refused.status_code == 403
        assert (
            refused.json()["detail"] == "only an admin may read the audit trail: alice is not one"
        )
        assert api.get("/audit").status_code == 401
        for query in ("limit=0", "limit=501", "cursor=12", "cursor=1-2-3", "cursor=+"):
            assert api.get(f"/audit?{query}", headers=bearer(ROOT_TOKEN)).status_code == 422
        documented = api.get("/openapi.json").json()["paths"]["/audit"]["get"]["responses"]
    assert set(documented) == {"200", "401", "403", "422", "429", "503"}
    assert documented["403"]["content"]["application/json"]["schema"]["$ref"].endswith("Problem")
