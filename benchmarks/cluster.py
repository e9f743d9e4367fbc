"""A private trainq cluster for a benchmark: its own redis-server and workers.

Import this module before anything from trainq: it points this process's settings
(``TRAINQ_*``) at the private Redis, so trainq's app is built against it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainq.testing import ApiServer, RedisServer, WorkerProcess

STATE = Path(tempfile.mkdtemp(prefix="trainq-bench-"))
_REPO = Path(__file__).resolve().parent.parent
with socket.socket() as _s:
    _s.bind(("127.0.0.1", 0))
    PORT = int(_s.getsockname()[1])
os.environ.update(
    {
        "TRAINQ_REDIS_URL": f"redis://127.0.0.1:{PORT}/0",
        "TRAINQ_KEY_PREFIX": "trainq-bench:",
        "TRAINQ_LOG_DIR": str(STATE / "logs"),
        "TRAINQ_CHECKPOINT_DIR": str(STATE / "checkpoints"),
        "TRAINQ_RETRY_BACKOFF_S": "0.05",
        "TRAINQ_RETRY_BACKOFF_MAX_S": "0.2",
    }
)


@contextmanager
def cluster(
    workers: int, runtime: str, env: dict[str, str] | None = None
) -> Iterator[list[WorkerProcess]]:
    """Redis plus ``workers`` prefork workers on ``runtime`` (and ``env``); all stopped after."""
    with redis_server(), worker_processes(workers, runtime, env) as started:
        yield started


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """The private redis-server, for one benchmark's whole run (clients keep connections)."""
    from trainq.testing import RedisServer

    server = RedisServer(STATE / "redis", port=PORT).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def worker_processes(
    workers: int, runtime: str, env: dict[str, str] | None = None
) -> Iterator[list[WorkerProcess]]:
    """``workers`` prefork workers on ``runtime`` against the private Redis."""
    from trainq.testing import WorkerProcess

    started: list[WorkerProcess] = []
    try:
        for n in range(workers):
            worker = WorkerProcess(
                f"bench{n}-{runtime}@benchhost",
                STATE / f"worker{n}-{runtime}.log",
                {"TRAINQ_RUNTIME": runtime, **(env or {})},
            )
            started.append(worker.start())
        yield list(started)
    finally:
        for worker in started:
            worker.stop()


@contextmanager
def api_server(token: str, env: dict[str, str] | None = None) -> Iterator[ApiServer]:
    """``trainq api`` against the private Redis, accepting ``token``; stopped after."""
    from trainq.testing import ApiServer

    server = ApiServer(STATE / "api.log", {"TRAINQ_API_TOKENS": token, **(env or {})})
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def celery_workers(
    app: str, names: list[str], args: list[str], env: dict[str, str] | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Celery workers of ``app`` (a module of this repository), prefork with one child,
    named ``names``, each in a session of its own and logging to ``STATE/<name>.log``;
    stopped after (SIGTERM, then SIGKILL)."""
    celery = str(Path(sys.executable).parent / "celery")
    environment = {**os.environ, "PYTHONPATH": str(_REPO), **(env or {})}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in names:
            argv = [celery, "-A", app, "worker", "--pool=prefork", "--concurrency=1",
                    f"--hostname={name}", *args]  # fmt: skip
            with worker_log(name).open("ab") as out:
                proc = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    cwd=_REPO, env=environment,
                )  # fmt: skip
            procs.append(proc)
        yield procs
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def worker_log(name: str) -> Path:
    """Where :func:`celery_workers` writes the worker ``name``'s output."""
    return STATE / f"{name}.log"
