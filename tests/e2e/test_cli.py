"""The `trainq` and `celery` commands, driven as a user would, against a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.harness import BIN, REPO, Worker

pytestmark = pytest.mark.e2e


def run(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        check=False,
    )


def record_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def test_submit_wait_json_then_status_prints_the_same_record(worker: Worker) -> None:
    submitted = run("trainq", "submit", "--epochs", "2", "--wait", "--json")

    assert submitted.returncode == 0, submitted.stderr
    record = record_of(submitted)
    assert record["status"] == "succeeded"
    assert (record["progress"]["epoch"], record["progress"]["epochs"]) == (2, 2)
    assert len(record["attempts"]) == 1
    assert record["result"]["final_loss"] < record["result"]["metrics"][0]["loss"]

    status = run("trainq", "status", record["id"], "--json")
    assert status.returncode == 0
    assert record_of(status) == record

    listed = run("trainq", "list", "--status", "succeeded", "--json")
    assert record["id"] in [job["id"] for job in json.loads(listed.stdout)["jobs"]]


def test_human_output_shows_progress_result_and_log_path(worker: Worker) -> None:
    submitted = run("trainq", "submit", "--epochs", "2", "--name", "e2e-human", "--wait")

    assert submitted.returncode == 0, submitted.stderr
    assert "epoch 2/2" in submitted.stdout
    assert "succeeded" in submitted.stdout
    assert ".log" in submitted.stdout


def test_failed_custom_command_exits_nonzero_with_the_reason(worker: Worker) -> None:
    script = "import sys; print('about to fail'); sys.exit(3)"
    submitted = run("trainq", "submit", "--wait", "--json", "--", sys.executable, "-c", script)

    assert submitted.returncode == 1
    record = record_of(submitted)
    assert record["status"] == "failed"
    assert record["attempts"][0]["exit_code"] == 3
    assert "about to fail" in record["error"]


def test_invalid_input_is_refused_naming_the_field(redis_server: str) -> None:
    bad_epochs = run("trainq", "submit", "--epochs", "0")
    assert bad_epochs.returncode == 2
    assert "epochs" in bad_epochs.stderr

    bad_env = run("trainq", "submit", "--env", "NOEQUALS")
    assert bad_env.returncode == 2
    assert "env" in bad_env.stderr and "KEY=VALUE" in bad_env.stderr


def test_unknown_job_is_a_clear_error(redis_server: str) -> None:
    status = run("trainq", "status", "no-such-job")
    assert status.returncode == 1
    assert "no-such-job" in status.stderr


def test_celery_inspect_ping_answers(worker: Worker) -> None:
    ping = run("celery", "-A", "trainq", "inspect", "ping", "-d", worker.name, timeout_s=60)
    assert ping.returncode == 0, ping.stderr
    assert "pong" in ping.stdout


def test_status_watch_follows_progress_until_the_end(worker: Worker) -> None:
    submitted = run("trainq", "submit", "--epochs", "3", "--json")
    job_id = record_of(submitted)["id"]

    watched = run("trainq", "status", job_id, "--watch")

    assert watched.returncode == 0, watched.stderr
    progress = [line for line in watched.stdout.splitlines() if line.startswith(job_id)]
    assert any("epoch 3/3" in line and "loss" in line for line in progress)
    assert "succeeded" in progress[-1]
