"""Every Redis key trainq writes besides Celery's own, in one place.

All keys start with the settings' one ``key_prefix`` (the broker and result backend
use the same prefix through ``global_keyprefix``).
"""

from __future__ import annotations

from trainq.jobs.status import JobStatus

# A cancel request outlives any job this cluster allows, and then expires.
CANCEL_FLAG_TTL_S = 8 * 86_400


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

    @property
    def totals(self) -> str:
        """Hash: totals over finished jobs (trainq.store.totals), updated with each final status."""
        return f"{self.prefix}totals"

    def idempotency(self, key: str) -> str:
        """String: the job id first submitted with this idempotency key."""
        return f"{self.prefix}idem:{key}"

    def lease(self, job_id: str) -> str:
        """String with a TTL: "<token>:<owner>" of the supervisor of the job."""
        return f"{self.prefix}lease:{job_id}"

    def fence(self, job_id: str) -> str:
        """Counter: the job's last fencing token (one per lease acquired)."""
        return f"{self.prefix}fence:{job_id}"

    def cancel(self, job_id: str) -> str:
        """String with a TTL: set when a user asked to cancel the job."""
        return f"{self.prefix}cancel:{job_id}"

    def requeue(self, job_id: str) -> str:
        """String with a TTL: one reconciler re-queues a job at a time."""
        return f"{self.prefix}requeue:{job_id}"

    def log(self, job_id: str) -> str:
        """Stream: the job's output lines (capped), see trainq.logs.stream."""
        return f"{self.prefix}log:{job_id}"

    def capture(self, job_id: str) -> str:
        """Hash: how far the job's output was captured (trainq.logs.stream.Capture)."""
        return f"{self.prefix}log-capture:{job_id}"

    def log_lines(self, job_id: str) -> str:
        """Counter: how many output lines the job has had in all."""
        return f"{self.prefix}log-lines:{job_id}"

    def worker(self, name: str) -> str:
        """String with a TTL: a live worker's WorkerInfo as JSON, renewed by its heartbeat."""
        return f"{self.prefix}worker:{name}"

    @property
    def workers(self) -> str:
        """Sorted set: names of workers that registered, scored by their last heartbeat."""
        return f"{self.prefix}workers"

    def owner_jobs(self, owner: str) -> str:
        """Sorted set: the owner's job ids, scored by creation time."""
        return f"{self.prefix}jobs:owner:{owner}"

    def owner_jobs_by_status(self, owner: str, status: JobStatus) -> str:
        """Sorted set: the owner's job ids in ``status``, scored by creation time."""
        return f"{self.prefix}jobs:owner:{owner}:status:{status.value}"

    @property
    def owners(self) -> str:
        """Set: every name that owns a job."""
        return f"{self.prefix}owners"

    def owner_totals(self, owner: str) -> str:
        """Hash: the owner's totals over finished jobs (gpu_seconds, cpu_seconds, jobs)."""
        return f"{self.prefix}totals:owner:{owner}"

    def user(self, name: str) -> str:
        """String: a user (trainq.users.model.User) as JSON."""
        return f"{self.prefix}user:{name}"

    @property
    def users(self) -> str:
        """Set: every user name."""
        return f"{self.prefix}users"

    def token(self, token_id: str) -> str:
        """Hash: a token's user, sha256, created_at, last_used_at and revoked flag."""
        return f"{self.prefix}token:{token_id}"

    def token_rate(self, token_id: str) -> str:
        """String with a TTL: the token's request rate bucket (trainq.store.rates)."""
        return f"{self.prefix}rate:token:{token_id}"

    def user_tokens(self, name: str) -> str:
        """Set: the ids of a user's tokens."""
        return f"{self.prefix}user-tokens:{name}"

    @property
    def audit(self) -> str:
        """Stream: the audit trail (trainq.audit), capped."""
        return f"{self.prefix}audit"

    # The scheduler's keys (trainq.scheduler).

    def pending(self, group: str) -> str:
        """Sorted set: the pending jobs of one group ("<priority>:<queue>:<owner>", see
        trainq.store.pending), scored by creation time (their original age)."""
        return f"{self.prefix}pending:{group}"

    @property
    def pending_groups(self) -> str:
        """Set: the groups that may have pending jobs (empty ones are pruned)."""
        return f"{self.prefix}pending-groups"

    @property
    def admitted(self) -> str:
        """Sorted set: jobs sent to their queue and not yet taken, scored by admission time."""
        return f"{self.prefix}admitted"

    @property
    def scheduler_wake(self) -> str:
        """List of at most one element: pushed when there may be something to admit."""
        return f"{self.prefix}scheduler:wake"

    @property
    def replication_mark(self) -> str:
        """String with a TTL: written just before a WAIT, so the WAIT covers every write
        the primary took until then (trainq.store.replication)."""
        return f"{self.prefix}replication:mark"

    @property
    def scheduler_leader(self) -> str:
        """String with a TTL: "<token>:<worker>" of the worker that runs admission."""
        return f"{self.prefix}scheduler:leader"

    @property
    def scheduler_fence(self) -> str:
        """Counter: the admission lease's last fencing token."""
        return f"{self.prefix}scheduler:fence"

    def yield_request(self, job_id: str) -> str:
        """String with a TTL: the id of the job a running job was asked to yield to."""
        return f"{self.prefix}yield:{job_id}"

    def owner_policy(self, owner: str) -> str:
        """Hash: an owner's quotas, highest priority and fair-share weight."""
        return f"{self.prefix}policy:{owner}"

    def owner_usage(self, owner: str) -> str:
        """Hash: an owner's decayed usage (gpu_s, cpu_s) as of ``at``."""
        return f"{self.prefix}usage:{owner}"

    # The web page's sessions and the jobs' metric series.

    def session(self, digest: str) -> str:
        """String with a TTL: a login session (trainq.users.sessions) by the sha256 of
        its cookie's secret."""
        return f"{self.prefix}session:{digest}"

    def metric_series(self, job_id: str) -> str:
        """Stream: the job's progress points (numeric fields), capped."""
        return f"{self.prefix}metrics:{job_id}"
