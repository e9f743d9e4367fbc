"""Faults from outside trainq, for the retry benchmark: containers SIGTERMed at random
moments, a worker SIGKILLed, the Docker engine restarted.

Nothing here is decided by the job or known to trainq: the injector watches the
engine for the benchmark's containers and breaks them on its own clock.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from trainq.testing import wait_until

# The label every trainq container carries, naming its job.
JOB_LABEL = "trainq.job_id"
_LOOK_EVERY_S = 0.1
_ENGINE_STOP_S = 60.0


class ContainerKiller(threading.Thread):
    """SIGTERMs each new container of ``jobs`` with probability ``rate``, at a moment
    drawn uniformly from ``within_s`` after it was first seen running."""

    def __init__(
        self, client: Any, jobs: set[str], rate: float, within_s: tuple[float, float], seed: int
    ) -> None:
        super().__init__(name="container-killer", daemon=True)
        self.client, self.jobs, self.rate, self.within_s = client, jobs, rate, within_s
        self.seen: set[str] = set()  # containers of the jobs seen running
        self.terminated: set[str] = set()
        self._due: dict[str, float] = {}
        self._random = random.Random(seed)
        self._halt = threading.Event()
        self.paused = threading.Event()  # while the engine restarts

    def run(self) -> None:
        while not self._halt.wait(_LOOK_EVERY_S):
            if self.paused.is_set():
                continue
            try:
                self._look()
            except Exception:  # the engine restarting: look again next time
                continue

    def _look(self) -> None:
        now = time.monotonic()
        running = self.client.containers.list(filters={"label": JOB_LABEL, "status": "running"})
        for container in running:
            if container.labels.get(JOB_LABEL) not in self.jobs or container.id in self.seen:
                continue
            self.seen.add(container.id)
            if self._random.random() < self.rate:
                self._due[container.id] = now + self._random.uniform(*self.within_s)
        for container_id, at in list(self._due.items()):
            if now >= at:
                del self._due[container_id]
                try:
                    self.client.api.kill(container_id, "SIGTERM")
                except Exception:  # it ended meanwhile: no fault met
                    continue
                self.terminated.add(container_id)

    def running_ids(self) -> set[str]:
        """The benchmark's containers running now."""
        listed = self.client.containers.list(filters={"label": JOB_LABEL, "status": "running"})
        return {c.id for c in listed if c.labels.get(JOB_LABEL) in self.jobs}

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def restart_engine(repo: Path) -> None:
    """Restart the Docker engine: its running containers are stopped with it (no
    live-restore). Through systemd where it runs the engine; otherwise SIGTERM to
    dockerd, then ``docker/host.sh docker-up`` starts it again."""
    if shutil.which("systemctl") and _quiet(["systemctl", "is-active", "--quiet", "docker"]):
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=120)
        return
    found = subprocess.run(["pgrep", "-xo", "dockerd"], capture_output=True, text=True)
    if found.returncode != 0:
        raise RuntimeError("no dockerd process found to restart")
    pid = int(found.stdout.split()[0])
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), _ENGINE_STOP_S, "dockerd to stop")
    subprocess.run(["bash", "docker/host.sh", "docker-up"], cwd=repo, check=True, timeout=120)


def _quiet(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True).returncode == 0
