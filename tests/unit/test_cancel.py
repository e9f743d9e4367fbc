"""client.cancel and the supervisor's lease, with the in-memory store."""

from __future__ import annotations

import pytest

from trainq.client import cancel
from trainq.errors import AlreadyFinished, SupervisedElsewhere
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store.memory import MemoryCoordination, MemoryJobRecords
from trainq.worker.supervision import Lease


def test_a_queued_job_is_cancelled_at_once_and_revoked() -> None:
    store, flags = MemoryJobRecords(), MemoryCoordination()
    store.create(JobRecord(id="q", spec=JobSpec()))
    revoked: list[str] = []

    record = cancel("q", revoke=revoked.append, records=store, coordination=flags)

    assert record.status == JobStatus.CANCELLED
    assert revoked == ["q"] and flags.cancel_requested("q")


def test_a_running_job_only_gets_the_flag_its_supervisor_acts_on() -> None:
    store, flags = MemoryJobRecords(), MemoryCoordination()
    store.create(JobRecord(id="r", spec=JobSpec()).moved_to(JobStatus.RUNNING))

    record = cancel("r", revoke=lambda _: None, records=store, coordination=flags)

    assert record.status == JobStatus.RUNNING
    assert flags.cancel_requested("r")


def test_cancelling_a_finished_job_is_an_error_that_changes_nothing() -> None:
    store, flags = MemoryJobRecords(), MemoryCoordination()
    done = JobRecord(id="d", spec=JobSpec()).moved_to(JobStatus.RUNNING)
    store.create(done.moved_to(JobStatus.SUCCEEDED))
    before = store.get("d")

    with pytest.raises(AlreadyFinished, match="already succeeded"):
        refuse = lambda _: pytest.fail("revoked a finished job")  # noqa: E731
        cancel("d", revoke=refuse, records=store, coordination=flags)

    assert store.get("d") == before and not flags.cancel_requested("d")


def test_one_lease_per_job_with_growing_fencing_tokens() -> None:
    store = MemoryCoordination()
    with Lease(store, "j", "first", ttl_s=30) as lease:
        with pytest.raises(SupervisedElsewhere, match="first"):
            Lease(store, "j", "second", ttl_s=30).__enter__()
        first_token = lease.token
    with Lease(store, "j", "second", ttl_s=30) as again:
        assert again.token > first_token
    assert store.lease_holder("j") is None
