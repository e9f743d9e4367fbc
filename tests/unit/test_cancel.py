"""client.cancel and the supervisor's lease, with the in-memory store."""

from __future__ import annotations

import pytest

from trainq.client import cancel
from trainq.errors import AlreadyFinished, SupervisedElsewhere
from trainq.record import JobRecord
from trainq.spec import JobSpec
from trainq.status import JobStatus
from trainq.store.memory import MemoryJobStore
from trainq.supervision import Lease


def test_a_queued_job_is_cancelled_at_once_and_revoked() -> None:
    store = MemoryJobStore()
    store.create(JobRecord(id="q", spec=JobSpec()))
    revoked: list[str] = []

    record = cancel("q", revoke=revoked.append, store=store)

    assert record.status == JobStatus.CANCELLED
    assert revoked == ["q"] and store.cancel_requested("q")


def test_a_running_job_only_gets_the_flag_its_supervisor_acts_on() -> None:
    store = MemoryJobStore()
    store.create(JobRecord(id="r", spec=JobSpec()).moved_to(JobStatus.RUNNING))

    record = cancel("r", revoke=lambda _: None, store=store)

    assert record.status == JobStatus.RUNNING
    assert store.cancel_requested("r")


def test_cancelling_a_finished_job_is_an_error_that_changes_nothing() -> None:
    store = MemoryJobStore()
    done = JobRecord(id="d", spec=JobSpec()).moved_to(JobStatus.RUNNING)
    store.create(done.moved_to(JobStatus.SUCCEEDED))
    before = store.get("d")

    with pytest.raises(AlreadyFinished, match="already succeeded"):
        cancel("d", revoke=lambda _: pytest.fail("revoked a finished job"), store=store)

    assert store.get("d") == before and not store.cancel_requested("d")


def test_one_lease_per_job_with_growing_fencing_tokens() -> None:
    store = MemoryJobStore()
    with Lease(store, "j", "first", ttl_s=30) as lease:
        with pytest.raises(SupervisedElsewhere, match="first"):
            Lease(store, "j", "second", ttl_s=30).__enter__()
        first_token = lease.token
    with Lease(store, "j", "second", ttl_s=30) as again:
        assert again.token > first_token
    assert store.lease_holder("j") is None
