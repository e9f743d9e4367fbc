"""Logs survive the host: each attempt's lines, gzipped, in the artifact store.

A job's log file (``logs/jobs/<job_id>.log``) holds the lines of every attempt run on
this host; the archive of attempt ``n`` (``jobs/<id>/logs/attempt-<n>.log.gz``) holds
that attempt's lines only, as written (JSON lines in trainq's format, events
included), so any host can read them back with :func:`trainq.logs.format.decode`.
While the attempt runs, each sync appends the lines written since the last one
(:class:`LogArchive`) and uploads the archive so far; its end adds the last lines.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import IO

from trainq.artifacts.keys import artifact_key
from trainq.artifacts.store import ArtifactStore
from trainq.errors import ArtifactNotFound
from trainq.jobs.record import Artifact
from trainq.logs.format import decode

_BLOCK_BYTES = 1 << 20
# Fastest: level 9 (gzip's default) took 2.3 times the CPU of level 1 for 7 % less size
# on a job's log (measured on 1M lines; 157 MB → 6.1 MB at level 1).
_GZIP_LEVEL = 1
_PACKED = "attempt.log.gz"  # the local copy of an attempt's archive
# A line's own attempt field, as the worker writes it (before its msg).
_ATTEMPT = re.compile(rb', "attempt": ([0-9]{1,9}), "msg": "')


def archive_key(attempt: int) -> str:
    """Where an attempt's log lies among the job's artifacts."""
    return f"logs/attempt-{attempt}.log.gz"


def archive_log(
    store: ArtifactStore, job_id: str, attempt: int, local_log: Path
) -> Artifact | None:
    """Archive ``attempt``'s lines of ``local_log`` at once (write, then publish); None
    when the file is missing or has no line of that attempt."""
    archive = LogArchive(store, job_id, attempt, local_log)
    try:
        return archive.update(final=True)
    finally:
        archive.close()


class LogArchive:
    """One attempt's archive, kept up to date while the attempt runs.

    Each :meth:`update` reads only what was written to the local log since the last
    one, and appends its lines of this attempt to a local copy of the archive as a gzip
    member of its own (a gzip file may hold many; readers see one stream), then uploads
    that copy whole (compressed: about 4 % of the lines), unless nothing was added since
    it was last uploaded. Reading and compressing the whole log again at every sync made
    a long chatty job's syncs grow without end.
    Until ``final`` an unfinished last line is left for the next update. Updates take
    turns: the attempt's end may come while a sync that outlived its wait still runs.
    """

    def __init__(self, store: ArtifactStore, job_id: str, attempt: int, local_log: Path):
        self._store = store
        self._key = artifact_key(job_id, archive_key(attempt))
        self._attempt = attempt
        self._local_log = local_log
        self._folder: Path | None = None  # made with the first lines, for the local copy
        self._read_bytes = 0  # of the local log: every line before it is archived
        self._lines = 0
        self._uploaded: Artifact | None = None  # the copy as it stands, once uploaded
        self._turn = threading.Lock()

    def update(self, final: bool = False) -> Artifact | None:
        """Archive the lines written since the last update (write, then publish); None
        while the attempt has no line, or the local log is missing."""
        with self._turn:
            return self._update(final)

    def _update(self, final: bool) -> Artifact | None:
        packed = io.BytesIO()
        try:
            with (
                self._local_log.open("rb") as source,
                gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=_GZIP_LEVEL) as target,
            ):
                source.seek(self._read_bytes)
                lines, consumed = _copy_lines(source, target, self._attempt, whole=final)
        except FileNotFoundError:
            return None
        self._read_bytes += consumed
        if lines:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="trainq-log-"))
            with (self._folder / _PACKED).open("ab") as archive:
                archive.write(packed.getvalue())
            self._lines += lines
            self._uploaded = None
        if self._folder is None or self._uploaded is not None:  # nothing new to upload
            return self._uploaded
        size, sha256 = self._store.put_file(self._folder / _PACKED, self._key)
        self._uploaded = Artifact(path=archive_key(self._attempt), size=size, sha256=sha256,
                                  attempt=self._attempt)  # fmt: skip
        return self._uploaded

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def archived_lines(store: ArtifactStore, job_id: str, attempt: int) -> Iterator[str] | None:
    """The archived JSON lines of ``attempt`` (without newlines), or None when it has no
    archive."""
    try:
        raw = store.open(artifact_key(job_id, archive_key(attempt)))
    except ArtifactNotFound:
        return None
    return _lines(raw)


def _copy_attempt(source: IO[bytes], target: gzip.GzipFile, attempt: int) -> int:
    """Copy the lines of ``attempt``, as they are; how many.

    A line as the worker writes it (``{"ts": "...", "level": ..., "component": ...,
    "job_id": ..., "attempt": N, "msg": "..."...}``) tells its attempt by its bytes:
    inside a JSON string every quote is escaped, so ``, "attempt": N, "msg": "`` can
    only be the line's own fields when it occurs once. Any other line is decoded (a
    quarter of the worker's CPU on a chatty job went to decoding every line here).
    The file is read a block of whole lines at a time: a block whose every line is in
    that shape with this attempt is copied whole, any other line by line.
    """
    return _copy_lines(source, target, attempt, whole=True)[0]


def _copy_lines(
    source: IO[bytes], target: gzip.GzipFile, attempt: int, *, whole: bool
) -> tuple[int, int]:
    """:func:`_copy_attempt` from ``source``'s position: the lines copied, and the bytes
    read through (not whole: short of an unfinished last line)."""
    copied, consumed, rest = 0, 0, b""
    while block := source.read(_BLOCK_BYTES):
        block = rest + block
        end = block.rfind(b"\n") + 1
        block, rest = block[:end], block[end:]
        copied += _copy_block(block, target, attempt)
        consumed += len(block)
    if whole:
        copied += _copy_block(rest, target, attempt)
        consumed += len(rest)
    return copied, consumed


def _copy_block(block: bytes, target: gzip.GzipFile, attempt: int) -> int:
    """``_copy_attempt`` of whole lines (the last may lack its newline)."""
    if not block:
        return 0
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if _all_of(lines, attempt) and _utf8(block):
        target.write(block if block.endswith(b"\n") else block + b"\n")
        return len(lines)
    kept: list[bytes] = []
    for raw in lines:
        line = raw.rstrip(b"\r")
        known = _attempt_of(line)
        if known is not None and known != attempt:
            continue
        if known is not None and _utf8(line):
            kept.append(line + b"\n")
        else:
            kept += _decoded(line, attempt)
    target.write(b"".join(kept))
    return len(kept)


def _all_of(lines: list[bytes], attempt: int) -> bool:
    """Whether every line is in the worker's shape, its one attempt field ``attempt``
    (as :func:`_attempt_of` would tell each; counted in C, no call per line)."""
    n = len(lines)
    own = b', "attempt": %d, "msg": "' % attempt
    return (
        sum(map(bytes.startswith, lines, repeat(b'{"ts": "'))) == n
        and sum(map(bytes.endswith, lines, repeat(b"}"))) == n
        and list(map(bytes.count, lines, repeat(b', "attempt": '))).count(1) == n
        and sum(map(bytes.count, lines, repeat(own))) == n
    )


def _attempt_of(line: bytes) -> int | None:
    """The attempt a line in trainq's shape names, read from its bytes; None when the
    line is not plainly in that shape."""
    if not (line.startswith(b'{"ts": "') and line.endswith(b"}")):
        return None
    if line.count(b', "attempt": ') != 1:
        return None
    found = _ATTEMPT.search(line)
    return int(found.group(1)) if found else None


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decoded(line: bytes, attempt: int) -> list[bytes]:
    text = line.decode("utf-8", errors="replace")
    decoded = decode(text)
    if decoded is None or decoded.attempt != attempt:
        return []
    return [text.encode() + b"\n"]


def _lines(raw: IO[bytes]) -> Iterator[str]:
    with raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        for line in text:
            yield line.rstrip("\n")
