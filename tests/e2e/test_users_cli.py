"""`trainq users ...` driven as an admin would, against the real Redis: tokens it prints
authenticate (until revoked, or their user disabled), exit codes, and the audit trail."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.harness import BIN, REPO
from trainq.errors import NotAuthenticated
from trainq.store.keys import Keys
from trainq.users.model import Principal
from trainq.users.store import RedisUsers

pytestmark = pytest.mark.e2e

ADMIN = "ops-admin"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def prefix() -> str:
    return f"users-e2e-{uuid.uuid4().hex}:"


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def trainq(redis_server: str, prefix: str, log_dir: Path) -> Run:
    """Runs ``trainq ARGS...`` on this test's own cluster (key prefix) and log folder."""
    env = {
        **os.environ,
        "TRAINQ_REDIS_URL": redis_server,
        "TRAINQ_KEY_PREFIX": prefix,
        "TRAINQ_LOG_DIR": str(log_dir),
        "TRAINQ_USER": ADMIN,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "trainq"), *args],
            capture_output=True, text=True, timeout=60, cwd=REPO, env=env, check=False,
        )  # fmt: skip

    return run


@pytest.fixture
def users(redis_server: str, prefix: str) -> Iterator[RedisUsers]:
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    yield RedisUsers(client, Keys(prefix))
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def _issued(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The token a successful ``add``/``token`` printed (alone on stdout), and its id."""
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    token = lines[0]
    token_id = token.split("_")[1]
    assert token == proc.stdout.strip() and token.startswith(f"tq_{token_id}_")
    return token, token_id


def _refusal(users: RedisUsers, token: str) -> str:
    with pytest.raises(NotAuthenticated) as caught:
        users.authenticate(token)
    return str(caught.value)


def _audit_entries(log_dir: Path) -> list[dict[str, Any]]:
    files = sorted(log_dir.glob("TrainingAudit_*.log"))
    assert files, f"no audit file in {log_dir}"
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_add_prints_a_token_that_works_until_revoked(trainq: Run, users: RedisUsers) -> None:
    added = trainq("users", "add", "bob")

    token, token_id = _issued(added)
    assert f"user bob added (user); token id {token_id}." in added.stderr
    assert "shown only now" in added.stderr and "trainq login" in added.stderr
    assert token not in added.stderr
    assert users.authenticate(token) == Principal("bob", admin=False, token_id=token_id)

    revoked = trainq("users", "revoke", token_id)

    assert revoked.returncode == 0, revoked.stderr
    assert token_id in revoked.stdout
    assert _refusal(users, token) == "unknown or revoked token"


def test_disable_refuses_every_token_of_the_user_until_enabled(
    trainq: Run, users: RedisUsers
) -> None:
    first, _ = _issued(trainq("users", "add", "carol", "--admin"))
    another = trainq("users", "token", "carol")
    second, second_id = _issued(another)
    assert f"token id {second_id} issued to carol." in another.stderr
    assert users.authenticate(first).admin and users.authenticate(second).admin

    disabled = trainq("users", "disable", "carol")

    assert disabled.returncode == 0, disabled.stderr
    assert _refusal(users, first) == _refusal(users, second) == "user carol is disabled"

    enabled = trainq("users", "enable", "carol")

    assert enabled.returncode == 0, enabled.stderr
    assert users.authenticate(first).name == users.authenticate(second).name == "carol"


def test_list_and_tokens_show_users_and_tokens_without_secrets(
    trainq: Run, users: RedisUsers
) -> None:
    alice_token, alice_id = _issued(trainq("users", "add", "alice", "--admin"))
    bob_token, bob_id = _issued(trainq("users", "add", "bob"))
    _, bob_second_id = _issued(trainq("users", "token", "bob"))
    assert trainq("users", "revoke", bob_id).returncode == 0
    assert trainq("users", "disable", "bob").returncode == 0
    users.authenticate(alice_token)

    listed = trainq("users", "list", "--json")
    table = trainq("users", "list")
    all_tokens = trainq("users", "tokens", "--json")
    bobs = trainq("users", "tokens", "bob", "--json")
    token_table = trainq("users", "tokens")

    assert listed.returncode == table.returncode == token_table.returncode == 0
    rows = {u["name"]: u for u in json.loads(listed.stdout)["users"]}
    assert list(rows) == ["alice", "bob"]
    assert (rows["alice"]["admin"], rows["alice"]["disabled"], rows["alice"]["live_tokens"]) == (
        True,
        False,
        1,
    )
    assert (rows["bob"]["admin"], rows["bob"]["disabled"], rows["bob"]["live_tokens"]) == (
        False,
        True,
        1,
    )
    alice_line = next(line for line in table.stdout.splitlines() if line.startswith("alice"))
    bob_line = next(line for line in table.stdout.splitlines() if line.startswith("bob"))
    assert alice_line.split()[1:4] == ["admin", "enabled", "1"]
    assert bob_line.split()[1:4] == ["user", "disabled", "1"]

    every = json.loads(all_tokens.stdout)["tokens"]
    assert [t["id"] for t in every] == [alice_id, bob_id, bob_second_id]
    assert [t["revoked"] for t in every] == [False, True, False]
    assert every[0]["last_used_at"] is not None and every[1]["last_used_at"] is None
    assert [t["id"] for t in json.loads(bobs.stdout)["tokens"]] == [bob_id, bob_second_id]
    revoked_line = next(line for line in token_table.stdout.splitlines() if bob_id in line)
    assert revoked_line.split()[-1] == "revoked" and "never" in revoked_line
    for proc in (listed, table, all_tokens, bobs, token_table):
        for secret in (alice_token, bob_token):
            assert secret.split("_", 2)[2] not in proc.stdout + proc.stderr


def test_refusals_exit_1_for_unknown_or_taken_and_2_for_an_invalid_name(
    trainq: Run, users: RedisUsers
) -> None:
    token, _ = _issued(trainq("users", "add", "dave"))

    cases = {
        ("users", "add", "dave"): (1, "taken"),
        ("users", "add", "not a name"): (2, "letters, digits"),
        ("users", "add", "--", "-dash-first"): (2, "starting with a letter"),
        ("users", "token", "erin"): (1, "erin"),
        ("users", "tokens", "erin"): (1, "erin"),
        ("users", "disable", "erin"): (1, "erin"),
        ("users", "enable", "erin"): (1, "erin"),
        ("users", "revoke", "0123456789abcdef"): (1, "0123456789abcdef"),
        ("users", "revoke", token): (1, "no token with that id"),  # the token, not its id
    }
    for args, (code, said) in cases.items():
        proc = trainq(*args)
        assert (proc.returncode, proc.stdout) == (code, ""), (args, proc.stderr)
        assert said in proc.stderr, (args, proc.stderr)
        assert token.split("_", 2)[2] not in proc.stderr
    assert users.authenticate(token).name == "dave"  # nothing changed
    assert [u.name for u in users.list()] == ["dave"]


def test_each_change_is_one_audit_line_without_the_secret(
    trainq: Run, users: RedisUsers, log_dir: Path
) -> None:
    token, token_id = _issued(trainq("users", "add", "frank", "--admin"))
    second, second_id = _issued(trainq("users", "token", "frank"))
    for args in (("revoke", token_id), ("disable", "frank"), ("enable", "frank")):
        assert trainq("users", *args).returncode == 0
    assert trainq("users", "add", "frank").returncode == 1
    assert trainq("users", "add", "bad name").returncode == 2
    assert trainq("users", "disable", "nobody").returncode == 1
    assert trainq("users", "list").returncode == 0  # reads are not audited

    entries = _audit_entries(log_dir)

    summary = [(e["action"], e["answer"], e["target"], e.get("token_id")) for e in entries]
    assert summary == [
        ("users.add", 200, "frank", token_id),
        ("users.token", 200, "frank", second_id),
        ("tokens.revoke", 200, token_id, None),
        ("users.disable", 200, "frank", None),
        ("users.enable", 200, "frank", None),
        ("users.add", 409, "frank", None),
        ("users.add", 422, "bad name", None),
        ("users.disable", 404, "nobody", None),
    ]
    assert all(e["actor"] == ADMIN and e["address"] == "local" for e in entries)
    assert all(isinstance(e["ts"], float) and e.get("detail") for e in entries)
    every_log = "".join(p.read_text() for p in log_dir.rglob("*") if p.is_file())
    for issued in (token, second):
        assert issued.split("_", 2)[2] not in every_log


def test_an_admin_manages_users_through_the_api_without_redis(
    redis_server: str, prefix: str, tmp_path: Path
) -> None:
    """`trainq users` in remote mode: the API's admin routes with the caller's token, no
    Redis reachable from the CLI, and the API's audit trail records who asked."""
    from trainq.testing import ApiServer

    server_env = {"TRAINQ_KEY_PREFIX": prefix, "TRAINQ_API_TOKENS": ADMIN,
                  "TRAINQ_API_RATE_PER_S": "0"}  # fmt: skip
    server = ApiServer(tmp_path / "api.log", server_env, cwd=REPO).start()

    def remote(token: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TRAINQ_API_URL": server.url, "TRAINQ_TOKEN": token,
               "TRAINQ_REDIS_URL": "redis://127.0.0.1:1/0",  # unreachable: the API only
               "TRAINQ_LOG_DIR": str(tmp_path)}  # fmt: skip
        return subprocess.run(
            [str(BIN / "trainq"), "users", *args],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False,
        )  # fmt: skip

    try:
        added = remote(ADMIN, "add", "rae")
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip()
        assert token.startswith("tq_") and server.url in added.stderr
        listed = remote(ADMIN, "list", "--json")
        assert "rae" in {u["name"] for u in json.loads(listed.stdout)["users"]}
        assert remote(ADMIN, "add", "rae").returncode == 1  # taken
        assert remote(ADMIN, "add", "-bad-").returncode == 2
        refused = remote(token, "add", "sneaky")  # rae is no admin
        assert refused.returncode == 1 and "admin" in refused.stderr
        assert remote(ADMIN, "disable", "rae").returncode == 0
        assert remote(token, "list").returncode == 1  # a disabled user's token: 401
        assert remote(ADMIN, "disable", "nobody").returncode == 1
        audit = subprocess.run(
            ["curl", "-s", "-H", f"Authorization: Bearer {ADMIN}", f"{server.url}/audit"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        entries = json.loads(audit)["entries"]
        assert {("users.add", "rae", 201), ("users.update", "rae", 200)} <= {
            (e["action"], e["target"], e["answer"]) for e in entries
        }
        assert token.split("_", 2)[2] not in audit
    finally:
        server.stop()
