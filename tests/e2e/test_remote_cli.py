"""The remote CLI against a real API server and worker: `trainq login`, a live
``logs -f``, downloads, refusals, an API that does not answer, and no token anywhere.

Every CLI here gets a TRAINQ_REDIS_URL on a closed port: a command that went to Redis
instead of the API would fail with exit 3, naming Redis.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import BIN, REPO, Worker, free_port
from trainq import connections
from trainq.jobs.status import JobStatus
from trainq.testing import ApiServer

pytestmark = pytest.mark.e2e

# Distinctive, so that finding it in any output or log file means it leaked.
TOKEN = f"tq-e2e-secret-{uuid.uuid4().hex}"
CLOSED_REDIS = "redis://127.0.0.1:1/0"
DEADLINE_S = 5.0


@pytest.fixture(scope="module")
def api(worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    log = tmp_path_factory.mktemp("api") / "api.log"
    server = ApiServer(log, {"TRAINQ_API_TOKENS": TOKEN}, cwd=REPO).start()
    yield server
    server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """This test's config folder (the saved login) and CLI log folder."""
    return tmp_path


def trainq(
    home: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI with no API in its environment (unless ``env``), its login in ``home``."""
    base = {k: v for k, v in os.environ.items() if k not in ("TRAINQ_API_URL", "TRAINQ_TOKEN")}
    own = {
        "TRAINQ_CONFIG_DIR": str(home / "config"),
        "TRAINQ_LOG_DIR": str(home / "logs"),
        "TRAINQ_REDIS_URL": CLOSED_REDIS,
    }
    return subprocess.run(
        [str(BIN / "trainq"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**base, **own, **(env or {})},
        input=stdin if stdin is not None else "",
        check=False,
    )


def remote(api: ApiServer, token: str = TOKEN) -> dict[str, str]:
    return {"TRAINQ_API_URL": api.url, "TRAINQ_TOKEN": token}


def record_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_saves_a_private_login_then_commands_go_over_the_api(
    api: ApiServer, home: Path
) -> None:
    login = trainq(home, "login", api.url, "--token", TOKEN)

    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == f"logged in to {api.url} as admin (admin)"
    saved = home / "config" / "login.json"
    assert mode(saved) == 0o600 and mode(saved.parent) == 0o700
    assert json.loads(saved.read_text()) == {"api_url": api.url, "token": TOKEN}

    submitted = trainq(home, "submit", "--epochs", "1", "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    assert record_of(submitted)["status"] == "succeeded"
    who = trainq(home, "whoami")
    assert who.stdout.strip() == f"admin (admin) at the trainq API {api.url}"

    logout = trainq(home, "logout")
    assert logout.returncode == 0 and not saved.exists()
    direct = trainq(home, "list")  # direct again: to the closed Redis
    assert direct.returncode == 3 and CLOSED_REDIS in direct.stderr


def test_login_reads_the_token_from_stdin(api: ApiServer, home: Path) -> None:
    login = trainq(home, "login", api.url, stdin=TOKEN + "\n")

    assert login.returncode == 0, login.stderr
    assert trainq(home, "whoami").stdout.startswith("admin (admin)")


def test_a_wrong_token_is_refused_with_the_apis_reason_and_nothing_is_saved(
    api: ApiServer, home: Path
) -> None:
    wrong = f"tq-wrong-{uuid.uuid4().hex}"
    login = trainq(home, "login", api.url, "--token", wrong)

    assert login.returncode == 1
    assert "refused the token" in login.stderr and api.url in login.stderr
    assert not (home / "config" / "login.json").exists()
    listed = trainq(home, "list", env=remote(api, wrong))
    assert listed.returncode == 1
    assert len(listed.stderr.strip().splitlines()) == 1, listed.stderr
    for done in (login, listed):
        assert wrong not in done.stdout + done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


COMMANDS = [
    ["list"], ["status", "j1"], ["submit", "--epochs", "1"], ["cancel", "j1"],
    ["logs", "j1"], ["logs", "--grep", "loss"], ["artifacts", "j1"], ["whoami"],
]  # fmt: skip


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_api_that_does_not_answer_is_exit_3_within_seconds_naming_it(
    kind: str, silent_port: int, home: Path
) -> None:
    url = f"http://127.0.0.1:{free_port() if kind == 'refused' else silent_port}"
    env = {"TRAINQ_API_URL": url, "TRAINQ_TOKEN": TOKEN, "TRAINQ_API_TIMEOUT_S": "1"}
    runs = [(["login", url, "--token", TOKEN], {"TRAINQ_API_TIMEOUT_S": "1"})]
    runs += [(args, env) for args in COMMANDS]
    for args, extra in runs:
        started = time.monotonic()
        done = trainq(home, *args, env=extra)
        took_s = time.monotonic() - started

        assert done.returncode == 3, (args, done.stderr)
        assert took_s < DEADLINE_S, (args, f"took {took_s:.1f} s")
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and url in lines[0], (args, done.stderr)
        assert TOKEN not in done.stderr and done.stdout == ""


def test_logs_follow_shows_lines_live_and_exits_when_the_job_ends(
    api: ApiServer, home: Path
) -> None:
    ticks = (
        "import time\nfor i in range(8):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.5)"
    )
    submitted = trainq(home, "submit", "--json", "--", sys.executable, "-c", ticks, env=remote(api))
    job_id = record_of(submitted)["id"]
    base = {k: v for k, v in os.environ.items() if k not in ("TRAINQ_API_URL", "TRAINQ_TOKEN")}
    follower = subprocess.Popen(
        [str(BIN / "trainq"), "logs", job_id, "-f"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**base, **remote(api), "TRAINQ_REDIS_URL": CLOSED_REDIS},
    )
    arrived: queue.Queue[tuple[str, JobStatus]] = queue.Queue()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            arrived.put((line.rstrip("\n"), connections.records().get(job_id).status))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first, status_then = arrived.get(timeout=60)

    assert first == "tick 0"
    assert status_then == JobStatus.RUNNING  # shown while the job still ran
    assert follower.wait(60) == 0  # and it exits by itself once the job ended
    reader.join(10)
    assert follower.stdout is not None
    follower.stdout.close()
    rest = [arrived.get_nowait()[0] for _ in range(arrived.qsize())]
    assert [first, *rest] == [f"tick {i}" for i in range(8)]
    assert connections.records().get(job_id).status == JobStatus.SUCCEEDED


def test_artifacts_download_over_the_api_checked_against_the_record(
    api: ApiServer, home: Path, tmp_path: Path
) -> None:
    submitted = trainq(home, "submit", "--epochs", "1", "--wait", "--json", env=remote(api))
    assert submitted.returncode == 0, submitted.stderr
    record = record_of(submitted)
    into = tmp_path / "fetched"

    fetched = trainq(
        home, "artifacts", record["id"], "--download", str(into), "--path", "outputs/*",
        env=remote(api),
    )  # fmt: skip

    assert fetched.returncode == 0, fetched.stderr
    wanted = {a["path"]: a for a in record["artifacts"] if a["path"].startswith("outputs/")}
    assert "outputs/model.pt" in wanted
    got = {p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file()}
    assert got == set(wanted)  # and no partial file left
    for path, artifact in wanted.items():
        assert hashlib.sha256((into / path).read_bytes()).hexdigest() == artifact["sha256"]


def test_another_users_job_cannot_be_cancelled_but_its_owner_can(
    api: ApiServer, home: Path
) -> None:
    name = f"bob-{uuid.uuid4().hex[:6]}"
    bob = connections.users().add(name)[1].secret
    script = "import time\nprint('ready', flush=True)\ntime.sleep(120)"
    submitted = trainq(home, "submit", "--json", "--", sys.executable, "-c", script,
                       env=remote(api))  # fmt: skip
    job_id = record_of(submitted)["id"]

    assert trainq(home, "whoami", env=remote(api, bob)).stdout.startswith(f"{name} (user)")
    refused = trainq(home, "cancel", job_id, env=remote(api, bob))
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "Traceback" not in refused.stderr and bob not in refused.stderr
    assert connections.records().get(job_id).status in (JobStatus.QUEUED, JobStatus.RUNNING)

    cancelled = trainq(home, "cancel", job_id, "--json", env=remote(api))
    assert cancelled.returncode == 0, cancelled.stderr
    assert record_of(cancelled)["status"] == "cancelled"


def test_no_token_in_the_clis_output_or_log_files(api: ApiServer, home: Path) -> None:
    outputs = [trainq(home, "login", api.url, "--token", TOKEN)]
    job_id = record_of(trainq(home, "submit", "--epochs", "1", "--wait", "--json"))["id"]
    for args in (
        ["status", job_id],
        ["list"],
        ["logs", job_id, "--json"],
        ["whoami"],
        ["artifacts", job_id],
        ["status", "no-such-job"],
        ["submit", "--epochs", "0"],
    ):
        outputs.append(trainq(home, *args))  # fmt: skip
    outputs.append(trainq(home, "list", env={"TRAINQ_API_URL": "http://127.0.0.1:1"}))

    assert [done.returncode for done in outputs[-3:]] == [1, 2, 3]
    logs = sorted((home / "logs").glob("TrainingAgent_*.log"))
    assert logs, "the CLI wrote no log file"
    assert f"submitted job {job_id}" in "".join(p.read_text() for p in logs)
    for done in outputs:
        assert TOKEN not in done.stdout + done.stderr
    for path in logs:
        assert TOKEN not in path.read_text()
