"""Test harness shared by conftest and tests: settings for the test run, polling, workers.

The settings every trainq process reads come from ``TRAINQ_*`` variables, so they
are set here, before trainq is imported, for this process and every child: the
tests never touch a Redis on the default port, nor the repository's logs/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = Path(tempfile.mkdtemp(prefix="trainq-tests-"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REDIS_PORT = free_port()
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
STORE_TEST_URL = f"redis://127.0.0.1:{REDIS_PORT}/1"
PREFIX = "trainq-test:"
os.environ.update(
    {
        "TRAINQ_REDIS_URL": REDIS_URL,
        "TRAINQ_KEY_PREFIX": PREFIX,
        "TRAINQ_LOG_DIR": str(STATE_DIR / "logs"),
        "TRAINQ_CHECKPOINT_DIR": str(STATE_DIR / "checkpoints"),
        "TRAINQ_RUNTIME": "process",
        "TRAINQ_RETRY_BACKOFF_S": "0.2",
        "TRAINQ_STOP_GRACE_S": "2",
        # Supervision at test speed: a lost supervisor is noticed within seconds.
        "TRAINQ_LEASE_TTL_S": "6",
        "TRAINQ_RECONCILE_INTERVAL_S": "1",
        "TRAINQ_WATCH_INTERVAL_S": "0.2",
    }
)
BIN = Path(sys.executable).parent


def wait_until(
    condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1
) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class Worker:
    """`trainq worker` as a subprocess in its own process group."""

    def __init__(self, name: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from trainq.celery_app import create_app
        from trainq.config import Settings

        # Ping through the Redis the worker uses, which need not be this process's.
        app = create_app(
            Settings(
                redis_url=self.env["TRAINQ_REDIS_URL"], key_prefix=self.env["TRAINQ_KEY_PREFIX"]
            )
        )

        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "trainq"), "worker", "--name", self.name, "--loglevel", "INFO"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
                env=self.env,
            )

        def pongs() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"worker exited with {self.proc.returncode}: {self.log.read_text()}")
            replies = app.control.ping(destination=[self.name], timeout=0.5)
            return any(self.name in reply for reply in replies)

        wait_until(pongs, 60, f"worker {self.name} to answer ping", interval_s=0.2)

    def kill(self) -> None:
        """SIGKILL the worker's main process and its pool children at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then kill the whole group if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def trainq_containers(job_id: str | None = None) -> list[str]:
    """Ids of containers (running or not) labelled as trainq jobs (of ``job_id``)."""
    label = "trainq.job_id" if job_id is None else f"trainq.job_id={job_id}"
    out = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={label}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()
