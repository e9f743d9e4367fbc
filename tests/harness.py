"""Test harness shared by conftest and tests: settings for the test run, polling, workers.

The settings every trainq process reads come from ``TRAINQ_*`` variables, so they
are set here, before trainq is imported, for this process and every child: the
tests never touch a Redis on the default port, nor the repository's logs/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = Path(tempfile.mkdtemp(prefix="trainq-tests-"))

with socket.socket() as _s:  # trainq.testing.free_port would import trainq too early
    _s.bind(("127.0.0.1", 0))
    REDIS_PORT = int(_s.getsockname()[1])
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
STORE_TEST_URL = f"redis://127.0.0.1:{REDIS_PORT}/1"
# One cluster (key prefix, container label) per test run: two runs on one machine
# never see, reconcile or count each other's jobs and containers.
PREFIX = f"trainq-test-{os.getpid()}:"
DOCKER_TEST_PREFIX = f"docker-{PREFIX}"
os.environ.update(
    {
        "TRAINQ_REDIS_URL": REDIS_URL,
        "TRAINQ_KEY_PREFIX": PREFIX,
        "TRAINQ_LOG_DIR": str(STATE_DIR / "logs"),
        "TRAINQ_CHECKPOINT_DIR": str(STATE_DIR / "checkpoints"),
        "TRAINQ_OUTPUT_DIR": str(STATE_DIR / "outputs"),
        # Never a developer's own `trainq login`: the tests' CLI talks to their Redis.
        "TRAINQ_CONFIG_DIR": str(STATE_DIR / "config"),
        "TRAINQ_ARTIFACT_URL": (STATE_DIR / "artifacts").as_uri(),
        "TRAINQ_RUNTIME": "process",
        "TRAINQ_RETRY_BACKOFF_S": "0.2",
        "TRAINQ_STOP_GRACE_S": "2",
        # Supervision at test speed: a lost supervisor is noticed within seconds.
        "TRAINQ_LEASE_TTL_S": "6",
        "TRAINQ_RECONCILE_INTERVAL_S": "1",
        "TRAINQ_WATCH_INTERVAL_S": "0.2",
        # The test images (trainq-test/...) besides the standard one.
        "TRAINQ_ALLOWED_IMAGES": "trainq-train:*,trainq-test/*",
    }
)

# Imported once the settings above are in place.
from trainq.testing import BIN, WorkerProcess, free_port, wait_until  # noqa: E402

__all__ = ["BIN", "free_port", "wait_until"]


class Worker(WorkerProcess):
    """A test's worker, started in the repository."""

    def __init__(
        self, name: str, log: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        super().__init__(name, log, env, cwd=REPO, args=args)


def trainq_containers(job_id: str | None = None, *, running: bool = False) -> list[str]:
    """Ids of this test run's job containers (running or not, unless ``running``), of
    ``job_id`` if given."""
    job = "trainq.job_id" if job_id is None else f"trainq.job_id={job_id}"
    only = ["--filter", "status=running"] if running else []
    found: list[str] = []
    for cluster in (PREFIX, DOCKER_TEST_PREFIX):
        out = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={job}",
             "--filter", f"label=trainq.cluster={cluster}", *only],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        found += out.stdout.split()
    return found
