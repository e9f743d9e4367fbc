"""Every Redis key trainq writes besides Celery's own, in one place.

All keys start with the settings' one ``key_prefix`` (the broker and result backend
use the same prefix through ``global_keyprefix``).
"""

from __future__ import annotations

from trainq.status import JobStatus


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def job(self, job_id: str) -> str:
        """String: the job record as JSON."""
        return f"{self.prefix}job:{job_id}"

    @property
    def all_jobs(self) -> str:
        """Sorted set: every job id, scored by creation time."""
        return f"{self.prefix}jobs:all"

    def jobs_by_status(self, status: JobStatus) -> str:
        """Sorted set: the job ids in ``status``, scored by creation time."""
        return f"{self.prefix}jobs:status:{status.value}"

    def idempotency(self, key: str) -> str:
        """String: the job id first submitted with this idempotency key."""
        return f"{self.prefix}idem:{key}"

    def queue(self, name: str) -> str:
        """List: the broker queue as kombu stores it under the global prefix."""
        return f"{self.prefix}{name}"
