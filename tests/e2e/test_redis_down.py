"""With Redis down, interactive callers answer within seconds and say what is down.

Two kinds of "down": nothing listens on the port (connection refused, at once), and
a server that accepts connections but never answers (each command waits for its
timeout). The CLI prints one line naming the Redis URL and exits 3; every API route
answers ``503`` JSON with ``Retry-After``, ``/health`` within 2 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import BIN, REPO, free_port
from trainq.testing import ApiServer

pytestmark = pytest.mark.e2e

# What a CLI command may spend waiting on a dead Redis, beyond its own start-up (which
# `trainq --help`, run just before, measures under the same machine load).
CLI_REDIS_WAIT_S = 4.0
API_DEADLINE_S = 5.0
HEALTH_DEADLINE_S = 2.0
JOB = "00000000-0000-0000-0000-000000000000"


class SilentServer:
    """Accepts TCP connections on a free port and never answers a byte."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port = int(self._socket.getsockname()[1])
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    server = SilentServer()
    yield server.port
    server.close()


def redis_url(kind: str, request: pytest.FixtureRequest) -> str:
    """A Redis that is down: nothing listens ("refused"), or nothing answers ("silent")."""
    port = free_port() if kind == "refused" else request.getfixturevalue("silent_port")
    return f"redis://:s3cret@127.0.0.1:{port}/0"


def shown(url: str) -> str:
    return url.replace(":s3cret@", ":***@")


# Every command against a refused connection; a few against a silent server, where
# each waits for its timeout (the others take the same client).
CLI_CASES = [
    *(("refused", args) for args in [
        ["list"], ["status", JOB], ["submit", "--epochs", "1"],
        ["submit", "--epochs", "1", "--wait"], ["cancel", JOB], ["logs", JOB],
        ["logs", "--grep", "loss"],
    ]),
    ("silent", ["list"]),
    ("silent", ["submit", "--epochs", "1", "--wait"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "args"), CLI_CASES, ids=[f"{k}-{' '.join(a[:2])}" for k, a in CLI_CASES]
)
def test_every_cli_command_fails_fast_with_one_line_naming_redis(
    kind: str, args: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dead_redis = redis_url(kind, request)
    env = {**os.environ, "TRAINQ_REDIS_URL": dead_redis, "TRAINQ_LOG_DIR": str(tmp_path)}
    started = time.monotonic()
    subprocess.run([str(BIN / "trainq"), "--help"], capture_output=True, cwd=REPO, env=env,
                   timeout=60, check=True)  # fmt: skip
    startup_s = time.monotonic() - started
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "trainq"), *args],
        capture_output=True, text=True, cwd=REPO, timeout=60, env=env,
    )  # fmt: skip
    took_s = time.monotonic() - started

    assert done.returncode == 3, done.stderr
    waited_s = took_s - startup_s
    assert waited_s < CLI_REDIS_WAIT_S, f"took {took_s:.1f} s, of which start-up {startup_s:.1f} s"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert shown(dead_redis) in lines[0] and "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.fixture(scope="module", params=["refused", "silent"])
def dead_redis(request: pytest.FixtureRequest) -> str:
    return redis_url(request.param, request)


@pytest.fixture(scope="module")
def api(dead_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    env = {"TRAINQ_REDIS_URL": dead_redis, "TRAINQ_API_TOKENS": "t0ken"}
    server = ApiServer(tmp_path_factory.mktemp("api") / "api.log", env, cwd=REPO).start()
    headers = {"Authorization": "Bearer t0ken"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client
    server.stop()


def test_health_answers_503_within_two_seconds(api: httpx.Client, dead_redis: str) -> None:
    started = time.monotonic()
    reply = api.get("/health")
    took_s = time.monotonic() - started

    assert reply.status_code == 503
    assert took_s < HEALTH_DEADLINE_S, f"took {took_s:.1f} s"
    body = reply.json()
    assert body["ok"] is False and body["checks"]["redis"].startswith("unreachable")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/train", {"epochs": 1}),
        ("GET", "/train", None),
        ("GET", f"/train/{JOB}", None),
        ("DELETE", f"/train/{JOB}", None),
        ("GET", f"/train/{JOB}/logs", None),
        ("GET", "/stats", None),
        ("GET", "/metrics", None),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_route_answers_503_json_naming_redis(
    api: httpx.Client, dead_redis: str, method: str, path: str, body: object
) -> None:
    started = time.monotonic()
    reply = api.request(method, path, json=body)
    took_s = time.monotonic() - started

    assert reply.status_code == 503, reply.text
    assert took_s < API_DEADLINE_S, f"took {took_s:.1f} s"
    assert reply.headers["content-type"] == "application/json"
    assert int(reply.headers["Retry-After"]) > 0
    detail = reply.json()["detail"]
    assert shown(dead_redis) in detail and "s3cret" not in reply.text
