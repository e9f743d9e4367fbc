"""The runner and the artifact store: checkpoints restored on a new host, synced while
the attempt runs, outputs and the log archived at its end, all listed in the record.

Two "hosts" are two runners with their own data directories and one file:// store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trainq.artifacts import checkpoints
from trainq.artifacts.logs import archived_lines
from trainq.artifacts.outputs import open_artifact
from trainq.artifacts.store import ArtifactStore
from trainq.config import Settings
from trainq.errors import ArtifactError
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.runtime.base import Exit, Launch
from trainq.runtime.memory import MemoryRuntime, Played
from trainq.store.memory import MemoryCoordination, MemoryJobRecords
from trainq.worker.runner import Runner
from trainq.worker.transfers import AttemptFiles

JOB = "job-a"


def host_settings(root: Path, name: str) -> Settings:
    return Settings(
        hostname=name,
        log_dir=root / name / "logs",
        checkpoint_dir=root / name / "ck",
        output_dir=root / name / "out",
        retry_backoff_s=0,
        artifact_sync_interval_s=0,
    )


def progress(epoch: int) -> str:
    return json.dumps({"trainq": "progress", "epoch": epoch, "epochs": 3, "loss": 1 / epoch})


def trains(launch: Launch) -> Played:
    """A job that resumes from its checkpoint file and leaves a model in its outputs."""
    launch.checkpoint_dir.mkdir(parents=True, exist_ok=True)  # as a runtime does
    ckpt = launch.checkpoint_dir / "checkpoint.pt"
    start = int(ckpt.read_text()) if ckpt.exists() else 0
    ckpt.write_text("3")
    assert launch.output_dir is not None
    launch.output_dir.mkdir(parents=True, exist_ok=True)
    (launch.output_dir / "model.pt").write_bytes(b"weights" * 1000)
    lines = [f"resuming after epoch {start}"] + [progress(e) for e in range(start + 1, 4)]
    return Played([*lines, json.dumps({"trainq": "result", "final_loss": 0.3})], Exit(0))


def runner(settings: Settings, records: MemoryJobRecords, store: ArtifactStore | None) -> Runner:
    return Runner(
        records=records,
        coordination=MemoryCoordination(),
        runtime=MemoryRuntime(trains),
        settings=settings,
        worker=f"w@{settings.hostname}",
        files=AttemptFiles(store, settings),
    )


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore((tmp_path / "store").as_uri())


def test_a_job_on_a_new_host_starts_from_the_stores_checkpoint(
    tmp_path: Path, store: ArtifactStore
) -> None:
    # Host A trained two epochs and published them, then died.
    a = host_settings(tmp_path, "a")
    (a.checkpoint_dir / JOB).mkdir(parents=True)
    (a.checkpoint_dir / JOB / "checkpoint.pt").write_text("2")
    checkpoints.publish(
        store, JOB, a.checkpoint_dir / JOB, attempt=1, host="a", epoch=2,
        state_path=a.checkpoint_dir / f".{JOB}.sync.json",
    )  # fmt: skip
    b = host_settings(tmp_path, "b")
    records = MemoryJobRecords()
    records.create(JobRecord(id=JOB, spec=JobSpec(epochs=3)))

    runner(b, records, store).run(JOB, JobSpec(epochs=3))

    record = records.get(JOB)
    assert record.status == JobStatus.SUCCEEDED
    assert record.attempts[0].restored_epoch == 2 and record.attempts[0].host == "b"
    archived = list(archived_lines(store, JOB, 1) or [])
    assert any("resuming after epoch 2" in line for line in archived)


def test_a_finished_attempt_leaves_its_model_checkpoint_and_log_in_the_record(
    tmp_path: Path, store: ArtifactStore
) -> None:
    settings = host_settings(tmp_path, "a")
    records = MemoryJobRecords()
    records.create(JobRecord(id=JOB, spec=JobSpec(epochs=3)))

    result = runner(settings, records, store).run(JOB, JobSpec(epochs=3))

    record = records.get(JOB)
    by_path = {a.path: a for a in record.artifacts}
    assert set(by_path) == {
        "checkpoints/checkpoint.pt",
        "outputs/model.pt",
        "logs/attempt-1.log.gz",
    }
    model = by_path["outputs/model.pt"]
    assert model.sha256 == hashlib.sha256(b"weights" * 1000).hexdigest() and model.attempt == 1
    with open_artifact(store, JOB, "checkpoints/checkpoint.pt") as stored:
        assert stored.read() == b"3"
    assert record.attempts[0].artifact_error is None and record.attempts[0].restored_epoch is None
    assert result["final_loss"] == pytest.approx(0.3)


class FailingStore(ArtifactStore):
    """A store whose every upload fails, as an unreachable bucket's would."""

    def put_file(self, local: Path, key: str) -> tuple[int, str]:
        raise ArtifactError(f"{self.url}: upload of {key} refused")

    def put_bytes(self, key: str, data: bytes) -> tuple[int, str]:
        raise ArtifactError(f"{self.url}: upload of {key} refused")


def test_an_upload_that_fails_to_the_end_is_recorded_not_swallowed(tmp_path: Path) -> None:
    settings = host_settings(tmp_path, "a")
    records = MemoryJobRecords()
    records.create(JobRecord(id=JOB, spec=JobSpec(epochs=3)))
    store = FailingStore((tmp_path / "store").as_uri())

    runner(settings, records, store).run(JOB, JobSpec(epochs=3))

    attempt = records.get(JOB).attempts[0]
    assert attempt.artifact_error is not None and "refused" in attempt.artifact_error


def test_without_a_store_nothing_is_moved(tmp_path: Path) -> None:
    settings = host_settings(tmp_path, "a")
    records = MemoryJobRecords()
    records.create(JobRecord(id=JOB, spec=JobSpec(epochs=3)))

    runner(settings, records, None).run(JOB, JobSpec(epochs=3))

    assert records.get(JOB).artifacts == []
