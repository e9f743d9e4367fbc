"""Audit entries: one JSON line each in ``<log_dir>/TrainingAudit_YYYYMMDD.log`` (UTC day)
and in a capped Redis stream that ``GET /audit`` pages through, newest first.

Every state-changing call is recorded, by the API (:mod:`trainq.api.auditing`) and by
the CLI's direct commands on users: who, what, which target (job, user, token id),
when, from which address, and the answer. An entry never holds a token's secret.
Several processes append to the same file: each entry is one ``write`` of one line to
a file opened for appending, which the kernel keeps whole.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import redis

from trainq.store.keys import Keys

AUDIT_FILE_STEM = "TrainingAudit"


@dataclass(frozen=True)
class AuditEntry:
    actor: str  # the user name (an admin token from TRAINQ_API_TOKENS: "admin")
    action: str  # e.g. "submit", "cancel", "users.add", "tokens.revoke"
    answer: int  # the HTTP status answered (direct CLI commands: 200 done, 4xx refused)
    target: str | None = None  # the job id, user name or token id acted on
    address: str | None = None  # the caller's address ("local" for direct commands)
    detail: str | None = None  # why it was refused, or what changed
    token_id: str | None = None  # which of the actor's tokens (never the secret)
    ts: float = field(default_factory=time.time)
    id: str | None = None  # the stream entry id, once stored (a page's cursor)

    def to_json(self) -> str:
        values = {k: v for k, v in asdict(self).items() if v is not None and k != "id"}
        return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]  # newest first
    next_cursor: str | None  # None: no older entries


class AuditTrail:
    """Appends entries to the day's file and the stream; pages through the stream."""

    def __init__(self, client: redis.Redis, keys: Keys, log_dir: Path, max_entries: int) -> None:
        self._redis = client
        self._key = keys.audit
        self._log_dir = log_dir
        self._max_entries = max_entries

    def file_for(self, ts: float) -> Path:
        day = time.strftime("%Y%m%d", time.gmtime(ts))
        return self._log_dir / f"{AUDIT_FILE_STEM}_{day}.log"

    def record(self, entry: AuditEntry) -> None:
        """Append ``entry`` to the day's file, then to the stream (Redis errors raise)."""
        self.record_many([entry])

    def record_many(self, entries: list[AuditEntry]) -> None:
        """Append ``entries`` to their days' files (one write per file and batch, each
        line whole), then to the stream in one round trip (Redis errors raise)."""
        lines = [(entry, entry.to_json()) for entry in entries]
        by_file: dict[Path, list[str]] = {}
        for entry, line in lines:
            by_file.setdefault(self.file_for(entry.ts), []).append(line)
        for path, written in by_file.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, "".join(f"{line}\n" for line in written).encode("utf-8"))
            finally:
                os.close(fd)
        if len(lines) == 1:
            self._redis.xadd(
                self._key, {"e": lines[0][1]}, maxlen=self._max_entries, approximate=True
            )
            return
        with self._redis.pipeline(transaction=False) as pipe:
            for _, line in lines:
                pipe.xadd(self._key, {"e": line}, maxlen=self._max_entries, approximate=True)
            pipe.execute()

    def page(self, limit: int = 50, cursor: str | None = None) -> AuditPage:
        """Up to ``limit`` entries, newest first, older than ``cursor`` (a previous page's
        ``next_cursor``: a stream entry id)."""
        if cursor is not None:
            ms, _, seq = cursor.partition("-")
            if not (ms.isdigit() and seq.isdigit()) or max(int(ms), int(seq)) >= 2**64:
                raise ValueError(f"cursor {cursor[:60]!r} is not a stream entry id")
            if int(ms) == int(seq) == 0:
                return AuditPage([], None)  # nothing is older than the first possible id
        top = "+" if cursor is None else f"({cursor}"
        raw = cast(
            list[tuple[str, dict[str, str]]],
            self._redis.xrevrange(self._key, top, "-", count=limit + 1),
        )
        entries = [_entry(entry_id, fields) for entry_id, fields in raw[:limit]]
        more = len(raw) > limit
        return AuditPage(entries, entries[-1].id if more and entries else None)


def _entry(entry_id: str, fields: dict[str, str]) -> AuditEntry:
    values = json.loads(fields["e"])
    return AuditEntry(id=entry_id, **values)
