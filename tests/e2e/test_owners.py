"""Every job has an owner, through a real API server, Redis and prefork worker: the
token's user through the API, TRAINQ_USER for direct clients; per-user figures in
/stats; the queued-jobs cap; and no token in any log or audit line."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import BIN, REPO, STATE_DIR, Worker, wait_until
from trainq import connections
from trainq.testing import ApiServer
from trainq.users import tokens

pytestmark = pytest.mark.e2e


class Team:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens

    def client(self, name: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _users(*names: str) -> dict[str, str]:
    users = connections.users()
    suffix = uuid.uuid4().hex[:6]
    return {name: users.add(f"{name}-{suffix}")[1].secret for name in names}


def _name(team: Team, who: str) -> str:
    with team.client(who) as client:
        name: str = client.get("/me").json()["name"]
    return name


@pytest.fixture(scope="module")
def team(worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """An API server on the worker's cluster, and two users' tokens."""
    folder = tmp_path_factory.mktemp("owners")
    env = {"TRAINQ_API_TOKENS": "owners-admin", "TRAINQ_API_RATE_PER_S": "0"}
    server = ApiServer(folder / "api.log", env, cwd=REPO).start()
    yield Team(server.url, _users("alice", "bob"))
    server.stop()


def wait_final(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/train/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(final, 120, f"job {job_id} to end")
    assert job is not None
    return job


def test_the_tokens_user_owns_what_they_submit_and_stats_count_their_hours(team: Team) -> None:
    alice = _name(team, "alice")
    with team.client("alice") as client, team.client("bob") as other:
        job_id = client.post("/train", json={"epochs": 2}).json()["id"]
        job = wait_final(client, job_id)
        assert job["status"] == "succeeded", job["error"]
        assert job["owner"] == alice
        theirs = other.get("/train", params={"owner": alice}).json()["jobs"]
        assert job_id in [j["id"] for j in theirs]
        assert {j["owner"] for j in theirs} == {alice}
        assert other.get("/train", params={"owner": "nobody-here"}).json()["jobs"] == []
        usage = {u["name"]: u for u in other.get("/stats").json()["users"]}
        assert usage[alice]["jobs"]["succeeded"] == 1
        assert usage[alice]["cpu_hours"] > 0 and usage[alice]["gpu_hours"] == 0
        assert usage[alice]["running_gpus"] == 0


def test_a_direct_client_submits_as_trainq_user(team: Team) -> None:
    env = {**os.environ, "TRAINQ_USER": "direct-dora"}
    done = subprocess.run(
        [str(BIN / "trainq"), "submit", "--epochs", "1", "--wait", "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["owner"] == "direct-dora"
    listed = subprocess.run(
        [str(BIN / "trainq"), "list", "--owner", "direct-dora", "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [record["id"]]
    shown = subprocess.run(
        [str(BIN / "trainq"), "status", record["id"]],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and "direct-dora" in shown.stdout, shown.stdout


def test_the_queued_cap_refuses_a_submit_by_api_and_by_cli(
    redis_server: str, tmp_path: Path
) -> None:
    """On a cluster whose queue no worker serves, so jobs stay queued."""
    queue = f"capped-{uuid.uuid4().hex[:8]}"
    capped = {"TRAINQ_MAX_QUEUED_PER_USER": "2", "TRAINQ_QUEUE": queue}
    tokens = _users("carl")
    server = ApiServer(
        tmp_path / "api.log", {**capped, "TRAINQ_API_RATE_PER_S": "0"}, cwd=REPO
    ).start()
    try:
        team = Team(server.url, tokens)
        with team.client("carl") as carl:
            for _ in range(2):
                assert carl.post("/train", json={"epochs": 1}).status_code == 202
            refused = carl.post("/train", json={"epochs": 1})
            assert refused.status_code == 429, refused.text
            assert "TRAINQ_MAX_QUEUED_PER_USER=2" in refused.json()["detail"]
            name = carl.get("/me").json()["name"]
            assert len(carl.get("/train", params={"owner": name}).json()["jobs"]) == 2
        env = {**os.environ, **capped, "TRAINQ_USER": f"cli-{queue}"}
        command = [str(BIN / "trainq"), "submit", "--epochs", "1"]
        run = {"capture_output": True, "text": True, "env": env, "cwd": REPO, "timeout": 60}
        answers = [subprocess.run(command, check=False, **run) for _ in range(3)]  # type: ignore[call-overload]
        assert [a.returncode for a in answers] == [0, 0, 1], [a.stderr for a in answers]
        assert "TRAINQ_MAX_QUEUED_PER_USER=2" in answers[2].stderr
    finally:
        server.stop()


def test_no_token_appears_in_any_log_or_audit_line(team: Team) -> None:
    with team.client("bob") as bob:
        job_id = bob.post("/train", json={"epochs": 1}).json()["id"]
        wait_final(bob, job_id)
        bob.delete(f"/train/{job_id}")  # 409: already final, audited all the same
    with httpx.Client(base_url=team.url, timeout=30) as anonymous:
        bad = anonymous.get("/me", headers={"Authorization": f"Bearer {team.tokens['bob']}x"})
        assert bad.status_code == 401

    def audited() -> bool:  # the submit and the cancel, written just after the answers
        audit = "".join(p.read_text() for p in (STATE_DIR / "logs").glob("TrainingAudit_*.log"))
        return audit.count(job_id) >= 2

    wait_until(audited, 10, "the audit trail to hold the submit and the cancel")
    texts = [
        path.read_text(errors="replace")
        for path in (STATE_DIR / "logs").rglob("*")
        if path.is_file()
    ]
    # The secret part of each token (the admin token is all secret); a whole token
    # would be found too, as it holds its secret.
    secrets = [tokens.parse(t)[1] for t in team.tokens.values()] + ["owners-admin"]
    for secret in secrets:
        assert not any(secret in text for text in texts), "a token is in a log file"


def test_an_admin_reads_who_did_what_in_the_audit_trail(team: Team) -> None:
    alice = _name(team, "alice")
    with team.client("alice") as client:
        job_id = client.post("/train", json={"epochs": 1}).json()["id"]
        assert client.get("/audit").status_code == 403  # not an admin
    admin = httpx.Client(
        base_url=team.url, headers={"Authorization": "Bearer owners-admin"}, timeout=30
    )

    def entry() -> dict[str, Any] | None:
        entries = admin.get("/audit", params={"limit": 500}).json()["entries"]
        return next((e for e in entries if e["target"] == job_id), None)

    with admin:
        found = wait_until(entry, 10, "the submit in GET /audit")
    assert found is not None
    assert (found["actor"], found["action"], found["answer"]) == (alice, "submit", 202)
    assert found["address"] == "127.0.0.1" and found["token_id"]


def test_over_its_rate_a_token_gets_429_with_retry_after(redis_server: str, tmp_path: Path) -> None:
    tokens = _users("rita", "sam")
    env = {"TRAINQ_API_RATE_PER_S": "0.5", "TRAINQ_API_RATE_BURST": "3"}
    server = ApiServer(tmp_path / "api.log", env, cwd=REPO).start()
    try:
        team = Team(server.url, tokens)
        with team.client("rita") as rita, team.client("sam") as sam:
            answers = [rita.get("/me").status_code for _ in range(4)]
            assert answers == [200, 200, 200, 429]
            refused = rita.get("/me")
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
            assert "per second per token" in refused.json()["detail"]
            assert sam.get("/me").status_code == 200  # another token, another bucket
            assert httpx.get(f"{server.url}/health").status_code in (200, 503)  # not limited
    finally:
        server.stop()
