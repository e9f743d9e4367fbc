"""Logs survive the host: each attempt's lines, gzipped, in the artifact store.

A job's log file (``logs/jobs/<job_id>.log``) holds the lines of every attempt run on
this host; the archive of attempt ``n`` (``jobs/<id>/logs/attempt-<n>.log.gz``) holds
that attempt's lines only, as written (JSON lines in trainq's format, events
included), so any host can read them back with :func:`trainq.logs.format.decode`.
The archive is rewritten whole, with the attempt's lines so far, each time it is
called while the attempt runs, and once more at its end.
"""

from __future__ import annotations

import gzip
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from trainq.artifacts.keys import artifact_key
from trainq.artifacts.store import ArtifactStore
from trainq.errors import ArtifactNotFound
from trainq.jobs.record import Artifact
from trainq.logs.format import decode

# A line's own attempt field, as the worker writes it (before its msg).
_ATTEMPT = re.compile(rb', "attempt": ([0-9]{1,9}), "msg": "')


def archive_key(attempt: int) -> str:
    """Where an attempt's log lies among the job's artifacts."""
    return f"logs/attempt-{attempt}.log.gz"


def archive_log(
    store: ArtifactStore, job_id: str, attempt: int, local_log: Path
) -> Artifact | None:
    """Archive ``attempt``'s lines of ``local_log`` (write, then publish); None when the
    file is missing or has no line of that attempt."""
    with tempfile.TemporaryDirectory(prefix="trainq-log-") as folder:
        packed = Path(folder) / "attempt.log.gz"
        try:
            with local_log.open("rb") as source, gzip.open(packed, "wb") as target:
                lines = _copy_attempt(source, target, attempt)
        except FileNotFoundError:
            return None
        if not lines:
            return None
        path = archive_key(attempt)
        size, sha256 = store.put_file(packed, artifact_key(job_id, path))
    return Artifact(path=path, size=size, sha256=sha256, attempt=attempt)


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
    """
    copied = 0
    for raw in source:
        line = raw.rstrip(b"\r\n")
        known = _attempt_of(line)
        if known is not None and known != attempt:
            continue
        if known is not None and _utf8(line):
            target.write(line + b"\n")
            copied += 1
        else:
            copied += _decoded_copy(line, target, attempt)
    return copied


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


def _decoded_copy(line: bytes, target: gzip.GzipFile, attempt: int) -> int:
    text = line.decode("utf-8", errors="replace")
    decoded = decode(text)
    if decoded is None or decoded.attempt != attempt:
        return 0
    target.write(text.encode() + b"\n")
    return 1


def _lines(raw: IO[bytes]) -> Iterator[str]:
    with raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        for line in text:
            yield line.rstrip("\n")
