"""The scheduler's index rules (trainq.store.pending): pending groups, held slots, when
a change wakes the scheduler, and the fair-share usage an ending attempt adds."""

from __future__ import annotations

from typing import Any

import pytest

from trainq.jobs.failures import FailureClass
from trainq.jobs.record import Attempt, JobRecord, Progress
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store.pending import (
    decayed,
    group_name,
    group_of,
    holds_slot,
    parse_group,
    usage_added,
    wakes,
)

CREATED_AT = 1_000.0


def record(
    status: JobStatus = JobStatus.QUEUED,
    *,
    admitted_at: float | None = None,
    priority: str = "normal",
    queue: str = "cpu",
    owner: str | None = "alice",
    attempts: list[Attempt] | None = None,
    **fields: Any,
) -> JobRecord:
    """A record as the store holds it: pending unless admitted or past queued."""
    return JobRecord(
        id="j1",
        spec=JobSpec.parse({"priority": priority}),
        status=status,
        owner=owner,
        queue=queue,
        created_at=CREATED_AT,
        queued_at=CREATED_AT,
        admitted_at=admitted_at,
        attempts=attempts or [],
        **fields,
    )


def ended(number: int, run_s: float | None, gpu_ids: list[int], **fields: Any) -> Attempt:
    return Attempt(
        number=number, started_at=10.0, ended_at=10.0 + 5.0, run_s=run_s, gpu_ids=gpu_ids, **fields
    )


PENDING = record()
ADMITTED = record(admitted_at=CREATED_AT + 1)
RUNNING = record(JobStatus.RUNNING, admitted_at=CREATED_AT + 1, attempts=[Attempt(number=1)])


@pytest.mark.parametrize("priority", ["low", "normal", "high"])
@pytest.mark.parametrize("queue", ["cpu", "cpu@box-1", "gpus.2@host.example.org", "gpu.2+3@host-1"])
@pytest.mark.parametrize("owner", ["alice", "alice@example.com", "first.last", "svc_bot-1", ""])
def test_a_group_name_parses_back_into_its_priority_queue_and_owner(
    priority: str, queue: str, owner: str
) -> None:
    group = group_of(record(priority=priority, queue=queue, owner=owner))
    assert group == group_name(priority, queue, owner)
    assert parse_group(group) == (priority, queue, owner)


def test_an_owner_with_a_colon_keeps_it_in_the_owner_part() -> None:
    assert parse_group(group_name("high", "cpu", "ns:alice")) == ("high", "cpu", "ns:alice")


@pytest.mark.parametrize(
    "other",
    [
        ADMITTED,
        RUNNING,
        record(JobStatus.RETRYING, admitted_at=CREATED_AT),
        record(JobStatus.SUCCEEDED, admitted_at=CREATED_AT),
        record(JobStatus.CANCELLED),  # cancelled while pending
    ],
)
def test_only_a_pending_job_has_a_group(other: JobRecord) -> None:
    assert group_of(PENDING) == "normal:cpu:alice"
    assert group_of(other) is None


@pytest.mark.parametrize(
    ("job", "holds"),
    [
        (PENDING, False),
        (ADMITTED, True),  # sent, not yet taken: it will take a slot
        (RUNNING, True),
        (record(JobStatus.RETRYING, admitted_at=CREATED_AT), True),
        (record(JobStatus.SUCCEEDED, admitted_at=CREATED_AT), False),
        (record(JobStatus.FAILED), False),
        (record(JobStatus.CANCELLED, admitted_at=CREATED_AT), False),
    ],
)
def test_which_jobs_hold_a_worker_slot(job: JobRecord, holds: bool) -> None:
    assert holds_slot(job) is holds


@pytest.mark.parametrize(
    ("before", "after", "woken"),
    [
        (None, PENDING, True),  # created pending
        (None, ADMITTED, False),  # created admitted (FIFO): nothing to admit
        (PENDING, ADMITTED, False),
        (ADMITTED, RUNNING, False),
        (RUNNING, record(JobStatus.SUCCEEDED, admitted_at=CREATED_AT), True),  # a slot freed
        (ADMITTED, record(JobStatus.CANCELLED, admitted_at=CREATED_AT), True),
        (PENDING, record(JobStatus.CANCELLED), False),  # held nothing
        (RUNNING, record(JobStatus.RETRYING, admitted_at=CREATED_AT), False),  # still held
        (RUNNING, record(preemptions=1), True),  # preempted: pending again, slot freed
        (PENDING, record(priority="high"), True),  # another group
        (PENDING, record(progress=Progress(epoch=1)), False),
        (RUNNING, RUNNING.model_copy(update={"progress": Progress(epoch=2, loss=0.5)}), False),
    ],
)
def test_which_changes_wake_the_scheduler(
    before: JobRecord | None, after: JobRecord, woken: bool
) -> None:
    assert wakes(before, after) is woken


def test_only_attempts_that_end_in_this_change_add_usage() -> None:
    first = ended(1, 100.0, [])
    running = Attempt(number=2, started_at=20.0)
    before = record(JobStatus.RUNNING, admitted_at=CREATED_AT, attempts=[first, running])
    assert usage_added(before, before) == (0.0, 0.0)  # a progress update: nothing ended
    on_gpus = running.model_copy(update={"ended_at": 80.0, "run_s": 50.0, "gpu_ids": [0, 3]})
    after = before.model_copy(update={"attempts": [first, on_gpus]})
    assert usage_added(before, after) == (100.0, 0.0)  # 50 s × 2 GPUs; the first not again
    on_cpu = running.model_copy(update={"ended_at": 80.0, "run_s": 50.0})
    cpu_after = before.model_copy(update={"attempts": [first, on_cpu]})
    assert usage_added(before, cpu_after) == (0.0, 50.0)  # CPU-seconds, weighted later


@pytest.mark.parametrize(
    ("attempt", "used"),
    [
        (ended(1, 30.0, [1], failure_class=FailureClass.PREEMPTED), (30.0, 0.0)),
        (ended(1, 30.0, [], failure_class=FailureClass.TRANSIENT), (0.0, 30.0)),
        (ended(1, None, [2]), (5.0, 0.0)),  # no run time reported: ended_at - started_at
        (ended(1, 0.0, [2]), (0.0, 0.0)),
        (ended(1, -3.0, []), (0.0, 0.0)),  # a clock step back adds nothing
    ],
)
def test_what_an_ended_attempt_adds(attempt: Attempt, used: tuple[float, float]) -> None:
    before = record(JobStatus.RUNNING, admitted_at=CREATED_AT, attempts=[Attempt(number=1)])
    after = before.model_copy(update={"attempts": [attempt]})
    assert usage_added(before, after) == used


def test_usage_halves_every_half_life() -> None:
    half_life_s = 3600.0
    assert decayed(100.0, 0.0, 0.0, half_life_s) == 100.0
    assert decayed(100.0, 0.0, half_life_s, half_life_s) == pytest.approx(50.0)
    assert decayed(100.0, 0.0, 2 * half_life_s, half_life_s) == pytest.approx(25.0)
    half_way = decayed(100.0, 500.0, 500.0 + half_life_s / 2, half_life_s)
    assert half_way == pytest.approx(100.0 / 2**0.5)
    assert decayed(100.0, 10.0, 0.0, half_life_s) == 100.0  # never grows backwards in time
