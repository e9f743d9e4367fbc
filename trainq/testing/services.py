"""Services as subprocesses: ``trainq worker`` and ``trainq api``, each in a process
group of its own, waited for with a deadline.

A service started with ``wrapper=PID_NAMESPACE`` (Linux, as root) runs in a PID
namespace of its own, like a host of its own: :meth:`_Service.kill_host` kills it
with everything it started, the jobs' processes included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainq.celery_app import create_app
from trainq.config import Settings
from trainq.testing.polling import free_port, wait_until

BIN = Path(sys.executable).parent
# A command prefix that runs the command as PID 1 of a new PID namespace (with its own
# /proc), killed when the unshare process dies: a simulated host. Needs root.
PID_NAMESPACE = ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc")


class _Service:
    """A ``trainq`` command as a subprocess in its own process group, logging to ``log``."""

    stop_grace_s = 30.0

    def __init__(
        self,
        log: Path,
        env: dict[str, str] | None,
        cwd: Path | None,
        wrapper: Sequence[str] = (),
    ) -> None:
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.wrapper = list(wrapper)  # an argv prefix, e.g. PID_NAMESPACE
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, *args: str) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.wrapper, str(BIN / "trainq"), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
                env=self.env,
            )

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (a warm shutdown), then kill the whole group if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(self.stop_grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill_host(self, timeout_s: float = 20) -> list[int]:
        """A host's death, for a service started with ``wrapper=PID_NAMESPACE``: SIGKILL
        it, so the kernel kills every process of its namespace (the processes a job put
        in sessions of their own too), and wait until none is left; their pids."""
        assert self.proc is not None
        members = _namespace_members(self.proc.pid)
        if not members:
            raise RuntimeError(f"pid {self.proc.pid} started no PID namespace: no wrapper?")
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        wait_until(
            lambda: not any(map(_running, members)), timeout_s, "the host's processes to die"
        )
        return members


def _namespace_members(outer_pid: int) -> list[int]:
    """The processes of the PID namespace that ``outer_pid`` (``unshare --pid --fork``)
    made for its child, as this process sees them."""
    pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    own = _pid_namespace(outer_pid)
    spaces = {_pid_namespace(pid) for pid in pids if _parent(pid) == outer_pid}
    spaces -= {own, None}
    return [pid for pid in pids if _pid_namespace(pid) in spaces]


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None  # gone meanwhile


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, ...; [] when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rpartition(")")[2].split()


def _parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _running(pid: int) -> bool:
    """Alive, and not a zombie waiting to be reaped."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


class WorkerProcess(_Service):
    """``trainq worker`` as a subprocess in its own process group, with extra env."""

    def __init__(
        self,
        name: str,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        args: list[str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        super().__init__(log, env, cwd, wrapper)
        self.name = name
        self.args = args or []  # more `trainq worker` options, e.g. ["--gpus", "0"]

    def start(self, timeout_s: float = 60) -> WorkerProcess:
        self._spawn("worker", "--name", self.name, "--loglevel", "INFO", *self.args)
        # Ping through the Redis the worker uses, which need not be this process's.
        app = create_app(settings_of(self.env))

        def pongs() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.tail()}")
            replies = app.control.ping(destination=[self.name], timeout=0.5)
            return any(self.name in reply for reply in replies)

        try:
            wait_until(pongs, timeout_s, f"worker {self.name} to answer ping", interval_s=0.2)
        finally:
            app.close()
        return self

    def kill(self) -> None:
        """SIGKILL the worker's main process and its pool children at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def serves(url: str) -> bool:
    """Whether an HTTP server answers ``url`` (any status) within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


class ApiServer(_Service):
    """``trainq api`` (uvicorn) as a subprocess; ``url`` once it answers."""

    stop_grace_s = 15.0

    def __init__(self, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
        super().__init__(log, env, cwd)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> ApiServer:
        self._spawn("api", "--host", "127.0.0.1", "--port", str(self.port))

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}: {self.tail()}")
            return serves(f"{self.url}/openapi.json")

        wait_until(answers, timeout_s, "the API to answer", interval_s=0.1)
        return self


def settings_of(env: Mapping[str, str]) -> Settings:
    """The Redis settings (URL, key prefix, sentinels) that a process with ``env`` reads."""
    fields = ("redis_url", "key_prefix", "redis_sentinels", "redis_master_name",
              "redis_password", "redis_sentinel_password")  # fmt: skip
    given: dict[str, Any] = {
        name: env[f"TRAINQ_{name.upper()}"] for name in fields if f"TRAINQ_{name.upper()}" in env
    }
    return Settings.model_validate(given)
