"""A preempted attempt: the job is pending again, with its original age, and neither its
retry budget nor its time limit is charged for the preemption."""

from __future__ import annotations

import time

import pytest

from trainq.config import Settings
from trainq.jobs.failures import FailureClass
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.worker import attempts
from trainq.worker.endings import AttemptEnd

PREEMPTED = AttemptEnd(75, FailureClass.PREEMPTED, "attempt 1 yielded")
LOST = AttemptEnd(None, FailureClass.TRANSIENT, "worker lost")


def running(max_retries: int = 0, **record: object) -> JobRecord:
    spec = JobSpec.parse({"max_retries": max_retries, "timeout_s": 600})
    started = JobRecord(id="j", spec=spec, admitted_at=1.0, admissions=1, **record)
    return started.moved_to(JobStatus.RUNNING, attempts=[Attempt(number=1, started_at=time.time())])


def next_attempt(record: JobRecord, started_at: float) -> JobRecord:
    attempt = Attempt(number=len(record.attempts) + 1, started_at=started_at)
    return record.moved_to(JobStatus.RUNNING, attempts=[*record.attempts, attempt])


def test_a_preempted_attempt_sends_the_job_back_to_pending_with_its_age() -> None:
    before = running()
    after = attempts.closed(before, PREEMPTED)

    assert after.status == JobStatus.QUEUED and after.pending
    assert after.created_at == before.created_at  # its original age orders it
    assert after.queued_at is not None and after.queued_at >= before.created_at
    assert (after.preemptions, after.admissions, after.error) == (1, 1, None)
    assert after.attempts[0].failure_class == FailureClass.PREEMPTED
    assert after.attempts[0].ended_at is not None


@pytest.mark.parametrize(
    ("max_retries", "status"), [(0, JobStatus.FAILED), (1, JobStatus.RETRYING)]
)
def test_preempted_attempts_do_not_use_up_retries(max_retries: int, status: JobStatus) -> None:
    record = attempts.closed(running(max_retries), PREEMPTED)
    record = attempts.closed(next_attempt(record, time.time()), LOST)

    assert record.counted_attempts == 1
    assert record.status == status  # with max_retries=0, one lost attempt ends it
    if status == JobStatus.FAILED:
        assert record.error is not None and record.error.startswith("gave up after 1 attempts")


def test_time_pending_after_a_preemption_is_not_the_jobs_time() -> None:
    settings = Settings(default_timeout_s=600)
    now = time.time()
    first = Attempt(number=1, started_at=now - 1000, ended_at=now - 900,
                    failure_class=FailureClass.PREEMPTED)  # fmt: skip
    second = Attempt(number=2, started_at=now)
    spec = JobSpec.parse({"timeout_s": 600})
    record = JobRecord(id="j", spec=spec, attempts=[first, second])

    assert attempts.yielded_s(record) == pytest.approx(900)
    assert attempts.remaining_s(record, settings) == pytest.approx(500, abs=1)  # 100 s used
    retried = record.model_copy(
        update={
            "attempts": [first.model_copy(update={"failure_class": FailureClass.TRANSIENT}), second]
        }
    )
    assert attempts.remaining_s(retried, settings) < 0  # a retry's pause is the job's time
