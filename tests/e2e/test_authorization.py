"""Who may do what, through a real API server on a real Redis: every route, as an admin,
the job's owner, a stranger, someone without a token and someone whose token is
revoked, with jobs visible to everyone and to their owners only.

The expected answers are written out here by hand, route by route: the table in
:mod:`trainq.users.access` is what is tested, not what computes the expectation. A route
the API gains without a row here fails the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.harness import REPO
from trainq.api.app import create_app
from trainq.config import Settings
from trainq.store.keys import Keys
from trainq.testing import ApiServer
from trainq.users.store import RedisUsers

pytestmark = pytest.mark.e2e

ADMIN_ENV_TOKEN = "authz-admin-token"
ROLES = ("env_admin", "admin", "owner", "stranger", "anonymous", "revoked", "disabled")


class Cluster:
    """An API server, its users' tokens and a fresh job of the owner's per call."""

    def __init__(self, url: str, tokens: dict[str, str | None]) -> None:
        self.url = url
        self.tokens = tokens

    def client(self, role: str) -> httpx.Client:
        token = self.tokens[role]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def owners_job(self) -> str:
        with self.client("owner") as owner:
            submitted = owner.post("/train", json={"epochs": 1, "name": "authz"})
        assert submitted.status_code == 202, submitted.text
        job_id: str = submitted.json()["id"]
        return job_id


def _cluster(redis_url: str, tmp_path: Path, visible: str) -> Iterator[Cluster]:
    prefix = f"authz-{visible}-{uuid.uuid4().hex[:8]}:"
    users = RedisUsers(redis.Redis.from_url(redis_url, decode_responses=True), Keys(prefix))
    tokens: dict[str, str | None] = {"env_admin": ADMIN_ENV_TOKEN, "anonymous": None}
    tokens["admin"] = users.add("carol", admin=True)[1].secret
    tokens["owner"] = users.add("alice")[1].secret
    tokens["stranger"] = users.add("bob")[1].secret
    revoked = users.add("dave")[1]
    users.revoke(revoked.info.id)
    tokens["revoked"] = revoked.secret
    tokens["disabled"] = users.add("erin")[1].secret
    users.disable("erin")
    env = {
        "TRAINQ_REDIS_URL": redis_url,
        "TRAINQ_KEY_PREFIX": prefix,
        "TRAINQ_API_TOKENS": ADMIN_ENV_TOKEN,
        "TRAINQ_JOBS_VISIBLE": visible,
        "TRAINQ_API_RATE_PER_S": "0",
        "TRAINQ_QUEUE": f"authz-{uuid.uuid4().hex[:8]}",  # no worker: jobs stay queued
        "TRAINQ_LOG_DIR": str(tmp_path / "logs"),
    }
    server = ApiServer(tmp_path / "api.log", env, cwd=REPO).start()
    try:
        yield Cluster(server.url, tokens)
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["all", "owner"])
def cluster(
    request: pytest.FixtureRequest, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Cluster]]:
    visible: str = request.param
    for api in _cluster(redis_server, tmp_path_factory.mktemp(visible), visible):
        yield visible, api


# What each role gets, for jobs visible to all / to owners only. A user's own rows:
# "owner"; someone else's job: "stranger". Tokens that name nobody get 401 everywhere.
NOBODY = {"anonymous": 401, "revoked": 401, "disabled": 401}
ADMINS_ONLY = {"env_admin": "ok", "admin": "ok", "owner": 403, "stranger": 403, **NOBODY}
ANY_USER = {"env_admin": "ok", "admin": "ok", "owner": "ok", "stranger": "ok", **NOBODY}
PUBLIC = dict.fromkeys(ROLES, "ok")
# A token is no web page session: only a login's cookie has one to describe.
SESSION_ONLY: dict[str, int | str] = dict.fromkeys(ROLES, 401)


def job_read(visible: str) -> dict[str, int | str]:
    return {**ANY_USER, "stranger": "ok" if visible == "all" else 404}


def owner_only(visible: str) -> dict[str, int | str]:
    return {**ANY_USER, "stranger": 403 if visible == "all" else 404}


# (method, route path, how to fill it) → expected answers per visibility. "ok" is the
# route's success code (or, for an artifact the job does not have, 404 after the check).
def expectations(visible: str) -> dict[tuple[str, str], dict[str, int | str]]:
    return {
        ("POST", "/train"): ANY_USER,
        ("GET", "/train"): ANY_USER,
        ("GET", "/train/{job_id}"): job_read(visible),
        ("DELETE", "/train/{job_id}"): owner_only(visible),
        ("PATCH", "/train/{job_id}"): owner_only(visible),
        ("GET", "/queue"): ANY_USER,
        ("GET", "/train/{job_id}/logs"): job_read(visible),
        ("GET", "/train/{job_id}/metrics"): job_read(visible),
        ("GET", "/train/{job_id}/events"): job_read(visible),
        ("GET", "/train/{job_id}/artifacts"): job_read(visible),
        ("GET", "/train/{job_id}/artifacts/{path}"): owner_only(visible),
        ("GET", "/stats"): ANY_USER,
        ("GET", "/metrics"): ANY_USER,
        ("GET", "/health"): PUBLIC,
        ("GET", "/me"): ANY_USER,
        ("GET", "/users"): ADMINS_ONLY,
        ("POST", "/users"): ADMINS_ONLY,
        ("POST", "/users/{name}/tokens"): ADMINS_ONLY,
        ("PATCH", "/users/{name}"): ADMINS_ONLY,
        ("GET", "/users/{name}/quota"): ADMINS_ONLY,
        ("PATCH", "/users/{name}/quota"): ADMINS_ONLY,
        ("DELETE", "/tokens/{token_id}"): ADMINS_ONLY,
        ("GET", "/audit"): ADMINS_ONLY,
        ("GET", "/ui/session"): SESSION_ONLY,
    }


SUCCESS = {
    ("POST", "/train"): {202},
    ("DELETE", "/train/{job_id}"): {200},  # a queued job is cancelled at once
    ("GET", "/train/{job_id}/artifacts/{path}"): {404},  # it never ran: nothing to fetch
    ("GET", "/health"): {503},  # no worker serves this cluster: the right answer
    ("POST", "/users"): {201},
    ("POST", "/users/{name}/tokens"): {201},
}


def test_every_route_has_a_row_in_the_expectations() -> None:
    schema = create_app(Settings(api_tokens=ADMIN_ENV_TOKEN)).openapi()  # type: ignore[arg-type]
    routes = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert routes == set(expectations("all"))


def _call(cluster: Cluster, role: str, method: str, path: str) -> httpx.Response:
    """One call of the route as ``role``, on fresh targets where it changes something."""
    filled = path
    if "{job_id}" in path:
        filled = filled.replace("{job_id}", cluster.owners_job())
    filled = filled.replace("{path}", "outputs/model.pt")
    body: dict[str, object] | None = None
    if path == "/users" and method == "POST":
        body = {"name": f"u{uuid.uuid4().hex[:10]}"}
    if "{name}" in path:
        filled = filled.replace("{name}", "alice")
        if method == "PATCH":
            body = {"weight": 1} if path.endswith("/quota") else {"disabled": False}
    if path == "/train/{job_id}" and method == "PATCH":
        body = {"priority": "low"}  # lowering: any owner may, within their highest
    if "{token_id}" in path:
        with cluster.client("env_admin") as admin:
            made = admin.post("/users/bob/tokens")
            assert made.status_code == 201, made.text
            filled = filled.replace("{token_id}", made.json()["token_id"])
    if path == "/train" and method == "POST":
        body = {"epochs": 1}
    with cluster.client(role) as client:
        answer = client.send(client.build_request(method, filled, json=body), stream=True)
        try:
            # A job's event stream does not end while the job waits: its status is enough.
            if not answer.headers.get("content-type", "").startswith("text/event-stream"):
                answer.read()
            return answer
        finally:
            answer.close()


@pytest.mark.timeout(300)
def test_each_route_answers_each_role_as_the_table_says(cluster: tuple[str, Cluster]) -> None:
    visible, api = cluster
    wrong = []
    for (method, path), by_role in expectations(visible).items():
        for role in ROLES:
            expected = by_role[role]
            answer = _call(api, role, method, path)
            allowed = SUCCESS.get((method, path), {200}) if expected == "ok" else {expected}
            if answer.status_code not in allowed:
                wrong.append(f"{method} {path} as {role}: {answer.status_code} {answer.text[:120]}")
            elif answer.status_code in (401, 403, 404) and expected != "ok":
                assert answer.json()["detail"], (method, path, role)
    assert not wrong, "\n".join(wrong)


def test_a_strangers_job_is_missing_from_lists_and_stats_when_only_owners_see_theirs(
    cluster: tuple[str, Cluster],
) -> None:
    visible, api = cluster
    job_id = api.owners_job()
    with api.client("stranger") as bob, api.client("owner") as alice, api.client("admin") as carol:
        seen_by = {
            name: {j["id"] for j in c.get("/train", params={"limit": 500}).json()["jobs"]}
            for name, c in (("bob", bob), ("alice", alice), ("carol", carol))
        }
        assert job_id in seen_by["alice"] and job_id in seen_by["carol"]
        assert (job_id in seen_by["bob"]) == (visible == "all")
        mine = alice.get("/train", params={"owner": "alice"}).json()["jobs"]
        assert mine and {j["owner"] for j in mine} == {"alice"}
        users_seen = {u["name"] for u in bob.get("/stats").json()["users"]}
        if visible == "owner":
            assert users_seen <= {"bob"}  # only his own usage, if he has any
        else:
            assert "alice" in users_seen
        assert "alice" in {u["name"] for u in carol.get("/stats").json()["users"]}
        refused = bob.delete(f"/train/{job_id}")
        assert refused.status_code == (403 if visible == "all" else 404)
        if visible == "all":
            assert "alice" in refused.json()["detail"] and "owner" in refused.json()["detail"]
        assert alice.get(f"/train/{job_id}").json()["status"] == "queued"  # untouched
        assert carol.delete(f"/train/{job_id}").status_code == 200  # an admin may


def test_a_revoked_or_disabled_token_stops_working_at_once(
    cluster: tuple[str, Cluster], redis_server: str
) -> None:
    _, api = cluster
    with api.client("env_admin") as admin:
        made = admin.post("/users", json={"name": f"gone{time.time_ns() % 10**8}"})
        assert made.status_code == 201, made.text
        token, token_id, name = (
            made.json()["token"],
            made.json()["token_id"],
            made.json()["user"]["name"],
        )
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{api.url}/me", headers=headers).json() == {"name": name, "admin": False}
        assert admin.patch(f"/users/{name}", json={"disabled": True}).status_code == 200
        assert httpx.get(f"{api.url}/me", headers=headers).status_code == 401
        assert admin.patch(f"/users/{name}", json={"disabled": False}).status_code == 200
        assert httpx.get(f"{api.url}/me", headers=headers).status_code == 200
        assert admin.delete(f"/tokens/{token_id}").status_code == 200
        refused = httpx.get(f"{api.url}/me", headers=headers)
        assert refused.status_code == 401 and token not in refused.text
        malformed = httpx.get(f"{api.url}/me", headers={"Authorization": "Bearer tq_zz_short"})
        assert malformed.status_code == 401 and "tq_zz_short" not in malformed.text
