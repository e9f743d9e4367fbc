"""Runner: adopt-or-launch, classification, retries, with in-memory store and runtime."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from trainq.config import Settings
from trainq.errors import JobFailed, LaunchRefused, RuntimeFault
from trainq.jobs.failures import FailureClass
from trainq.jobs.progress import EXIT_PREEMPTED
from trainq.jobs.record import Attempt, JobRecord, Progress
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.logs.stream import Capture
from trainq.runtime.base import CountedOutput, Exit, Handle, Launch
from trainq.runtime.memory import MemoryRuntime, Played, Script
from trainq.store.memory import MemoryCoordination, MemoryJobRecords
from trainq.worker.runner import Runner

JOB = "job-1"


def progress_line(epoch: int, epochs: int, loss: float) -> str:
    return json.dumps({"trainq": "progress", "epoch": epoch, "epochs": epochs, "loss": loss})


def result_line(**values: Any) -> str:
    return json.dumps({"trainq": "result", **values})


def success(launch: Launch) -> Played:
    return Played(
        [
            "loading data",
            progress_line(1, 2, 0.5),
            progress_line(2, 2, 0.3),
            result_line(final_loss=0.25, checkpoint="/inside/container/last.pt"),
            "done",
        ],
        Exit(0),
    )


@dataclass
class Harness:
    store: MemoryJobRecords
    flags: MemoryCoordination
    runtime: MemoryRuntime
    settings: Settings
    runner: Runner
    progress: list[Progress] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        log_dir=tmp_path / "logs",
        checkpoint_dir=tmp_path / "ck",
        retry_backoff_s=0,
        retry_backoff_max_s=0,
    )


def harness(settings: Settings, script: Script) -> Harness:
    store, flags = MemoryJobRecords(), MemoryCoordination()
    runtime = MemoryRuntime(script)
    progress: list[Progress] = []
    sleeps: list[float] = []
    runner = Runner(
        records=store,
        coordination=flags,
        runtime=runtime,
        settings=settings,
        worker="worker-1",
        on_progress=progress.append,
        sleep=sleeps.append,
    )
    return Harness(store, flags, runtime, settings, runner, progress, sleeps)


def spec(**values: Any) -> JobSpec:
    return JobSpec.parse({"epochs": 2, "batch_size": 4, "learning_rate": 0.01, **values})


def queued(h: Harness, job_spec: JobSpec) -> JobSpec:
    assert h.store.create(JobRecord(id=JOB, spec=job_spec))
    return job_spec


def open_attempt(number: int, handle: str | None = None) -> Attempt:
    return Attempt(number=number, handle=handle, worker="old-worker", started_at=time.time())


def test_success(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = queued(h, spec())

    result = h.runner.run(JOB, job_spec)

    checkpoint_dir = (settings.checkpoint_dir / JOB).absolute()
    assert result["final_loss"] == pytest.approx(0.25)
    assert [m["epoch"] for m in result["metrics"]] == [1, 2]
    assert [m["loss"] for m in result["metrics"]] == pytest.approx([0.5, 0.3])
    assert Path(result["checkpoint_path"]) == checkpoint_dir / "last.pt"
    assert Path(result["checkpoint_path"]).is_relative_to(settings.checkpoint_dir.absolute())

    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert record.result == result
    assert record.error is None
    assert record.started_at is not None
    assert record.finished_at is not None
    assert len(record.attempts) == 1
    attempt = record.attempts[0]
    assert attempt.number == 1
    assert attempt.exit_code == 0
    assert attempt.failure_class is None
    assert attempt.ended_at is not None
    assert attempt.worker == "worker-1"
    assert attempt.runtime == "memory"
    assert attempt.handle == f"mem-{JOB}-1"
    assert record.progress.epoch == 2
    assert record.progress.epochs == 2

    assert record.log_path is not None
    log = Path(record.log_path).read_text(encoding="utf-8")
    assert "loading data" in log
    assert "done" in log
    assert "attempt 1" in log
    assert "exited with code 0" in log

    assert [p.epoch for p in h.progress] == [1, 2]
    assert len(h.runtime.launches) == 1
    launch = h.runtime.launches[0]
    assert launch.attempt == 1
    assert launch.checkpoint_dir == checkpoint_dir
    assert launch.image == settings.default_image
    assert launch.env["TRAINQ_EPOCHS"] == "2"
    assert launch.env["TRAINQ_BATCH_SIZE"] == "4"
    assert float(launch.env["TRAINQ_LEARNING_RATE"]) == pytest.approx(0.01)
    assert h.runtime.removed == [Handle(JOB, 1, f"mem-{JOB}-1")]
    assert h.sleeps == []


def test_log_dir_of_the_spec_is_used(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = queued(h, spec(log_dir="team/a"))

    h.runner.run(JOB, job_spec)

    log_path = Path(h.store.get(JOB).log_path or "")
    assert log_path == (settings.log_dir / "team/a" / f"{JOB}.log").absolute()
    assert log_path.is_file()


def test_user_bug_fails_permanently_without_retry(settings: Settings) -> None:
    last = "ZeroDivisionError: division by zero"

    def crash(launch: Launch) -> Played:
        lines = ["Traceback (most recent call last):", '  File "x.py", line 1', last]
        return Played(lines, Exit(1))

    h = harness(settings, crash)
    job_spec = queued(h, spec(max_retries=3))

    with pytest.raises(JobFailed) as caught:
        h.runner.run(JOB, job_spec)

    assert last in str(caught.value)
    record = h.store.get(JOB)
    assert record.status == JobStatus.FAILED
    assert record.error is not None
    assert last in record.error
    assert "exit" in record.error
    assert record.finished_at is not None
    assert len(record.attempts) == 1
    assert record.attempts[0].failure_class == "permanent"
    assert record.attempts[0].exit_code == 1
    assert len(h.runtime.launches) == 1
    assert h.sleeps == []


def test_oom_kill_is_permanent(settings: Settings) -> None:
    h = harness(settings, lambda launch: Played(["allocating"], Exit(137, oom_killed=True)))
    job_spec = queued(h, spec())

    with pytest.raises(JobFailed, match="memory"):
        h.runner.run(JOB, job_spec)

    assert h.store.get(JOB).attempts[0].failure_class == "permanent"
    assert len(h.runtime.launches) == 1


def preempted_once(launch: Launch) -> Played:
    if launch.attempt == 1:
        return Played([progress_line(1, 2, 0.5), "SIGTERM: checkpointed"], Exit(EXIT_PREEMPTED))
    return success(launch)


def test_preemption_is_retried_and_resumes(settings: Settings) -> None:
    h = harness(settings, preempted_once)
    job_spec = queued(h, spec())

    result = h.runner.run(JOB, job_spec)

    assert result["final_loss"] == pytest.approx(0.25)
    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert [a.number for a in record.attempts] == [1, 2]
    first, second = record.attempts
    assert first.failure_class == "transient"
    assert first.exit_code == EXIT_PREEMPTED
    assert first.error is not None
    assert "preempted" in first.error
    assert second.exit_code == 0
    assert second.failure_class is None

    assert [launch.attempt for launch in h.runtime.launches] == [1, 2]
    one, two = h.runtime.launches
    assert one.checkpoint_dir == two.checkpoint_dir
    assert two.env["TRAINQ_EPOCHS"] == "2"
    assert two.env == one.env
    assert len(h.sleeps) == 1

    log = Path(record.log_path or "").read_text(encoding="utf-8")
    assert "attempt 1" in log
    assert "attempt 2" in log
    assert f"exited with code {EXIT_PREEMPTED}" in log


def test_success_after_retry_clears_the_job_error(settings: Settings) -> None:
    h = harness(settings, preempted_once)
    job_spec = queued(h, spec())

    h.runner.run(JOB, job_spec)

    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert record.error is None


def test_retries_run_out(settings: Settings) -> None:
    h = harness(settings, lambda launch: Played(["preempted"], Exit(EXIT_PREEMPTED)))
    job_spec = queued(h, spec(max_retries=2))

    with pytest.raises(JobFailed, match="gave up after 3 attempts"):
        h.runner.run(JOB, job_spec)

    record = h.store.get(JOB)
    assert record.status == JobStatus.FAILED
    assert record.error is not None
    assert "gave up after 3 attempts" in record.error
    assert [a.failure_class for a in record.attempts] == ["transient"] * 3
    assert [launch.attempt for launch in h.runtime.launches] == [1, 2, 3]
    assert len(h.sleeps) == 2


def test_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    settings = Settings(
        log_dir=tmp_path / "logs",
        checkpoint_dir=tmp_path / "ck",
        retry_backoff_s=1.0,
        retry_backoff_max_s=3.0,
        watch_interval_s=10,  # each backoff fits one slice of the pause
    )
    h = harness(settings, lambda launch: Played([], Exit(EXIT_PREEMPTED)))
    job_spec = queued(h, spec(max_retries=4))

    with pytest.raises(JobFailed):
        h.runner.run(JOB, job_spec)

    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert len(h.sleeps) == len(ceilings)
    for slept, ceiling in zip(h.sleeps, ceilings, strict=True):
        assert ceiling * 0.5 <= slept <= ceiling


def test_duplicate_delivery_of_a_finished_job_launches_nothing(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = spec()
    done = (
        JobRecord(id=JOB, spec=job_spec)
        .moved_to(JobStatus.RUNNING)
        .moved_to(JobStatus.SUCCEEDED, result={"final_loss": 0.125, "metrics": []})
    )
    h.store.create(done)

    result = h.runner.run(JOB, job_spec)

    assert result == {"final_loss": 0.125, "metrics": []}
    assert h.runtime.launches == []
    assert h.store.get(JOB) == done


def test_duplicate_delivery_of_a_failed_job_raises_its_error(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = spec()
    failed = JobRecord(id=JOB, spec=job_spec).moved_to(JobStatus.FAILED, error="it broke")
    h.store.create(failed)

    with pytest.raises(JobFailed, match="it broke"):
        h.runner.run(JOB, job_spec)

    assert h.runtime.launches == []


def test_missing_record_is_created(settings: Settings) -> None:
    h = harness(settings, success)

    result = h.runner.run(JOB, spec(epochs=2))

    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert record.spec == spec(epochs=2)
    assert record.result == result
    assert len(h.runtime.launches) == 1


def test_lost_worker_attempt_is_closed_and_relaunched(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = spec()
    running = JobRecord(id=JOB, spec=job_spec).moved_to(
        JobStatus.RUNNING, attempts=[open_attempt(1, "gone")]
    )
    h.store.create(running)

    h.runner.run(JOB, job_spec)

    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert [a.number for a in record.attempts] == [1, 2]
    lost, relaunched = record.attempts
    assert lost.failure_class == "transient"
    assert lost.ended_at is not None
    assert lost.error is not None
    assert "worker lost" in lost.error
    assert relaunched.exit_code == 0
    assert [launch.attempt for launch in h.runtime.launches] == [2]
    assert record.started_at == running.started_at


def test_lost_worker_with_no_retries_left_fails(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = spec(max_retries=0)
    h.store.create(
        JobRecord(id=JOB, spec=job_spec).moved_to(
            JobStatus.RUNNING, attempts=[open_attempt(1, "gone")]
        )
    )

    with pytest.raises(JobFailed, match="worker lost"):
        h.runner.run(JOB, job_spec)

    assert h.runtime.launches == []
    assert h.store.get(JOB).status == JobStatus.FAILED


def test_redelivery_during_backoff_launches_the_next_attempt(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = spec()
    ended = open_attempt(1, "old").model_copy(
        update={"ended_at": time.time(), "exit_code": 75, "failure_class": FailureClass.TRANSIENT}
    )
    h.store.create(
        JobRecord(id=JOB, spec=job_spec)
        .moved_to(JobStatus.RUNNING, attempts=[ended])
        .moved_to(JobStatus.RETRYING)
    )

    h.runner.run(JOB, job_spec)

    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert [a.number for a in record.attempts] == [1, 2]
    assert [launch.attempt for launch in h.runtime.launches] == [2]


def test_launch_refused_fails_at_once(settings: Settings) -> None:
    def refuse(launch: Launch) -> Played:
        raise LaunchRefused("no such image: nope:latest")

    h = harness(settings, refuse)
    job_spec = queued(h, spec(max_retries=3))

    with pytest.raises(JobFailed, match="no such image"):
        h.runner.run(JOB, job_spec)

    record = h.store.get(JOB)
    assert record.status == JobStatus.FAILED
    assert len(record.attempts) == 1
    assert record.attempts[0].failure_class == "permanent"
    assert record.attempts[0].ended_at is not None
    assert record.error is not None
    assert "gave up" not in record.error
    assert len(h.runtime.launches) == 1
    assert h.sleeps == []


def test_runtime_fault_at_start_is_retried(settings: Settings) -> None:
    def flaky(launch: Launch) -> Played:
        if launch.attempt == 1:
            raise RuntimeFault("docker daemon hiccup")
        return success(launch)

    h = harness(settings, flaky)
    job_spec = queued(h, spec())

    h.runner.run(JOB, job_spec)

    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert [a.failure_class for a in record.attempts] == ["transient", None]
    assert [launch.attempt for launch in h.runtime.launches] == [1, 2]


class DownRuntime(MemoryRuntime):
    """Does not answer its first ``down`` looks for attempts (an engine restarting)."""

    def __init__(self, script: Script, down: int) -> None:
        super().__init__(script)
        self.down = down

    def find(self, job_id: str | None = None) -> list[Any]:
        if self.down > 0:
            self.down -= 1
            raise RuntimeFault("no Docker engine answers: connection refused")
        return super().find(job_id)


def test_a_runtime_that_does_not_answer_is_waited_for_with_the_lease_held(
    settings: Settings,
) -> None:
    flags, store = MemoryCoordination(), MemoryJobRecords()
    holders: list[str | None] = []

    def sleep(seconds: float) -> None:
        holders.append(flags.lease_holder(JOB))

    runtime = DownRuntime(success, down=3)
    runner = Runner(store, flags, runtime, settings, "worker-1", sleep=sleep)
    job_spec = spec()
    store.create(JobRecord(id=JOB, spec=job_spec))

    runner.run(JOB, job_spec)

    record = store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert len(record.attempts) == 1  # the wait cost the job no attempt
    assert holders == ["1:worker-1"] * 3  # a look a second; no other worker could take it


def test_a_runtime_that_never_answers_fails_the_task_after_its_patience(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"runtime_patience_s": 5.0})
    store, sleeps = MemoryJobRecords(), []
    runtime = DownRuntime(success, down=1000)
    runner = Runner(store, MemoryCoordination(), runtime, settings, "w", sleep=sleeps.append)
    job_spec = spec()
    store.create(JobRecord(id=JOB, spec=job_spec))

    with pytest.raises(RuntimeFault, match="no Docker engine answers"):
        runner.run(JOB, job_spec)

    assert sleeps == [1.0] * 5
    record = store.get(JOB)
    assert not record.status.is_terminal and record.attempts == []  # sent again later


def test_a_job_cancelled_while_its_runtime_is_down_waits_no_longer(settings: Settings) -> None:
    flags, store = MemoryCoordination(), MemoryJobRecords()
    runtime = DownRuntime(success, down=1)  # back at the next look, but cancelled by then
    runner = Runner(store, flags, runtime, settings, "w", sleep=lambda _: flags.request_cancel(JOB))
    job_spec = spec()
    store.create(JobRecord(id=JOB, spec=job_spec))

    with pytest.raises(JobFailed):
        runner.run(JOB, job_spec)

    assert store.get(JOB).status == JobStatus.CANCELLED
    assert runtime.launches == []


class LosingRuntime(MemoryRuntime):
    """Loses track of attempt 1 in the middle of its output."""

    def output(self, handle: Handle, after: str | None = None) -> CountedOutput:
        return CountedOutput.of_lines(self._losing(handle), after)

    def _losing(self, handle: Handle) -> Iterator[str]:
        lines = iter(super().output(handle))
        if handle.attempt == 1:
            yield next(lines)
            raise RuntimeFault("container vanished")
        yield from lines


def test_losing_track_of_an_attempt_is_transient(settings: Settings) -> None:
    store = MemoryJobRecords()
    runtime = LosingRuntime(success)
    runner = Runner(
        store, MemoryCoordination(), runtime, settings, "worker-1", sleep=lambda s: None
    )
    job_spec = spec()
    store.create(JobRecord(id=JOB, spec=job_spec))

    runner.run(JOB, job_spec)

    record = store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    first = record.attempts[0]
    assert first.failure_class == "transient"
    assert first.error is not None
    assert "container vanished" in first.error
    assert [h.attempt for h in runtime.removed] == [1, 2]
    log = Path(record.log_path or "").read_text(encoding="utf-8")
    assert "supervision failed" in log


def _held_launch(settings: Settings, attempt: int) -> Launch:
    return Launch(
        job_id=JOB,
        attempt=attempt,
        image=settings.default_image,
        command=None,
        env={},
        checkpoint_dir=(settings.checkpoint_dir / JOB).absolute(),
        worker="old-worker",
    )


def left_running(settings: Settings) -> tuple[Harness, JobSpec, Handle]:
    """A job whose supervisor died while its attempt runs on."""
    h = harness(settings, success)
    job_spec = spec()
    handle = h.runtime.start(_held_launch(settings, 1))
    h.store.create(
        JobRecord(id=JOB, spec=job_spec).moved_to(
            JobStatus.RUNNING, attempts=[open_attempt(1, handle.ref)]
        )
    )
    return h, job_spec, handle


def test_running_attempt_is_adopted_not_relaunched(settings: Settings) -> None:
    h, job_spec, handle = left_running(settings)

    result = h.runner.run(JOB, job_spec)

    assert result["final_loss"] == pytest.approx(0.25)
    assert len(h.runtime.launches) == 1  # only the one started before run()
    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert len(record.attempts) == 1
    assert record.attempts[0].exit_code == 0
    assert record.attempts[0].handle == handle.ref
    assert h.runtime.removed == [handle]
    assert [p.epoch for p in h.progress] == [1, 2]


def test_older_attempts_are_stopped_and_the_newest_adopted(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = spec()
    old = h.runtime.start(_held_launch(settings, 1))
    new = h.runtime.start(_held_launch(settings, 2))
    ended = open_attempt(1, old.ref).model_copy(update={"ended_at": time.time()})
    h.store.create(
        JobRecord(id=JOB, spec=job_spec).moved_to(
            JobStatus.RUNNING, attempts=[ended, open_attempt(2, new.ref)]
        )
    )

    h.runner.run(JOB, job_spec)

    assert h.runtime.stopped == [old]
    assert h.runtime.removed == [old, new]
    assert len(h.runtime.launches) == 2
    record = h.store.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert [a.number for a in record.attempts] == [1, 2]


class HangingRuntime(MemoryRuntime):
    """An attempt that never exits by itself; stop() ends it with SIGTERM's code."""

    give_up_s = 4.0

    def __init__(self) -> None:
        super().__init__(lambda launch: Played(["training forever"], Exit(0)))
        self._deadline = time.monotonic() + self.give_up_s

    def wait(self, handle: Handle, timeout_s: float) -> Exit | None:
        if handle in self.stopped:
            return Exit(143)
        if time.monotonic() > self._deadline:
            raise AssertionError("the runner never enforced the job's time limit")
        time.sleep(min(timeout_s, 0.05))
        return None


def test_job_time_limit_is_enforced(settings: Settings) -> None:
    store = MemoryJobRecords()
    runtime = HangingRuntime()
    runner = Runner(
        store, MemoryCoordination(), runtime, settings, "worker-1", sleep=lambda s: None
    )
    job_spec = spec(timeout=1)
    store.create(JobRecord(id=JOB, spec=job_spec))

    with pytest.raises(JobFailed):
        runner.run(JOB, job_spec)

    assert store.get(JOB).status == JobStatus.TIMED_OUT
    assert runtime.stopped


def test_a_final_job_removes_an_attempt_its_supervisor_left_behind(settings: Settings) -> None:
    h = harness(settings, success)
    job_spec = spec()
    left = h.runtime.start(_held_launch(settings, 1))
    done = JobRecord(id=JOB, spec=job_spec).moved_to(JobStatus.RUNNING, attempts=[open_attempt(1)])
    h.store.create(done.moved_to(JobStatus.SUCCEEDED, result={"final_loss": 0.1}))

    assert h.runner.run(JOB, job_spec) == {"final_loss": 0.1}

    assert h.runtime.removed == [left]
    assert len(h.runtime.launches) == 1  # only the one this test made


def test_a_readopted_attempt_goes_on_after_what_its_last_supervisor_stored(
    settings: Settings,
) -> None:
    """The last supervisor stored two lines and was killed; its successor stores the rest."""
    h, job_spec, handle = left_running(settings)
    played = h.runtime.attempts[handle].lines
    stored = [(1, time.time(), line) for line in played[:2]]
    h.runner.logs.append(JOB, stored, Capture(1, 2, "2", file_bytes=0))

    h.runner.run(JOB, job_spec)

    assert [line.line for line in h.runner.logs.read(JOB)] == played
    log_path = Path(h.store.get(JOB).log_path or "")
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["msg"] for e in entries if "event" not in e] == played[2:]
    assert [e["event"] for e in entries if "event" in e] == ["attempt_adopted", "attempt_ended"]
