"""Why a queued job waits: its place in its broker queue, or that nobody serves it.

With Celery's Redis transport a queue is a Redis list under the broker's key prefix:
messages are pushed on the left and taken from the right, and a message with a
priority goes to a sub-list ``<queue>\\x06\\x16<step>``. trainq sends no priorities,
but the sub-lists are counted too.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from trainq.cluster.registry import WorkerInfo, serving
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.jobs.routing import queue_for
from trainq.jobs.status import JobStatus

# kombu's Redis transport: separator and steps of its priority sub-lists.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
# Look for the job's own message only in queues this short: the index costs a read of
# the list.
SCAN_LIMIT = 1000


def queue_keys(settings: Settings, queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s messages."""
    base = f"{settings.key_prefix}{queue}"
    return [base, *(f"{base}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS)]


def queue_length(client: redis.Redis, settings: Settings, queue: str) -> int:
    """How many messages wait in ``queue``."""
    with client.pipeline() as pipe:
        for key in queue_keys(settings, queue):
            pipe.llen(key)
        return sum(int(n) for n in pipe.execute())


def ahead_of(client: redis.Redis, settings: Settings, queue: str, job_id: str) -> int | None:
    """How many messages will be taken before the job's own; None when it is not there
    (already delivered) or the queue is too long to look."""
    key = queue_keys(settings, queue)[0]
    messages: list[bytes | str] = client.lrange(key, 0, SCAN_LIMIT)
    if len(messages) > SCAN_LIMIT:
        return None
    needle = job_id.encode()
    for index, message in enumerate(messages):
        raw = message.encode() if isinstance(message, str) else message
        if needle in raw:
            return len(messages) - 1 - index  # taken from the right
    return None


def describe_wait(queue: str, workers: Sequence[WorkerInfo], length: int, ahead: int | None) -> str:
    """The waiting reason, from plain facts."""
    servers = serving(queue, workers)
    if not servers:
        return f"no live worker serves queue {queue}"
    who = f"{len(servers)} live worker{'s' if len(servers) > 1 else ''}"
    if ahead is not None:
        return f"in queue {queue}: {ahead} job(s) ahead of it, served by {who}"
    return f"in queue {queue} ({length} waiting), served by {who}"


def waiting_reason(
    record: JobRecord, settings: Settings, client: redis.Redis, workers: Sequence[WorkerInfo]
) -> str | None:
    """Why a queued job has not started (None for a job that is not queued)."""
    if record.status != JobStatus.QUEUED:
        return None
    queue = record.queue or queue_for(record.spec, settings)
    length = queue_length(client, settings, queue)
    return describe_wait(queue, workers, length, ahead_of(client, settings, queue, record.id))
