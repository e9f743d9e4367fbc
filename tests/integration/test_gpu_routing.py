"""GPU routing with simulated GPUs: two real prefork workers owning GPU 0 and GPU 1.

The acceptance of issue 7: pinned jobs reach only their GPU's worker and see only
that device; count-only jobs spread over both, never two at once on one worker; a
job naming a GPU nobody owns waits with a reason naming its queue.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.result import AsyncResult

from tests.harness import BIN, REPO, Worker, wait_until
from trainq import JobStatus, SpecError, cancel, connections, submit_training
from trainq.client import waiting_reason
from trainq.cluster.registry import Registry
from trainq.config import get_settings
from trainq.jobs.record import JobRecord
from trainq.store.keys import Keys

pytestmark = pytest.mark.integration

# Prints what the job saw as its result line; a short sleep makes overlaps visible.
PROBE = [
    sys.executable,
    "-c",
    "import json, os, time\n"
    "t0 = time.time(); time.sleep(0.3)\n"
    "seen = {k: os.environ.get(k) for k in ('CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES',\n"
    "        'TRAINQ_GPU_IDS', 'CUDA_DEVICE_ORDER')}\n"
    "print(json.dumps({'trainq': 'result', 'seen': seen, 't0': t0, 't1': time.time()}))\n",
]
HOST = get_settings().hostname
# How a pending job's reason ends: its place in the scheduler's pending queue.
PLACE = r" \(place \d+ in the pending queue\)"


@pytest.fixture(scope="module")
def gpu_workers(
    redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[int, Worker]]:
    """Two simulated GPU workers, ``--gpus 0`` and ``--gpus 1``, by GPU id."""
    folder = tmp_path_factory.mktemp("gpu-workers")
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    workers = {
        gpu: Worker(
            f"gpu{gpu}-{stamp}@testhost",
            folder / f"gpu{gpu}.log",
            {"TRAINQ_SIMULATE_GPUS": "1"},
            args=["--gpus", str(gpu)],
        )
        for gpu in (0, 1)
    }
    try:
        for worker in workers.values():
            worker.start()
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


def waiting(record: JobRecord) -> str | None:
    """The job's waiting reason as callers get it (the scheduler's, while pending)."""
    return waiting_reason(record)


def finished(job_ids: list[str]) -> list[JobRecord]:
    store = connections.records()
    records = [store.get(job_id) for job_id in job_ids]
    return records if all(r.status.is_terminal for r in records) else []


def run_all(n: int, **spec: Any) -> list[JobRecord]:
    ids = [submit_training.delay(command=PROBE, **spec).id for _ in range(n)]
    records = wait_until(lambda: finished(ids), 120, f"{n} jobs to finish", interval_s=0.3)
    for r in records:
        assert r.status == JobStatus.SUCCEEDED, r.error
    return records


def test_each_worker_registers_its_gpus_and_queues(gpu_workers: dict[int, Worker]) -> None:
    live = {w.name: w for w in connections.live_workers()}

    for gpu, worker in gpu_workers.items():
        info = live[worker.name]
        assert info.gpu_ids == (gpu,)
        assert info.simulated_gpus
        assert info.concurrency == 1
        assert info.queues == (f"gpu.{gpu}@{HOST}", "gpus.1", f"gpus.1@{HOST}")


def test_pinned_jobs_all_run_on_their_gpus_worker_and_see_only_it(
    gpu_workers: dict[int, Worker],
) -> None:
    records = run_all(10, gpu=True, gpu_ids=[1])

    for r in records:
        assert r.queue == f"gpu.1@{HOST}"
        (attempt,) = r.attempts
        assert attempt.worker == gpu_workers[1].name
        assert attempt.gpu_ids == [1]
        assert r.result is not None
        assert r.result["seen"] == {
            "CUDA_VISIBLE_DEVICES": "1",
            "NVIDIA_VISIBLE_DEVICES": "1",
            "TRAINQ_GPU_IDS": "1",
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        }


def test_count_jobs_spread_over_both_workers_one_at_a_time_each(
    gpu_workers: dict[int, Worker],
) -> None:
    records = run_all(10, gpu=True, gpus=1)

    by_worker: dict[str, list[JobRecord]] = {}
    for r in records:
        assert r.queue == "gpus.1"
        by_worker.setdefault(r.attempts[0].worker or "", []).append(r)
    assert set(by_worker) == {w.name for w in gpu_workers.values()}
    for gpu, worker in gpu_workers.items():
        runs = sorted(by_worker[worker.name], key=lambda r: (r.result or {})["t0"])
        for r in runs:  # each job got its worker's own device
            assert r.attempts[0].gpu_ids == [gpu]
            assert (r.result or {})["seen"]["CUDA_VISIBLE_DEVICES"] == str(gpu)
        for before, after in itertools.pairwise(runs):
            assert (before.result or {})["t1"] <= (after.result or {})["t0"], "two at once"


def test_train_py_on_a_pinned_worker_reports_the_visible_device(
    gpu_workers: dict[int, Worker],
) -> None:
    result = submit_training.delay(epochs=1, gpu=True, gpu_ids=[0]).get(timeout=120)

    assert result["cuda_visible_devices"] == "0"
    assert result["device"] == "cpu"  # simulated: no CUDA here


def test_a_job_naming_a_gpu_nobody_owns_waits_with_a_reason_naming_its_queue(
    gpu_workers: dict[int, Worker],
) -> None:
    job_id = submit_training.delay(gpu=True, gpu_ids=[7]).id
    try:
        record = connections.records().get(job_id)
        assert record.pending  # the scheduler sends it only once a worker serves its queue
        reason = waiting(record) or ""
        assert re.fullmatch(
            rf"no live worker serves queue gpu\.7@{re.escape(HOST)}{PLACE}",
            reason,
        ), reason

        shown = subprocess.run(
            [str(BIN / "trainq"), "status", job_id],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "waiting" in shown.stdout
        assert f"no live worker serves queue gpu.7@{HOST}" in " ".join(shown.stdout.split())
        assert AsyncResult(job_id).state == "PENDING"
    finally:
        assert cancel(job_id).status == JobStatus.CANCELLED


def test_a_served_queued_job_gets_its_place_in_the_queue(gpu_workers: dict[int, Worker]) -> None:
    """While GPU 0's worker is busy, the next jobs for it are pending, 1st and 2nd for its
    queue (both cancelled before the first ends: the sleep only has to outlast the test)."""
    slow = [sys.executable, "-c", "import time; time.sleep(60)"]
    first = submit_training.delay(gpu=True, gpu_ids=[0], command=slow).id
    wait_until(
        lambda: connections.records().get(first).status == JobStatus.RUNNING, 60, "first job"
    )
    second = submit_training.delay(gpu=True, gpu_ids=[0], command=slow).id
    third = submit_training.delay(gpu=True, gpu_ids=[0], command=slow).id
    try:
        queue = re.escape(f"gpu.0@{HOST}")
        for job_id, place in ((second, "1st"), (third, "2nd")):
            record = connections.records().get(job_id)
            assert record.pending, record
            reason = waiting(record) or ""
            expected = rf"{place} for {queue} \(1 of 1 workers busy\){PLACE}"
            assert re.fullmatch(expected, reason), reason
    finally:
        for job_id in (third, second, first):
            cancel(job_id)


def test_more_gpus_than_any_live_worker_is_refused_at_submit(
    gpu_workers: dict[int, Worker],
) -> None:
    before = connections.records().count()

    with pytest.raises(SpecError, match="gpus: asks for 2 GPUs but the largest live GPU worker"):
        submit_training.delay(gpu=True, gpus=2)
    with pytest.raises(SpecError, match="gpu_ids: asks for 2 GPUs"):
        submit_training.delay(gpu=True, gpu_ids=[0, 1])

    assert connections.records().count() == before


def test_a_stopped_worker_leaves_the_registry(redis_server: str, tmp_path: Any) -> None:
    name = f"gpu5-{os.getpid()}-{time.monotonic_ns()}@testhost"
    worker = Worker(name, tmp_path / "w.log", {"TRAINQ_SIMULATE_GPUS": "1"}, args=["--gpus", "5"])
    worker.start()
    try:
        assert name in {w.name for w in connections.live_workers()}
    finally:
        worker.stop()
    assert name not in {w.name for w in connections.live_workers()}


def test_live_workers_reads_from_a_bare_redis_client(gpu_workers: dict[int, Worker]) -> None:
    client = redis.Redis.from_url(get_settings().redis_url)
    keys = Keys(get_settings().key_prefix)
    names = {w.name for w in Registry(client, keys, ttl_s=30).live()}
    client.close()

    assert {w.name for w in gpu_workers.values()} <= names
