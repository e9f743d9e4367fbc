"""How a container's output is read: its json-file log on disk, or the engine's API.

Streaming logs through dockerd's API costs dockerd a core on a busy job (measured:
a container printing 1M lines ran 2× slower while `docker logs -f` read it). Where
the worker can read the engine's log files (same host, root), reading them directly
costs dockerd nothing (:class:`JsonFileOutput`); elsewhere the API stream is
followed (:class:`ApiOutput`), resumed with ``since=`` when the connection drops.

Both give a position after each line: the engine's timestamp of that line, in
nanoseconds, and how many lines given so far carried that same timestamp
(``"<ns>#<count>"``). A supervisor that re-attaches to a running container asks for
the output after the position its predecessor had stored, so no line comes twice.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import docker.errors
import orjson
import requests.exceptions
from docker.client import DockerClient

from trainq.logs.lines import LineSplitter, text

_READ_CHUNK = 1 << 16
_IDLE_POLL_S = 0.05
_RESUME_PAUSE_S = 0.2
_EXIT_WATCH_SLICE_S = 10
_decode = json.JSONDecoder().decode
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


class JsonFileOutput:
    """Follows a container's json-file log on disk, as dockerd writes and rotates it.

    Each line is ``{"log": "...\\n", "stream": ..., "time": ...}``; a line longer than
    16 KiB comes in parts, only the last ending in a newline. Rotation renames ``X``
    to ``X.1`` (``X.1`` to ``X.2``, ...) and starts a new ``X``: files are told apart
    by inode, so none is read twice or skipped. ``ended`` is set (by whoever waits on
    the container) once it has ended, so the reader notices at once.
    """

    def __init__(self, path: Path, ended: threading.Event, after: str | None = None) -> None:
        self._path = path
        self._ended = ended
        self._after = after
        self._resume_ns, self._resume_count = parse_position(after)
        self._splitter = LineSplitter()
        self._partial = ""  # a long line's parts so far
        self._stamp: str | None = None  # the engine's time of the last line, as written
        self._count = 0  # lines so far with that time

    @property
    def position(self) -> str | None:
        ns = stamp_ns(self._stamp) if self._stamp is not None else None
        return self._after if ns is None else f"{ns}#{self._count}"

    def __iter__(self) -> Iterator[str]:
        done: set[int] = set()
        current = self._next(done)
        try:
            while True:
                # Looked at before the read: what it wrote before ending is in the files.
                ended = self._ended.is_set()
                chunk = current.read(_READ_CHUNK) if current else b""
                if chunk:
                    yield from self._lines(chunk)
                    continue
                seen = done | ({_inode(current)} if current else set())
                following = self._next(seen)
                if following is not None:  # rotated: finish the old file, go on in the next
                    if current is not None:
                        yield from self._lines(current.read())  # written just before rotation
                        done.add(_inode(current))
                        current.close()
                    current = following
                    self._splitter.reset()
                    continue
                if ended:  # it had ended before this last read: nothing more comes
                    if self._partial:
                        yield self._partial
                    return
                self._ended.wait(_IDLE_POLL_S)  # wakes at once when it ends
        finally:
            if current is not None:
                current.close()

    def _lines(self, chunk: bytes) -> Iterator[str]:
        for raw in self._splitter.raw(chunk):
            message, stamp = _entry(raw)
            line = self._partial + message
            if not line.endswith("\n"):
                self._partial = line
                continue
            self._partial = ""
            if stamp == self._stamp:
                self._count += 1
            else:
                self._stamp, self._count = stamp, 1
            if self._resume_ns is not None and self._given_before():
                continue
            yield line[:-1].removesuffix("\r")

    def _given_before(self) -> bool:
        """Whether the line just read was given before the resume position."""
        assert self._resume_ns is not None
        ns = stamp_ns(self._stamp) if self._stamp is not None else None
        if ns is not None and (
            ns < self._resume_ns or (ns == self._resume_ns and self._count <= self._resume_count)
        ):
            return True
        self._resume_ns = None  # past it: every later line is new
        return False

    def _next(self, done: set[int]) -> BinaryIO | None:
        """The oldest log file not read yet (rotated ones first, then the live one)."""
        rotated = sorted(
            self._path.parent.glob(self._path.name + ".*"),
            key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
            reverse=True,
        )
        for candidate in [*rotated, self._path]:
            try:
                handle = candidate.open("rb")
            except FileNotFoundError:
                continue
            if _inode(handle) in done:
                handle.close()
                continue
            return handle
        return None


class ApiOutput:
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

    def __iter__(self) -> Iterator[str]:
        ended = False
        while True:
            # From where we were: earlier lines, and the first `skip` at that instant, were
            # given already (a millisecond earlier: `since` is a float).
            since_ns, skip = self._stamp, self._count
            since = None if since_ns is None else since_ns / 1e9 - 0.001
            splitter = LineSplitter()
            raws = (raw for chunk in self._stream(since) for raw in splitter.raw(chunk))
            for raw in raws:
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
                yield line
            if ended:
                rest = splitter.rest()
                if rest:
                    yield _stamped(rest)[1]  # a last line without a newline
                return
            # End of stream: the container ended, or the connection dropped. Either way
            # read once more from where we were; after an end that pass is the last.
            ended = not self._alive()
            if not ended:
                time.sleep(_RESUME_PAUSE_S)


class WatchedOutput:
    """A :class:`JsonFileOutput` told of its container's end by an :class:`ExitWatch`."""

    def __init__(self, path: Path, container_id: str, after: str | None) -> None:
        self._watch = ExitWatch(container_id)
        self._output = JsonFileOutput(path, self._watch.ended, after)

    @property
    def position(self) -> str | None:
        return self._output.position

    def __iter__(self) -> Iterator[str]:
        with self._watch:
            yield from self._output


class ExitWatch:
    """Sets an event when the container ends, from a thread blocked in the engine's wait.

    The thread has its own client (clients are not shared across threads) and waits
    in slices, so it ends soon after the ``with`` block even if the container runs on.
    """

    def __init__(self, container_id: str) -> None:
        self._id = container_id
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
                    client = client or DockerClient.from_env()
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


def readable(path: str | None) -> Path | None:
    """The log file's path if this process can read it, else None (use the API)."""
    if not path or not os.access(path, os.R_OK):
        return None
    return Path(path)


def _stamped(raw: bytes) -> tuple[int | None, str]:
    """A line of the API stream: the engine's timestamp (ns) and the line."""
    line = text(raw)
    stamp, sep, rest = line.partition(" ")
    if not sep:
        return None, line
    ns = stamp_ns(stamp)
    return (None, line) if ns is None else (ns, rest)


def _inode(handle: BinaryIO) -> int:
    return os.fstat(handle.fileno()).st_ino


def _entry(raw: bytes) -> tuple[str, str | None]:
    """A json-file entry's text and time; an unreadable entry is a line of its own."""
    try:
        entry = orjson.loads(raw)  # C: a third of the capture's CPU went to json.loads
    except orjson.JSONDecodeError:  # not JSON, or not UTF-8: read as before
        line = raw.decode("utf-8", errors="replace")
        try:
            entry = _decode(line)
        except ValueError:
            return line + "\n", None
    if not isinstance(entry, dict):
        return raw.decode("utf-8", errors="replace") + "\n", None
    return str(entry.get("log", "")), entry.get("time")
