"""Artifact retention: a final job's artifacts go after the retention; nothing else does."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from trainq.artifacts.retention import expire
from trainq.artifacts.store import ArtifactStore
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store.memory import MemoryJobRecords

DAY_S = 86_400.0


def finished(records: MemoryJobRecords, job_id: str, status: JobStatus, ago_days: float) -> None:
    record = JobRecord(id=job_id, spec=JobSpec())
    if status != JobStatus.QUEUED:
        record = record.moved_to(JobStatus.RUNNING)
    if status.is_terminal:
        record = record.moved_to(status)
        record = record.model_copy(update={"finished_at": time.time() - ago_days * DAY_S})
    records.create(record)


def test_only_final_jobs_past_retention_lose_their_artifacts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ArtifactStore((tmp_path / "store").as_uri())
    records = MemoryJobRecords()
    finished(records, "old", JobStatus.SUCCEEDED, ago_days=10)
    finished(records, "old-failed", JobStatus.FAILED, ago_days=8)
    finished(records, "recent", JobStatus.SUCCEEDED, ago_days=1)
    finished(records, "running", JobStatus.RUNNING, ago_days=0)
    for job_id in ("old", "old-failed", "recent", "running", "unknown"):
        store.put_bytes(f"jobs/{job_id}/outputs/model.pt", b"weights")

    with caplog.at_level(logging.INFO, logger="trainq.artifacts"):
        deleted = expire(store, records, retention_days=7)

    assert deleted == ["old", "old-failed"]
    left = {key.split("/")[1] for key, _ in store.list("jobs")}
    assert left == {"recent", "running", "unknown"}  # never an id Redis does not know
    assert any("deleted the artifacts of job old " in r.message for r in caplog.records)
    assert any("unknown job unknown" in r.message for r in caplog.records)
