"""Artifact retention: a finished job's artifacts are deleted after
``TRAINQ_ARTIFACT_RETENTION_DAYS`` (default: kept forever), and the deletion logged.

Only jobs whose record says they are final are ever touched: artifacts under an id
the store knows but Redis does not (a Redis that lost its data) are left alone and
reported, since deleting them would lose every model at once.
"""

from __future__ import annotations

import logging
import time

from trainq.artifacts.keys import job_prefix
from trainq.artifacts.store import ArtifactStore
from trainq.errors import JobNotFound
from trainq.store.protocols import JobRecords

log = logging.getLogger("trainq.artifacts")

_DAY_S = 86_400.0


def expire(
    store: ArtifactStore, records: JobRecords, retention_days: float, now: float | None = None
) -> list[str]:
    """Delete the artifacts of jobs final for longer than ``retention_days``; their ids."""
    now = time.time() if now is None else now
    deleted = []
    for job_id in job_ids(store):
        try:
            record = records.get(job_id)
        except JobNotFound:
            log.warning("artifacts of unknown job %s left in %s", job_id, store.url)
            continue
        finished = record.finished_at
        if not record.status.is_terminal or finished is None:
            continue
        age_days = (now - finished) / _DAY_S
        if age_days < retention_days:
            continue
        store.delete_prefix(job_prefix(job_id))
        log.info("deleted the artifacts of job %s from %s: %s for %.1f days (retention %g)",
                 job_id, store.url, record.status, age_days, retention_days)  # fmt: skip
        deleted.append(job_id)
    return deleted


def job_ids(store: ArtifactStore) -> list[str]:
    """The ids of the jobs that have artifacts in the store."""
    root = job_prefix("x").rsplit("/", 1)[0]
    ids = {key.split("/", 2)[1] for key, _size in store.list(root) if key.count("/") >= 2}
    return sorted(ids)
