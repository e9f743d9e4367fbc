"""The scheduler as users meet it, through a real API server on a real Redis and the CLI
as a subprocess (direct to Redis, and remote over the API): a pending job's priority
(``PATCH /train/{id}``, ``trainq priority``), the pending queue (``GET /queue``,
``trainq queue``), owners' quotas (``/users/{name}/quota``, ``trainq users quota``) and
the fair-share figures of ``/stats``.

No worker serves these clusters, so every job stays pending and the queue's order and
reasons are the scheduler's alone. Each test uses owners of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.harness import BIN, REPO, wait_until
from trainq import client, connections
from trainq.config import Settings
from trainq.store.keys import Keys
from trainq.testing import ApiServer
from trainq.users.store import RedisUsers

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = f"sched-admin-{uuid.uuid4().hex}"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


@dataclass
class Cluster:
    """An API server with its own key prefix and queue, and a way to add users."""

    url: str
    redis_url: str
    prefix: str
    queue: str
    users: RedisUsers
    clients: list[httpx.Client] = field(default_factory=list)

    def user(self, base: str) -> tuple[str, httpx.Client]:
        """A new user of this test alone: their name and a client with their token."""
        name = f"{base}-{uuid.uuid4().hex[:6]}"
        return name, self.client(self.users.add(name)[1].secret)

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        """A client with ``token`` (default: an admin's); closed with the cluster."""
        headers = {"Authorization": f"Bearer {token}"}
        made = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(made)
        return made

    def cli(self, *args: str, remote_token: str | None = None, user: str = "nobody") -> Run:
        """``trainq ARGS`` direct to this cluster's Redis as ``user``, or with
        ``remote_token`` over its API (Redis then unreachable: only the API can answer)."""
        env = {k: v for k, v in os.environ.items() if k not in ("TRAINQ_API_URL", "TRAINQ_TOKEN")}
        env |= {"TRAINQ_REDIS_URL": self.redis_url, "TRAINQ_KEY_PREFIX": self.prefix,
                "TRAINQ_QUEUE": self.queue, "TRAINQ_USER": user}  # fmt: skip
        if remote_token is not None:
            env |= {"TRAINQ_API_URL": self.url, "TRAINQ_TOKEN": remote_token,
                    "TRAINQ_REDIS_URL": CLOSED_REDIS}  # fmt: skip
        return subprocess.run(
            [str(BIN / "trainq"), *args],
            capture_output=True, text=True, timeout=60, cwd=REPO, env=env, check=False,
        )  # fmt: skip


Run = subprocess.CompletedProcess[str]


def _cluster(redis_url: str, folder: Path, visible: str) -> Iterator[Cluster]:
    prefix = f"sched-{visible}-{uuid.uuid4().hex[:8]}:"
    queue = f"sched-{uuid.uuid4().hex[:8]}"  # nobody serves it
    users = RedisUsers(redis.Redis.from_url(redis_url, decode_responses=True), Keys(prefix))
    env = {
        "TRAINQ_REDIS_URL": redis_url,
        "TRAINQ_KEY_PREFIX": prefix,
        "TRAINQ_API_TOKENS": ADMIN_TOKEN,
        "TRAINQ_JOBS_VISIBLE": visible,
        "TRAINQ_API_RATE_PER_S": "0",
        "TRAINQ_QUEUE": queue,
        "TRAINQ_LOG_DIR": str(folder / "logs"),
    }
    server = ApiServer(folder / "api.log", env, cwd=REPO).start()
    cluster = Cluster(server.url, redis_url, prefix, queue, users)
    try:
        yield cluster
    finally:
        for made in cluster.clients:
            made.close()
        server.stop()


@pytest.fixture(scope="module")
def cluster(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster(redis_server, tmp_path_factory.mktemp("sched-all"), "all")


@pytest.fixture(scope="module")
def private(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster whose users see only their own jobs."""
    yield from _cluster(redis_server, tmp_path_factory.mktemp("sched-owner"), "owner")


def submit(api: httpx.Client, **spec: Any) -> str:
    answer = api.post("/train", json={"epochs": 1, **spec})
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def queue_of(api: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = api.get("/queue", params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_an_owner_raises_a_priority_up_to_their_highest_and_a_stranger_may_not(
    cluster: Cluster,
) -> None:
    alice, as_alice = cluster.user("alice")
    _, as_bob = cluster.user("bob")
    job_id = submit(as_alice)
    admin = cluster.client()
    refused = as_bob.patch(f"/train/{job_id}", json={"priority": "low"})
    assert refused.status_code == 403 and alice in refused.json()["detail"]
    too_high = as_alice.patch(f"/train/{job_id}", json={"priority": "high"})
    assert too_high.status_code == 403
    assert "priority 'high'" in too_high.json()["detail"]
    assert "'normal'" in too_high.json()["detail"]  # the highest alice may use
    assert as_alice.post("/train", json={"epochs": 1, "priority": "high"}).status_code == 403
    not_preemptible = as_alice.post("/train", json={"epochs": 1, "preemptible": False})
    assert not_preemptible.status_code == 403
    assert "only an admin" in not_preemptible.json()["detail"]

    raised = admin.patch(f"/users/{alice}/quota", json={"max_priority": "high"})
    assert raised.status_code == 200 and raised.json()["max_priority"] == "high"
    changed = as_alice.patch(f"/train/{job_id}", json={"priority": "high"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["spec"]["priority"] == "high"
    assert f"no live worker serves queue {cluster.queue}" in changed.json()["waiting"]
    assert as_alice.get(f"/train/{job_id}").json()["spec"]["priority"] == "high"
    submit(as_alice, priority="high")  # now within her highest

    assert as_alice.patch(f"/train/{job_id}", json={"preemptible": False}).status_code == 403
    shielded = admin.patch(f"/train/{job_id}", json={"preemptible": False})
    assert shielded.status_code == 200 and shielded.json()["spec"]["preemptible"] is False
    bad = [{}, {"priority": "urgent"}, {"priority": "low", "owner": "x"}]
    assert [as_alice.patch(f"/train/{job_id}", json=b).status_code for b in bad] == [422] * 3

    def audited() -> bool:
        entries = admin.get("/audit", params={"limit": 200}).json()["entries"]
        mine = {(e["action"], e["answer"]) for e in entries if e["target"] == job_id}
        return {("priority", 200), ("priority", 403)} <= mine

    wait_until(audited, 10, "the priority changes in the audit trail")


def test_only_pending_jobs_change_priority(cluster: Cluster, redis_server: str) -> None:
    _, as_carol = cluster.user("carol")
    cancelled = submit(as_carol)
    # A job the FIFO scheduler sent at once: admitted, no longer pending.
    fifo = Settings(
        redis_url=redis_server, key_prefix=cluster.prefix, queue=cluster.queue, scheduler="fifo"
    )
    admitted = client.submit(
        {"epochs": 1}, settings=fifo, records=connections.records(fifo), send=lambda *_: None
    )
    admin = cluster.client()
    assert as_carol.delete(f"/train/{cancelled}").status_code == 200
    after = as_carol.patch(f"/train/{cancelled}", json={"priority": "low"})
    assert after.status_code == 409 and "cancelled" in after.json()["detail"]
    sent = admin.patch(f"/train/{admitted}", json={"priority": "high"})
    assert sent.status_code == 409 and "pending" in sent.json()["detail"]
    assert admin.patch("/train/no-such-job", json={"priority": "low"}).status_code == 404


def test_the_queue_lists_higher_priority_first_then_older_with_reasons(cluster: Cluster) -> None:
    dora, as_dora = cluster.user("dora")
    admin = cluster.client()
    admin.patch(f"/users/{dora}/quota", json={"max_priority": "high"}).raise_for_status()
    older, newer = submit(as_dora, name="older"), submit(as_dora)
    urgent = submit(as_dora, priority="high")
    low = submit(as_dora, priority="low")
    found = queue_of(as_dora, owner=dora)
    assert [j["id"] for j in found["jobs"]] == [urgent, older, newer, low]
    assert found["total"] == 4
    positions = [j["position"] for j in found["jobs"]]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert [j["priority"] for j in found["jobs"]] == ["high", "normal", "normal", "low"]
    assert found["jobs"][1]["name"] == "older" and found["jobs"][0]["name"] is None
    for job in found["jobs"]:
        assert job["reason"] == f"no live worker serves queue {cluster.queue}"
        assert job["owner"] == dora and job["queue"] == cluster.queue
    first = queue_of(as_dora, owner=dora, limit=1)
    assert [j["id"] for j in first["jobs"]] == [urgent] and first["total"] == 4
    assert queue_of(as_dora, owner=dora, queue="elsewhere") == {"jobs": [], "total": 0}
    as_dora.patch(f"/train/{low}", json={"priority": "high"}).raise_for_status()
    reordered = [j["id"] for j in queue_of(as_dora, owner=dora)["jobs"]]
    assert reordered == [urgent, low, older, newer]  # high now, after the older high one
    as_dora.delete(f"/train/{older}").raise_for_status()
    assert older not in {j["id"] for j in queue_of(admin)["jobs"]}


def test_a_user_sees_only_their_queued_jobs_when_owners_see_only_theirs(private: Cluster) -> None:
    _, as_erin = private.user("erin")
    frank, as_frank = private.user("frank")
    erins = submit(as_erin)
    franks = submit(as_frank)
    admin = private.client()
    assert as_frank.patch(f"/train/{erins}", json={"priority": "low"}).status_code == 404
    seen = queue_of(as_frank)
    assert [j["id"] for j in seen["jobs"]] == [franks] and seen["total"] == 1
    everyone = {j["id"]: j["position"] for j in queue_of(admin)["jobs"]}
    assert seen["jobs"][0]["position"] == everyone[franks]  # the whole queue's place
    assert erins in everyone
    assert queue_of(as_frank, owner=frank)["total"] == 1
    assert queue_of(as_erin, owner=frank)["total"] == 0


def test_quotas_are_for_admins_merge_and_reset(cluster: Cluster) -> None:
    _, as_gina = cluster.user("gina")
    owner = f"direct-client-{uuid.uuid4().hex[:6]}"  # no user account: a TRAINQ_USER
    path = f"/users/{owner}/quota"
    admin = cluster.client()
    assert as_gina.get(path).status_code == 403
    refused = as_gina.patch(path, json={"gpus": 1})
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    fresh = admin.get(path).json()
    assert fresh["owner"] == owner and fresh["gpus"] is None and fresh["weight"] == 1
    assert fresh["default_max_priority"] == "normal"
    admin.patch(path, json={"gpus": 2, "jobs": 3}).raise_for_status()
    merged = admin.patch(path, json={"weight": 2.5}).json()
    assert (merged["gpus"], merged["jobs"], merged["weight"]) == (2, 3, 2.5)
    reset = admin.patch(path, json={"gpus": None, "weight": None}).json()
    assert (reset["gpus"], reset["jobs"], reset["weight"]) == (None, 3, 1)
    assert admin.get(path).json() == reset
    bad = [{"weight": 0}, {"gpus": -1}, {"max_priority": "top"}, {"disk": 1}]
    assert [admin.patch(path, json=b).status_code for b in bad] == [422] * 4
    assert admin.get("/users/not%20a%20name/quota").status_code == 422

    def audited() -> bool:
        entries = admin.get("/audit", params={"limit": 200}).json()["entries"]
        return {("users.quota", 403), ("users.quota", 200)} <= {
            (e["action"], e["answer"]) for e in entries if e["target"] == owner
        }

    wait_until(audited, 10, "the quota changes in the audit trail")


def test_stats_give_each_owner_their_share_and_quota(cluster: Cluster) -> None:
    hana, as_hana = cluster.user("hana")
    job_id = submit(as_hana)
    admin = cluster.client()
    admin.patch(f"/users/{hana}/quota", json={"gpus": 4, "weight": 3}).raise_for_status()

    def hanas() -> dict[str, Any]:
        users: list[dict[str, Any]] = as_hana.get("/stats").json()["users"]
        (mine,) = [u for u in users if u["name"] == hana]
        return mine

    pending = hanas()
    assert pending["jobs"]["queued"] == 1 and pending["running_jobs"] == 0
    assert (pending["quota_gpus"], pending["quota_jobs"], pending["weight"]) == (4, None, 3)
    assert pending["usage_gpu_hours"] == 0 and pending["standing"] == 0  # nothing ran yet
    as_hana.delete(f"/train/{job_id}").raise_for_status()
    idle = hanas()  # nothing pending or running: the scheduler does not see her now
    assert idle["jobs"]["cancelled"] == 1 and (idle["quota_gpus"], idle["weight"]) == (4, 3)


def test_the_cli_direct_lists_the_queue_changes_priority_and_sets_quotas(
    cluster: Cluster,
) -> None:
    ivan = f"ivan-{uuid.uuid4().hex[:6]}"
    ids = []
    for args in (["--name", "first"], ["--priority", "low"], ["--not-preemptible"]):
        made = cluster.cli("submit", "--epochs", "1", *args, user=ivan)
        assert made.returncode == 0, made.stderr
        ids.append(made.stdout.split()[0])
    listed = cluster.cli("queue", "--owner", ivan, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [j["id"] for j in json.loads(listed.stdout)] == [ids[0], ids[2], ids[1]]
    raised = cluster.cli("priority", ids[1], "high", user=ivan)  # direct: trusted
    assert raised.returncode == 0, raised.stderr
    assert raised.stdout.startswith(f"{ids[1]} priority high")
    assert "no live worker serves queue" in raised.stdout
    table = cluster.cli("queue", "--owner", ivan).stdout
    assert table.split()[:7] == ["position", "job", "owner", "priority", "queue", "age", "reason"]
    assert table.index(ids[1]) < table.index(ids[0]) < table.index(ids[2])
    status = cluster.cli("status", ids[2]).stdout
    assert "not preemptible" in status and "pending queue" in status

    assert cluster.cli("priority", "no-such-job", "low").returncode == 1
    cluster.cli("cancel", ids[0]).check_returncode()
    finished = cluster.cli("priority", ids[0], "low")
    assert finished.returncode == 1 and "cancelled" in finished.stderr

    quota = cluster.cli("users", "quota", ivan, "--gpus", "2", "--max-priority", "high", "--json")
    assert quota.returncode == 0, quota.stderr
    assert json.loads(quota.stdout)["gpus"] == 2
    kept = json.loads(cluster.cli("users", "quota", ivan, "--jobs", "1", "--json").stdout)
    assert (kept["gpus"], kept["jobs"], kept["max_priority"]) == (2, 1, "high")
    admin = cluster.client()
    assert admin.get(f"/users/{ivan}/quota").json()["jobs"] == 1  # the same store
    cleared = json.loads(cluster.cli("users", "quota", ivan, "--clear", "--json").stdout)
    assert (cleared["gpus"], cleared["jobs"], cleared["max_priority"]) == (None, None, None)
    assert cluster.cli("users", "quota", ivan, "--weight", "0").returncode == 2
    assert cluster.cli("users", "quota", "bad name").returncode == 2
    trail = connections.audit_trail(Settings(key_prefix=cluster.prefix)).page(limit=50)
    assert any(e.action == "users.quota" and e.target == ivan for e in trail.entries)


def test_the_remote_cli_does_the_same_over_the_api(cluster: Cluster) -> None:
    jane, _ = cluster.user("jane")
    token = cluster.users.issue(jane).secret
    refused = cluster.cli("submit", "--epochs", "1", "--priority", "high", remote_token=token)
    assert refused.returncode == 1 and "priority 'high'" in refused.stderr
    made = cluster.cli("submit", "--epochs", "1", remote_token=token)
    assert made.returncode == 0, made.stderr
    job_id = made.stdout.split()[0]
    lowered = cluster.cli("priority", job_id, "low", remote_token=token)
    assert lowered.returncode == 0, lowered.stderr
    assert lowered.stdout.startswith(f"{job_id} priority low")
    listed = json.loads(cluster.cli("queue", "--json", "--owner", jane, remote_token=token).stdout)
    assert [(j["id"], j["priority"]) for j in listed] == [(job_id, "low")]
    assert "priority  low" in cluster.cli("status", job_id, remote_token=token).stdout
    not_admin = cluster.cli("users", "quota", jane, "--gpus", "1", remote_token=token)
    assert not_admin.returncode == 1 and "admin" in not_admin.stderr
    quota = cluster.cli("users", "quota", jane, "--max-priority", "high", "--json",
                        remote_token=ADMIN_TOKEN)  # fmt: skip
    assert quota.returncode == 0, quota.stderr
    assert json.loads(quota.stdout)["max_priority"] == "high"
    raised = cluster.cli("priority", job_id, "high", remote_token=token)
    assert raised.returncode == 0, raised.stderr
    cleared = cluster.cli("users", "quota", jane, "--clear", "--json", remote_token=ADMIN_TOKEN)
    assert json.loads(cleared.stdout)["max_priority"] is None
    cluster.cli("cancel", job_id, remote_token=token).check_returncode()
    finished = cluster.cli("priority", job_id, "low", remote_token=token)
    assert finished.returncode == 1 and "cancelled" in finished.stderr
