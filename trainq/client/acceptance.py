"""A submit's last step on a replicated Redis: the new job is accepted only once
``TRAINQ_REDIS_MIN_REPLICAS`` replicas hold it, so a failover can never lose a job
whose submit returned.

When they do not confirm it in time (WAIT), or Redis fails meanwhile, the job is taken
back (:meth:`~trainq.store.protocols.JobRecords.withdraw`) on whichever primary
answers next, a failover included, and the caller gets
:class:`~trainq.errors.NotAccepted`: nothing was queued. The scheduler admits a job only
once replicas hold it (:mod:`trainq.scheduler.admission`), so one it already admitted
is durable, and its submit succeeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from trainq import connections
from trainq.config import Settings
from trainq.errors import NotAccepted, Unavailable
from trainq.jobs.record import JobRecord
from trainq.store.protocols import JobRecords

# How long a submit keeps trying to take back a job it could not confirm: longer than
# a failover (the sentinels' down-after plus an election: a few seconds).
WITHDRAW_PATIENCE_S = 15.0
_RETRY_S = 0.5


def confirm_accepted(
    records: JobRecords,
    record: JobRecord,
    settings: Settings,
    on_refused: Callable[[], None] = lambda: None,
) -> None:
    """Return once ``settings.min_replicas`` replicas hold the new job (at once when
    that is 0); else take it back, call ``on_refused`` and raise NotAccepted (or
    Unavailable when Redis never answered again: whether it was accepted is unknown)."""
    wanted = settings.min_replicas
    if not wanted:
        return
    try:
        acked = records.replicated(record.id, wanted, settings.redis_wait_s)
    except connections.OUTAGE_ERRORS as exc:
        why = f"Redis failed before replicas confirmed it ({exc})"
    else:
        if acked >= wanted:
            return
        why = (
            f"{acked} of the {wanted} Redis replicas it needs (TRAINQ_REDIS_MIN_REPLICAS) "
            f"confirmed it within {settings.redis_wait_s:g} s"
        )
    outcome = _withdraw(records, record)
    if outcome == "taken":
        return  # admitted meanwhile: the scheduler confirmed it on replicas first
    if outcome is None:
        raise Unavailable(
            f"job {record.id} may or may not have been accepted: {why}, and Redis did not "
            f"answer again within {WITHDRAW_PATIENCE_S:g} s; `trainq status {record.id}` "
            "tells once it does"
        )
    on_refused()
    raise NotAccepted(
        f"job {record.id} was not accepted: {why}; nothing was queued. Submit it again "
        "once the replicas are back"
    )


def _withdraw(records: JobRecords, record: JobRecord) -> str | None:
    """Take the job back on whichever primary answers within the patience; None if none."""
    deadline = time.monotonic() + WITHDRAW_PATIENCE_S
    while True:
        try:
            return records.withdraw(record)
        except connections.OUTAGE_ERRORS:
            if time.monotonic() > deadline:
                return None
            time.sleep(_RETRY_S)
