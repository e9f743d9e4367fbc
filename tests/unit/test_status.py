"""The transition map, check_transition, and JobRecord.moved_to's timestamps."""

from __future__ import annotations

import itertools
import time

import pytest

from trainq.errors import IllegalTransition
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import TRANSITIONS, JobStatus, check_transition

TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT}


def _allowed(current: JobStatus, new: JobStatus) -> bool:
    return new in TRANSITIONS[current] or (new == current and current not in TERMINAL)


def test_every_status_has_an_entry_in_the_map() -> None:
    assert set(TRANSITIONS) == set(JobStatus)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(JobStatus, repeat=2)))
def test_check_transition_follows_the_map(current: JobStatus, new: JobStatus) -> None:
    if _allowed(current, new):
        check_transition(current, new)
    else:
        with pytest.raises(IllegalTransition) as caught:
            check_transition(current, new)
        assert str(current) in str(caught.value)
        assert str(new) in str(caught.value)


@pytest.mark.parametrize("status", list(JobStatus))
def test_terminal_statuses_have_no_exits(status: JobStatus) -> None:
    assert status.is_terminal == (status in TERMINAL)
    if status.is_terminal:
        assert TRANSITIONS[status] == frozenset()
    else:
        assert TRANSITIONS[status]


def test_the_expected_lifecycle_is_allowed() -> None:
    path = [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.RETRYING,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
    for current, new in itertools.pairwise(path):
        check_transition(current, new)


def test_a_preempted_job_goes_back_to_queued_only_from_running() -> None:
    """The scheduler's preemption: a running job is pending again (not a retry)."""
    path = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.RUNNING]
    for current, new in itertools.pairwise(path):
        check_transition(current, new)
    with pytest.raises(IllegalTransition):
        check_transition(JobStatus.RETRYING, JobStatus.QUEUED)


def _record() -> JobRecord:
    return JobRecord(id="job-1", spec=JobSpec())


def test_moved_to_sets_started_at_on_first_running_only() -> None:
    queued = _record()
    assert queued.started_at is None

    running = queued.moved_to(JobStatus.RUNNING)
    assert running.status == JobStatus.RUNNING
    assert running.started_at is not None
    assert running.finished_at is None
    assert queued.status == JobStatus.QUEUED  # a copy, the original is untouched

    retrying = running.moved_to(JobStatus.RETRYING)
    again = retrying.moved_to(JobStatus.RUNNING)
    assert again.started_at == running.started_at
    assert again.finished_at is None


def test_moved_to_sets_finished_at_on_terminal_status() -> None:
    before = time.time()
    running = _record().moved_to(JobStatus.RUNNING)

    done = running.moved_to(JobStatus.SUCCEEDED, result={"final_loss": 0.1})

    assert done.finished_at is not None
    assert before <= done.finished_at <= time.time()
    assert done.updated_at == done.finished_at
    assert done.result == {"final_loss": 0.1}


def test_moved_to_same_non_terminal_status_updates_timestamp_only() -> None:
    running = _record().moved_to(JobStatus.RUNNING)

    again = running.moved_to(JobStatus.RUNNING, error="note")

    assert again.status == JobStatus.RUNNING
    assert again.error == "note"
    assert again.updated_at >= running.updated_at
    assert again.finished_at is None


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], JobStatus.SUCCEEDED),
        ([], JobStatus.RETRYING),
        ([JobStatus.RUNNING, JobStatus.FAILED], JobStatus.RUNNING),
        ([JobStatus.RUNNING, JobStatus.SUCCEEDED], JobStatus.SUCCEEDED),
        ([JobStatus.CANCELLED], JobStatus.QUEUED),
    ],
)
def test_moved_to_refuses_illegal_moves(path: list[JobStatus], illegal: JobStatus) -> None:
    record = _record()
    for status in path:
        record = record.moved_to(status)
    snapshot = record.model_dump()

    with pytest.raises(IllegalTransition):
        record.moved_to(illegal)

    assert record.model_dump() == snapshot


def test_record_json_round_trip() -> None:
    record = _record().moved_to(JobStatus.RUNNING)

    assert JobRecord.from_json(record.to_json()) == record
