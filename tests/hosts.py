"""Simulated hosts: workers that share nothing but Redis and an artifact store.

Each :class:`Host` is a ``trainq worker`` with a data folder of its own (its logs,
checkpoints, outputs and working directory), its own ``TRAINQ_HOSTNAME``, and its own
PID namespace (``unshare``, as root): :meth:`Host.kill` is a host's death, which takes
the jobs' processes with it (the process runtime puts each job in a session of its
own, so killing the worker's process group alone would leave the job running).

:func:`elsewhere` runs a command as if on yet another host: the hosts' folders are
hidden from it (a tmpfs over them, in a mount namespace of its own).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness import BIN
from trainq.testing import PID_NAMESPACE, WorkerProcess

# Mounts a tmpfs over $1, then runs the rest of the arguments.
_HIDING = 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"'


def namespaces_problem() -> str | None:
    """Why a worker cannot get a PID namespace (and a command a mount namespace) of its
    own here, or None."""
    probes = ([*PID_NAMESPACE, "true"], ["unshare", "--mount", "true"])
    for argv in probes:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(argv)}` cannot run: {exc}"
        if done.returncode != 0:
            why = done.stderr.strip() or f"exit code {done.returncode}"
            return f"`{' '.join(argv)}` failed ({why}); simulated hosts need root and util-linux"
    return None


@dataclass
class Host:
    """One simulated host: its worker, its folder, its settings."""

    name: str
    folder: Path
    env: dict[str, str]
    worker: WorkerProcess

    @property
    def log_dir(self) -> Path:
        return self.folder / "logs"

    @property
    def checkpoint_dir(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def output_dir(self) -> Path:
        return self.folder / "outputs"

    def job_log(self, job_id: str) -> Path:
        """The job's log file on this host."""
        return self.log_dir / "jobs" / f"{job_id}.log"

    def output(self) -> str:
        """What the worker printed so far."""
        return self.worker.log.read_text(errors="replace")

    def kill(self) -> list[int]:
        """SIGKILL the host: its worker and every process it started; their pids."""
        return self.worker.kill_host()


StartHost = Callable[..., Host]


@contextmanager
def hosts(root: Path, shared_env: dict[str, str]) -> Iterator[StartHost]:
    """A function that starts a host by name (and extra env), its folder under ``root``,
    and waits for its worker to answer; every host is stopped when the block ends."""
    started: list[Host] = []

    def start(name: str, extra_env: dict[str, str] | None = None) -> Host:
        folder = root / name
        folder.mkdir(parents=True)
        env = {
            **shared_env,
            "TRAINQ_HOSTNAME": name,
            "TRAINQ_LOG_DIR": str(folder / "logs"),
            "TRAINQ_CHECKPOINT_DIR": str(folder / "checkpoints"),
            "TRAINQ_OUTPUT_DIR": str(folder / "outputs"),
            **(extra_env or {}),
        }
        worker = WorkerProcess(
            f"{name}@{name}", root / f"{name}.out", env, cwd=folder, wrapper=PID_NAMESPACE
        )
        host = Host(name, folder, env, worker)
        started.append(host)
        worker.start()
        return host

    try:
        yield start
    finally:
        for host in started:
            host.worker.stop()


def elsewhere(
    argv: list[str], hidden: Path, env: dict[str, str], cwd: Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``trainq`` (``argv`` its arguments) where ``hidden`` looks empty: on none of
    the hosts whose folders lie under it."""
    command = [str(BIN / "trainq"), *argv]
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", _HIDING, "hide", str(hidden), *command],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
        env=env,
        check=False,
    )
