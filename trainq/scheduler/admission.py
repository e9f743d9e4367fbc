"""The admission loop: sends pending jobs to their queues when a worker can take them,
and asks lower-priority jobs to yield. It runs in every worker's main process, but only
the one holding the leader lease (``scheduler:leader``, with a fencing token) admits; if
its worker dies the lease expires and another takes over within its TTL.

A pass is woken by events (a job became pending, a job stopped holding a slot, a
worker joined or left: the ``scheduler:wake`` list) and also runs every
``scheduler_interval_s``. Admitting is *send, then mark*: a crash between the two
leaves the job pending, so the next pass sends it again, and the duplicate message is
harmless (adopt-or-launch and the job's lease: one container, one supervisor). A job
sent long ago that is neither running nor in its queue (the worker that took it died
before recording it running) is sent again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis

from trainq.cluster import queues
from trainq.config import Settings
from trainq.errors import IllegalTransition, JobNotFound
from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus
from trainq.scheduler.decide import Decision, decide
from trainq.scheduler.snapshot import Candidate, Holder, Snapshot
from trainq.scheduler.state import SchedulerState
from trainq.store.coordination import RELEASE_LUA, RENEW_LUA
from trainq.store.keys import Keys
from trainq.store.protocols import Coordination, JobRecords
from trainq.store.replication import confirm_writes

log = logging.getLogger("trainq.scheduler")

# Sends "supervise job J" to the job's queue.
Send = Callable[[JobRecord], None]
# A yield request outlives the stop's grace period, then expires (asked again if due).
_YIELD_MARGIN_S = 120.0
# A worker that does not lead looks at the lease again this long after it would end
# unrenewed: a dead leader is replaced as its lease ends (a resigning one, at the latest
# then too), and followers cost Redis one PTTL per lease, not one a second.
_FOLLOW_SLACK_S = 0.1


def admitted(record: JobRecord, now: float) -> JobRecord:
    """The record marked as sent (once more); a job already taken keeps its status."""
    changes: dict[str, object] = {"admissions": record.admissions + 1}
    if record.pending:
        changes["admitted_at"] = now
    return record.moved_to(record.status, **changes)


def resent(record: JobRecord, now: float) -> JobRecord:
    """The record of a job sent again because its first message was lost."""
    if record.status != JobStatus.QUEUED:
        return record.moved_to(record.status)
    return record.moved_to(record.status, admitted_at=now)


class Admission:
    """One cluster's admission: passes, and the leader loop that runs them."""

    def __init__(
        self,
        state: SchedulerState,
        records: JobRecords,
        coordination: Coordination,
        send: Send,
        settings: Settings,
        *,
        client: redis.Redis,
        keys: Keys,
        name: str,
    ) -> None:
        self._state = state
        self._records = records
        self._coordination = coordination
        self._send = send
        self._settings = settings
        self._redis = client
        self._keys = keys
        self.name = name  # who leads: this worker's node name
        self._token: int | None = None
        self._follow_s = settings.scheduler_lease_ttl_s / 5  # while another worker leads
        self._renew = client.register_script(RENEW_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def run_pass(self) -> Decision:
        """Admit what can run now and ask for what must yield; what was decided."""
        if self._state.idle():
            return Decision()  # nothing to admit, to send again, or to yield to
        snapshot = self._state.snapshot()
        decision = decide(snapshot, self._state.rules)
        if decision.admit and not self._durable():
            decision = Decision(preempt=decision.preempt)
        for candidate in decision.admit:
            self._admit(candidate)
        self._resend_lost(snapshot)
        ttl_s = self._settings.stop_grace_s + _YIELD_MARGIN_S
        for victim, beneficiary in decision.preempt:
            log.info("asking job %s (%s) to yield to job %s (%s)", victim.job_id,
                     victim.priority, beneficiary.job_id, beneficiary.priority)  # fmt: skip
            self._coordination.request_yield(victim.job_id, beneficiary.job_id, ttl_s)
        return decision

    def _durable(self) -> bool:
        """Whether the replicas hold every job this pass read (TRAINQ_REDIS_MIN_REPLICAS):
        a job is sent only once a failover cannot lose it, so a submit that could not
        confirm its job can still take it back (trainq.client.acceptance)."""
        wanted = self._settings.min_replicas
        if not wanted:
            return True
        acked = confirm_writes(self._redis, self._keys, wanted, self._settings.redis_wait_s)
        if acked < wanted:
            log.warning("admitting nothing: %s of the %s Redis replicas needed hold the "
                        "pending jobs", acked, wanted)  # fmt: skip
        return acked >= wanted

    def _admit(self, candidate: Candidate) -> None:
        (record,) = self._state.records([candidate.job_id]) or (None,)
        if record is None or not record.pending:
            return  # cancelled, or admitted by another pass, since the snapshot
        self._send(record)
        self.mark(record.id)

    def _resend_lost(self, snapshot: Snapshot) -> None:
        """Send again a job admitted long ago that is neither running nor in its queue:
        the worker that took its message died before recording it running. Its slot is
        held meanwhile; a duplicate message is harmless (adopt-or-launch)."""
        for holder in snapshot.holders:
            if not self._lost(holder, snapshot.now):
                continue
            (record,) = self._state.records([holder.job_id]) or (None,)
            if record is None or record.status != JobStatus.QUEUED or record.pending:
                continue
            log.warning("job %s was sent to queue %s long ago but is neither running nor "
                        "in it: sending it again", record.id, holder.queue)  # fmt: skip
            self._send(record)
            self._resent(record.id)

    def _lost(self, holder: Holder, now: float) -> bool:
        sent_at = holder.admitted_at
        stale_s = self._settings.worker_ttl_s * 2
        if holder.worker is not None or sent_at is None or now - sent_at < stale_s:
            return False
        if queues.queue_length(self._redis, self._settings, holder.queue) > queues.SCAN_LIMIT:
            return False  # too long to look for it: it is probably there
        return queues.ahead_of(self._redis, self._settings, holder.queue, holder.job_id) is None

    def _resent(self, job_id: str) -> None:
        now = time.time()
        with contextlib.suppress(IllegalTransition, JobNotFound):
            self._records.update(job_id, lambda r: resent(r, now))

    def mark(self, job_id: str) -> None:
        """Record the job as admitted (sent)."""
        now = time.time()
        with contextlib.suppress(IllegalTransition, JobNotFound):  # it ended meanwhile
            self._records.update(job_id, lambda r: admitted(r, now))

    # The leader lease.

    def lead(self) -> bool:
        """Hold the leader lease (take it if free, else renew ours): whether we lead."""
        ttl_ms = int(self._settings.scheduler_lease_ttl_s * 1000)
        key = self._keys.scheduler_leader
        if self._token is not None:
            if self._renew(keys=[key], args=[f"{self._token}:", ttl_ms]):
                return True
            log.info("%s lost the admission lease", self.name)
            self._token = None
        left_ms = int(self._redis.pttl(key))  # -2: no lease
        if left_ms != -2:
            # Another worker leads: look again when its lease would end unrenewed.
            self._follow_s = min(max(left_ms, 0) / 1000 + _FOLLOW_SLACK_S, ttl_ms / 1000)
            return False
        token = int(self._redis.incr(self._keys.scheduler_fence))
        if self._redis.set(key, f"{token}:{self.name}", nx=True, px=ttl_ms):
            self._token = token
            log.info("%s runs admission (lease token %s)", self.name, token)
            return True
        return False

    def resign(self) -> None:
        """Give the lease up (a clean shutdown): another worker takes over at once."""
        if self._token is not None:
            with contextlib.suppress(redis.RedisError):
                self._release(keys=[self._keys.scheduler_leader], args=[f"{self._token}:"])
            self._token = None

    def loop(self, stop: threading.Event) -> None:
        """Lead when possible, and run a pass at every wake-up, until ``stop`` is set."""
        ttl_s = self._settings.scheduler_lease_ttl_s
        wait_s = min(self._settings.scheduler_interval_s, ttl_s / 3)
        while not stop.is_set():
            try:
                if not self.lead():
                    stop.wait(self._follow_s)
                    continue
                self.run_pass()
                self._redis.blpop([self._keys.scheduler_wake], timeout=wait_s)
            except Exception:
                log.exception("admission pass failed; trying again")
                stop.wait(1.0)
        self.resign()
