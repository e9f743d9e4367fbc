"""A container's output read from the engine's json-file log on disk: no cost to dockerd
(:mod:`trainq.runtime.container_logs` has the API stream and the positions both give)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from trainq.logs.lines import LineSplitter
from trainq.runtime.base import BatchedOutput
from trainq.runtime.container_logs import ExitWatch, parse_position, stamp_ns

_READ_CHUNK = 1 << 16
_IDLE_POLL_S = 0.05
_decode = json.JSONDecoder().decode


class JsonFileOutput(BatchedOutput):
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

    def batches(self) -> Iterator[list[str]]:
        done: set[int] = set()
        current = self._next(done)
        try:
            while True:
                # Looked at before the read: what it wrote before ending is in the files.
                ended = self._ended.is_set()
                chunk = current.read(_READ_CHUNK) if current else b""
                if chunk:
                    lines = self._lines(chunk)
                    if lines:
                        yield lines
                    continue
                seen = done | ({_inode(current)} if current else set())
                following = self._next(seen)
                if following is not None:  # rotated: finish the old file, go on in the next
                    if current is not None:
                        lines = self._lines(current.read())  # written just before rotation
                        if lines:
                            yield lines
                        done.add(_inode(current))
                        current.close()
                    current = following
                    self._splitter.reset()
                    continue
                if ended:  # it had ended before this last read: nothing more comes
                    if self._partial:
                        yield [self._partial]
                    return
                self._ended.wait(_IDLE_POLL_S)  # wakes at once when it ends
        finally:
            if current is not None:
                current.close()

    def _lines(self, chunk: bytes) -> list[str]:
        """The lines that ``chunk``'s entries finish (the engine's time and count of the
        last one kept for :attr:`position`)."""
        raws = self._splitter.raw(chunk)
        if not raws:
            return []
        if self._resume_ns is None:
            try:  # the engine's own entries, all read in one C call, joined in another
                entries = orjson.loads(b"[" + b",".join(raws) + b"]")
                text = self._partial + "".join([entry["log"] for entry in entries])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                pass  # not all the engine's: entry by entry
            else:
                return self._split(text, entries)
        return self._one_by_one(raws)

    def _split(self, text: str, entries: list[dict[str, str]]) -> list[str]:
        """``text``'s lines (each entry's text is a line or a part of one, only a line's
        last part ending in a newline); the rest is the next line's first parts."""
        lines = text.split("\n")
        self._partial = lines.pop()
        if "\r" in text:
            lines = [line.removesuffix("\r") for line in lines]
        # The engine's time of the last line, and how many lines in a row carried it.
        stamp: str | None = None
        count = 0
        for entry in reversed(entries):
            if not entry["log"].endswith("\n"):
                continue
            at = entry.get("time")
            if count and at != stamp:
                break
            stamp, count = at, count + 1
        else:
            if count and stamp == self._stamp:
                count += self._count
        if count:
            self._stamp, self._count = stamp, count
        return lines

    def _one_by_one(self, raws: list[bytes]) -> list[str]:
        given: list[str] = []
        stamp, count = self._stamp, self._count
        for raw in raws:
            message, at = _entry(raw)
            if self._partial:
                message = self._partial + message
            if not message.endswith("\n"):
                self._partial = message
                continue
            self._partial = ""
            if at == stamp:
                count += 1
            else:
                stamp, count = at, 1
            if self._resume_ns is not None and self._given_before(stamp, count):
                continue
            given.append(message[:-1].removesuffix("\r"))
        self._stamp, self._count = stamp, count
        return given

    def _given_before(self, stamp: str | None, count: int) -> bool:
        """Whether the line just read (``count``-th at the engine's time ``stamp``) was
        given before the resume position."""
        assert self._resume_ns is not None
        ns = stamp_ns(stamp) if stamp is not None else None
        if ns is not None and (
            ns < self._resume_ns or (ns == self._resume_ns and count <= self._resume_count)
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


class WatchedOutput(BatchedOutput):
    """A :class:`JsonFileOutput` told of its container's end by an :class:`ExitWatch`."""

    def __init__(
        self, path: Path, container_id: str, after: str | None, api_version: str | None = None
    ) -> None:
        self._watch = ExitWatch(container_id, api_version)
        self._output = JsonFileOutput(path, self._watch.ended, after)

    @property
    def position(self) -> str | None:
        return self._output.position

    def batches(self) -> Iterator[list[str]]:
        with self._watch:
            yield from self._output.batches()


def readable(path: str | None) -> Path | None:
    """The log file's path if this process can read it, else None (use the API)."""
    if not path or not os.access(path, os.R_OK):
        return None
    return Path(path)


def _inode(handle: BinaryIO) -> int:
    return os.fstat(handle.fileno()).st_ino


def _entry(raw: bytes) -> tuple[str, str | None]:
    """A json-file entry's text and time; an unreadable entry is a line of its own."""
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:  # not JSON, or not UTF-8: read as before
        line = raw.decode("utf-8", errors="replace")
        try:
            entry = _decode(line)
        except ValueError:
            return line + "\n", None
    if not isinstance(entry, dict):
        return raw.decode("utf-8", errors="replace") + "\n", None
    return str(entry.get("log", "")), entry.get("time")
