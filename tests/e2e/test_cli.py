"""The `trainq` and `celery` commands, driven as a user would, against a real worker.

Every job command runs in both modes, with the same assertions: ``direct`` (to Redis)
and ``remote`` (over a real API server, with TRAINQ_REDIS_URL pointing at a closed
port: a remote command that touched Redis would fail with exit 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import BIN, REPO, Worker, wait_until
from trainq.testing import ApiServer

pytestmark = pytest.mark.e2e

TOKEN = "e2e-cli-token"
# Nothing listens on port 1: the remote CLI must never need Redis.
CLOSED_REDIS = "redis://127.0.0.1:1/0"
DIRECT_USER = "e2e-direct"
API_TOKEN_USER = "admin"  # whom a TRAINQ_API_TOKENS token names (trainq.users.model)


@dataclass(frozen=True)
class Mode:
    name: str
    env: dict[str, str]  # on top of the test run's environment
    owner: str  # who owns the jobs the CLI submits


@pytest.fixture(scope="module", params=["direct", "remote"])
def mode(
    request: pytest.FixtureRequest, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mode]:
    """How the CLI reaches jobs; one API server serves all of a module's remote tests."""
    # An empty config folder: a developer's own `trainq login` never makes "direct" remote.
    config = {"TRAINQ_CONFIG_DIR": str(tmp_path_factory.mktemp("config"))}
    if request.param == "direct":
        yield Mode("direct", {**config, "TRAINQ_USER": DIRECT_USER}, DIRECT_USER)
        return
    log = tmp_path_factory.mktemp("api") / "api.log"
    server = ApiServer(log, {"TRAINQ_API_TOKENS": TOKEN}, cwd=REPO).start()
    env = {
        **config,
        "TRAINQ_API_URL": server.url,
        "TRAINQ_TOKEN": TOKEN,
        "TRAINQ_REDIS_URL": CLOSED_REDIS,
    }
    yield Mode("remote", env, API_TOKEN_USER)
    server.stop()


def run(mode: Mode | None, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRAINQ_API_URL", "TRAINQ_TOKEN")}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        env={**env, **(mode.env if mode else {})},
        check=False,
    )


def record_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def finished(mode: Mode, worker: Worker) -> dict[str, Any]:
    """A 2-epoch job that succeeded, submitted in this mode; its record."""
    submitted = run(mode, "trainq", "submit", "--epochs", "2", "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    return record_of(submitted)


def test_submit_wait_json_then_status_prints_the_same_record(
    mode: Mode, finished: dict[str, Any]
) -> None:
    record = finished
    assert record["status"] == "succeeded"
    assert record["owner"] == mode.owner
    assert (record["progress"]["epoch"], record["progress"]["epochs"]) == (2, 2)
    assert len(record["attempts"]) == 1
    assert record["result"]["final_loss"] < record["result"]["metrics"][0]["loss"]

    status = run(mode, "trainq", "status", record["id"], "--json")
    assert status.returncode == 0
    assert record_of(status) == record

    listed = run(mode, "trainq", "list", "--status", "succeeded", "--json")
    assert record["id"] in [job["id"] for job in json.loads(listed.stdout)["jobs"]]


def test_human_output_shows_progress_result_and_log_path(mode: Mode, worker: Worker) -> None:
    submitted = run(mode, "trainq", "submit", "--epochs", "2", "--name", "e2e-human", "--wait")

    assert submitted.returncode == 0, submitted.stderr
    assert "epoch 2/2" in submitted.stdout
    assert "succeeded" in submitted.stdout
    assert ".log" in submitted.stdout


def test_failed_custom_command_exits_nonzero_with_the_reason(mode: Mode, worker: Worker) -> None:
    needle = f"about-to-fail-{uuid.uuid4().hex[:8]}"
    script = f"import sys; print('{needle}'); sys.exit(3)"
    submitted = run(
        mode, "trainq", "submit", "--wait", "--json", "--", sys.executable, "-c", script
    )

    assert submitted.returncode == 1
    record = record_of(submitted)
    assert record["status"] == "failed"
    assert record["attempts"][0]["exit_code"] == 3
    assert needle in record["error"]
    # Found again among every job's output, without naming the job.
    found = run(mode, "trainq", "logs", "--grep", needle)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == [f"{record['id']} [1] {needle}"]


def test_invalid_input_is_refused_naming_the_field(mode: Mode) -> None:
    bad_epochs = run(mode, "trainq", "submit", "--epochs", "0")
    assert bad_epochs.returncode == 2
    assert "epochs" in bad_epochs.stderr
    assert "invalid job spec" in bad_epochs.stderr

    bad_env = run(mode, "trainq", "submit", "--env", "NOEQUALS")
    assert bad_env.returncode == 2
    assert "env" in bad_env.stderr and "KEY=VALUE" in bad_env.stderr

    bad_cursor = run(mode, "trainq", "list", "--cursor", "not-a-cursor")
    assert bad_cursor.returncode == 2, bad_cursor.stderr
    assert "cursor" in bad_cursor.stderr


def test_unknown_job_is_a_clear_error(mode: Mode) -> None:
    for command in ("status", "cancel", "logs", "artifacts"):
        done = run(mode, "trainq", command, "no-such-job")
        assert done.returncode == 1, (command, done.stderr)
        assert "no-such-job" in done.stderr
        assert "Traceback" not in done.stderr


def test_celery_inspect_ping_answers(worker: Worker) -> None:
    ping = run(None, "celery", "-A", "trainq", "inspect", "ping", "-d", worker.name, timeout_s=60)
    assert ping.returncode == 0, ping.stderr
    assert "pong" in ping.stdout


def test_status_watch_follows_progress_until_the_end(mode: Mode, worker: Worker) -> None:
    submitted = run(mode, "trainq", "submit", "--epochs", "3", "--json")
    job_id = record_of(submitted)["id"]

    watched = run(mode, "trainq", "status", job_id, "--watch")

    assert watched.returncode == 0, watched.stderr
    progress = [line for line in watched.stdout.splitlines() if line.startswith(job_id)]
    assert any("epoch 3/3" in line and "loss" in line for line in progress)
    assert "succeeded" in progress[-1]


def test_list_shows_owners_and_filters_by_owner(mode: Mode, finished: dict[str, Any]) -> None:
    mine = run(mode, "trainq", "list", "--owner", mode.owner, "--limit", "1000", "--json")
    nobody = run(mode, "trainq", "list", "--owner", "nobody-at-all", "--json")
    table = run(mode, "trainq", "list", "--owner", mode.owner)

    assert mine.returncode == nobody.returncode == table.returncode == 0, table.stderr
    jobs = json.loads(mine.stdout)["jobs"]
    assert finished["id"] in [job["id"] for job in jobs]
    assert {job["owner"] for job in jobs} == {mode.owner}
    assert json.loads(nobody.stdout)["jobs"] == []
    header = table.stdout.splitlines()[0].split()
    assert header[:3] == ["id", "status", "owner"]
    row = next(line for line in table.stdout.splitlines() if line.startswith(finished["id"]))
    assert row.split()[1:3] == ["succeeded", mode.owner]


def test_list_filters_by_part_of_the_name_in_any_case(mode: Mode, worker: Worker) -> None:
    tag = uuid.uuid4().hex[:8]
    ids: dict[str, str] = {}
    for name in (f"Sweep-{tag}-a", f"other-{tag}", f"sweep-{tag}-b"):
        submitted = run(mode, "trainq", "submit", "--epochs", "1", "--name", name, "--json")
        assert submitted.returncode == 0, submitted.stderr
        ids[name] = record_of(submitted)["id"]

    listed = run(mode, "trainq", "list", "--name", f"SWEEP-{tag}", "--json")
    refused = run(mode, "trainq", "list", "--name", "not a name")

    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)["jobs"]
    assert [job["id"] for job in jobs] == [ids[f"sweep-{tag}-b"], ids[f"Sweep-{tag}-a"]]
    assert refused.returncode == 2
    assert "--name" in refused.stderr and "not a name" in refused.stderr


def test_whoami_names_the_user_and_where_commands_go(mode: Mode) -> None:
    who = run(mode, "trainq", "whoami")

    assert who.returncode == 0, who.stderr
    assert who.stdout.startswith(mode.owner)
    where = "trainq API http://" if mode.name == "remote" else "direct to Redis at redis://"
    assert where in who.stdout


def test_logs_of_a_finished_job_with_each_filter(mode: Mode, finished: dict[str, Any]) -> None:
    job_id = finished["id"]

    whole = run(mode, "trainq", "logs", job_id)
    assert whole.returncode == 0, whole.stderr
    lines = whole.stdout.splitlines()
    epochs = [json.loads(line)["epoch"] for line in lines if '"progress"' in line]
    assert epochs == [1, 2]
    assert '"trainq": "result"' in lines[-1]

    last = run(mode, "trainq", "logs", job_id, "--tail", "1", "--json")
    assert last.returncode == 0, last.stderr
    (shown,) = [json.loads(line) for line in last.stdout.splitlines()]
    assert (shown["job_id"], shown["attempt"], shown["msg"]) == (job_id, 1, lines[-1])

    second = run(
        mode, "trainq", "logs", job_id, "--grep", '"progress", "epoch": 2,', "--attempt", "1"
    )
    assert second.returncode == 0, second.stderr
    assert [json.loads(line)["epoch"] for line in second.stdout.splitlines()] == [2]

    recent = run(mode, "trainq", "logs", job_id, "--since", "1h", "--tail", "2")
    assert recent.stdout.splitlines() == lines[-2:]
    future = run(mode, "trainq", "logs", job_id, "--since", "2999-01-01T00:00:00Z")
    assert (future.returncode, future.stdout) == (0, "")
    bad = run(mode, "trainq", "logs", job_id, "--since", "yesterday-ish")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_artifacts_of_a_finished_job_are_listed(mode: Mode, finished: dict[str, Any]) -> None:
    job_id = finished["id"]
    model = next(a for a in finished["artifacts"] if a["path"] == "outputs/model.pt")

    listed = run(mode, "trainq", "artifacts", job_id)
    none = run(mode, "trainq", "artifacts", job_id, "--path", "nothing/*")

    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("outputs/model.pt"))
    assert row.split()[-3:] == ["attempt", "1", model["sha256"]]
    assert none.returncode == 1 and "no artifacts matching" in none.stderr


def test_cancel_stops_a_running_job_and_a_second_cancel_is_refused(
    mode: Mode, worker: Worker
) -> None:
    script = "import time\nprint('ready', flush=True)\ntime.sleep(120)"
    submitted = run(mode, "trainq", "submit", "--json", "--", sys.executable, "-c", script)
    job_id = record_of(submitted)["id"]

    def running() -> bool:
        return record_of(run(mode, "trainq", "status", job_id, "--json"))["status"] == "running"

    wait_until(running, 60, f"job {job_id} to run")
    started = time.monotonic()
    cancelled = run(mode, "trainq", "cancel", job_id, "--json")

    assert cancelled.returncode == 0, cancelled.stderr
    assert record_of(cancelled)["status"] == "cancelled"
    assert time.monotonic() - started < 60
    again = run(mode, "trainq", "cancel", job_id)
    assert again.returncode == 1
    assert "already" in again.stderr and job_id in again.stderr
