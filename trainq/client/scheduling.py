"""The scheduler as callers see it: the pending queue with reasons, a pending job's
priority, who may be preempted, and each owner's policy and share."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trainq import connections
from trainq.config import Settings, get_settings
from trainq.errors import AlreadyFinished, IllegalTransition, NotPending
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import Priority
from trainq.scheduler.policy import OwnerPolicy
from trainq.scheduler.state import SchedulerState
from trainq.scheduler.view import QueueEntry, Share, describe, shares
from trainq.store.protocols import JobRecords


def pending_queue(
    settings: Settings | None = None, state: SchedulerState | None = None
) -> list[QueueEntry]:
    """Every pending job in the order it will be admitted, each with its reason."""
    settings = settings or get_settings()
    state = state or connections.scheduler_state(settings)
    return describe(state.snapshot(heads_per_group=1), state.pending(), state.rules)


@dataclass(frozen=True)
class PendingPage:
    """The first pending jobs that match a filter, in admission order, their names, and
    how many match in all. Places (``QueueEntry.position``) are those of the whole queue."""

    entries: list[QueueEntry]
    names: dict[str, str | None]
    total: int

    def rows(self) -> list[dict[str, object]]:
        """Each entry as JSON-ready fields, its job's ``id`` and ``name`` among them."""
        return [
            {**asdict(e), "id": e.job_id, "name": self.names.get(e.job_id)} for e in self.entries
        ]


def pending_page(
    owner: str | None = None,
    queue: str | None = None,
    limit: int = 100,
    settings: Settings | None = None,
) -> PendingPage:
    """The pending queue filtered by owner and queue, at most ``limit`` entries."""
    settings = settings or get_settings()
    state = connections.scheduler_state(settings)
    matching = [
        entry
        for entry in pending_queue(settings, state)
        if owner in (None, entry.owner) and queue in (None, entry.queue)
    ]
    page = matching[:limit]
    names = {r.id: r.spec.name for r in state.records([e.job_id for e in page])}
    return PendingPage(page, names, len(matching))


def owner_shares(settings: Settings | None = None) -> list[Share]:
    """Every owner's fair-share usage, standing, running jobs and GPUs, and policy
    (idle owners too: their usage decays while they wait)."""
    settings = settings or get_settings()
    state = connections.scheduler_state(settings)
    everyone = connections.records(settings).owners()
    return shares(state.snapshot(heads_per_group=1, owners=everyone), state.rules)


def pending_reason(record: JobRecord, settings: Settings | None = None) -> str | None:
    """Why a pending job has not been admitted yet (None: it is not pending)."""
    if not record.pending:
        return None
    for entry in pending_queue(settings):
        if entry.job_id == record.id:
            return f"{entry.reason} (place {entry.position} in the pending queue)"
    return "pending: the scheduler has not looked at it yet"


def change_job(
    job_id: str,
    *,
    priority: Priority | None = None,
    preemptible: bool | None = None,
    records: JobRecords | None = None,
) -> JobRecord:
    """Change a job's priority (pending jobs only: :class:`NotPending`) or whether it
    may be preempted (any job not final: :class:`AlreadyFinished`); the new record.
    Who may do it is the caller's check (the API's authorization table)."""
    records = records or connections.records()

    def changed(record: JobRecord) -> JobRecord:
        if record.status.is_terminal:
            raise AlreadyFinished(f"job {job_id} already {record.status}: nothing to change")
        update: dict[str, object] = {}
        if priority is not None and priority != record.spec.priority:
            if not record.pending:
                raise NotPending(
                    f"job {job_id} is {record.status} (admitted): a priority applies to "
                    "pending jobs only"
                )
            update["priority"] = priority
        if preemptible is not None:
            update["preemptible"] = preemptible
        spec = record.spec.model_copy(update=update)
        return record.moved_to(record.status, spec=spec)

    try:
        return records.update(job_id, changed)
    except IllegalTransition:  # it finished meanwhile
        raise AlreadyFinished(f"job {job_id} finished: nothing to change") from None


def get_policy(owner: str, settings: Settings | None = None) -> OwnerPolicy:
    return connections.policies(settings).get(owner)


def set_policy(owner: str, policy: OwnerPolicy, settings: Settings | None = None) -> OwnerPolicy:
    """Replace ``owner``'s quotas, highest priority and weight (fields None: defaults)."""
    return connections.policies(settings).set(owner, policy)


def change_policy(
    owner: str, changes: dict[str, object], settings: Settings | None = None
) -> OwnerPolicy:
    """Change some of ``owner``'s policy fields at once (None: back to the default);
    ValueError naming the field for a bad value. The policy as it is after."""
    return connections.policies(settings).update(owner, changes)
