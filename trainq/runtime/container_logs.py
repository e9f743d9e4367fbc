"""How a container's output is read: its json-file log on disk, or the engine's API.

Streaming logs through dockerd's API costs dockerd a core on a busy job (measured:
a container printing 1M lines ran 2× slower while `docker logs -f` read it). Where
the worker can read the engine's log files (same host, root), reading them directly
costs dockerd nothing (:mod:`trainq.runtime.json_file`); elsewhere the API stream is
followed (:class:`ApiOutput`), resumed with ``since=`` when the connection drops.

Both give a position after each line: the engine's timestamp of that line, in
nanoseconds, and how many lines given so far carried that same timestamp
(``"<ns>#<count>"``). A supervisor that re-attaches to a running container asks for
the output after the position its predecessor had stored, so no line comes twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import docker.errors
import requests.exceptions
from docker.client import DockerClient

from trainq.logs.lines import LineSplitter, text
from trainq.runtime.base import BatchedOutput

_READ_CHUNK = 1 << 16
_IDLE_POLL_S = 0.05
_RESUME_PAUSE_S = 0.2
_EXIT_WATCH_SLICE_S = 10
# Errors that mean the engine (not the job) failed: transient.
ENGINE_ERRORS = (docker.errors.APIError, requests.exceptions.RequestException, OSError)


def stamp_ns(stamp: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 UTC time such as Docker writes
    (``2026-12-02T05:35:24.12345678Z``, trailing zeros trimmed), or None."""
    head, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
        return seconds * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)
    except ValueError:
        return None


def parse_position(after: str | None) -> tuple[int | None, int]:
    """``"<ns>#<count>"`` → (ns, count); (None, 0) for no position."""
    if not after:
        return None, 0
    ns, _, count = after.partition("#")
    return int(ns), int(count or 0)


class ApiOutput(BatchedOutput):
    """Follows a container's output through the engine's API (timestamps on). The
    SDK's stream yields chunks, not lines, and ends silently when the connection drops:
    an ended stream is read again from the last timestamp until the container ended."""

    def __init__(
        self,
        stream: Callable[[float | None], Iterator[bytes]],
        alive: Callable[[], bool],
        after: str | None = None,
    ) -> None:
        self._stream = stream  # since (Unix seconds) → the engine's chunks
        self._alive = alive
        self._after = after
        self._stamp, self._count = parse_position(after)  # of the last line given

    @property
    def position(self) -> str | None:
        return self._after if self._stamp is None else f"{self._stamp}#{self._count}"

    def batches(self) -> Iterator[list[str]]:
        ended = False
        while True:
            # From where we were: earlier lines, and the first `skip` at that instant, were
            # given already (a millisecond earlier: `since` is a float).
            since_ns, skip = self._stamp, self._count
            since = None if since_ns is None else since_ns / 1e9 - 0.001
            splitter = LineSplitter()
            for chunk in self._stream(since):
                batch: list[str] = []
                for raw in splitter.raw(chunk):
                    stamp, line = _stamped(raw)
                    if stamp is not None and since_ns is not None:
                        if stamp < since_ns:
                            continue
                        if stamp == since_ns and skip > 0:
                            skip -= 1
                            continue
                    if stamp is not None:
                        self._count = self._count + 1 if stamp == self._stamp else 1
                        self._stamp = stamp
                    batch.append(line)
                if batch:
                    yield batch
            if ended:
                rest = splitter.rest()
                if rest:
                    yield [_stamped(rest)[1]]  # a last line without a newline
                return
            # End of stream: the container ended, or the connection dropped. Either way
            # read once more from where we were; after an end that pass is the last.
            ended = not self._alive()
            if not ended:
                time.sleep(_RESUME_PAUSE_S)


class ExitWatch:
    """Sets an event when the container ends, from a thread blocked in the engine's wait.

    The thread has its own client (clients are not shared across threads) and waits
    in slices, so it ends soon after the ``with`` block even if the container runs on.
    """

    def __init__(self, container_id: str, api_version: str | None = None) -> None:
        self._id = container_id
        # The engine's API version, when known: a client left to negotiate it asks the
        # engine first (about 10 ms here, while the container may already have ended).
        self._api_version = api_version
        self.ended = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._wait, daemon=True, name="exit-watch")

    def __enter__(self) -> threading.Event:
        self._thread.start()
        return self.ended

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()

    def _wait(self) -> None:
        client: DockerClient | None = None
        try:
            while not self._done.is_set():
                try:
                    client = client or DockerClient.from_env(version=self._api_version)
                    client.api.wait(self._id, timeout=_EXIT_WATCH_SLICE_S)
                except requests.exceptions.ReadTimeout:
                    continue  # still running after a slice
                except docker.errors.NotFound:
                    pass  # removed: it has ended
                except (docker.errors.DockerException, *ENGINE_ERRORS):
                    # The engine blinked or restarts: look again shortly, as a poll would.
                    self._done.wait(_RESUME_PAUSE_S)
                    continue
                self.ended.set()
                return
        finally:
            if client is not None:
                client.close()


def _stamped(raw: bytes) -> tuple[int | None, str]:
    """A line of the API stream: the engine's timestamp (ns) and the line."""
    line = text(raw)
    stamp, sep, rest = line.partition(" ")
    if not sep:
        return None, line
    ns = stamp_ns(stamp)
    return (None, line) if ns is None else (ns, rest)
