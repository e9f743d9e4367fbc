"""A private trainq cluster for a benchmark: its own redis-server and workers.

Import this module before anything from trainq: it points this process's settings
(``TRAINQ_*``) at the private Redis, so trainq's app is built against it.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE = Path(tempfile.mkdtemp(prefix="trainq-bench-"))
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
def cluster(workers: int, runtime: str) -> Iterator[list[object]]:
    """Redis plus ``workers`` prefork workers on ``runtime``; all stopped afterwards."""
    from trainq.testing import RedisServer, WorkerProcess

    redis_server = RedisServer(STATE / "redis", port=PORT).start()
    started: list[WorkerProcess] = []
    try:
        for n in range(workers):
            worker = WorkerProcess(
                f"bench{n}@benchhost", STATE / f"worker{n}.log", {"TRAINQ_RUNTIME": runtime}
            )
            started.append(worker.start())
        yield list(started)
    finally:
        for worker in started:
            worker.stop()
        redis_server.stop()
