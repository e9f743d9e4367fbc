"""The GPU check (`make gpu-check`): train.py on CUDA through a worker pinned to one GPU.

Runs on a machine with NVIDIA GPUs, NVML (nvidia-ml-py) and a CUDA build of torch;
anywhere else it is skipped, saying what is missing. The worker uses the process
runtime (the standard image's torch is a CPU build), so no Docker engine is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Worker
from trainq import JobStatus, connections, submit_training
from trainq.errors import GpuUnavailable
from trainq.worker.devices import Gpus, resolve

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpus() -> Gpus:
    try:
        found = resolve("auto", simulate=False)  # what `trainq worker --gpus auto` owns
    except GpuUnavailable as exc:
        pytest.skip(f"no NVIDIA GPU here, or no NVML: {exc}")
    probe = "import torch; print(torch.cuda.is_available())"
    cuda = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    if cuda.stdout.strip() != "True":
        pytest.skip(f"{len(found.ids)} GPU(s), but this torch has no CUDA: {cuda.stderr[-300:]}")
    return found


@pytest.fixture(scope="module")
def pinned(
    gpus: Gpus, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, Worker]]:
    """A worker owning the host's last GPU (not 0, where one exists: ids must not be
    confused with CUDA's own numbering)."""
    gpu = gpus.ids[-1]
    name = f"gpucheck-{os.getpid()}-{time.monotonic_ns()}@testhost"
    folder: Path = tmp_path_factory.mktemp("gpu-check")
    worker = Worker(
        name, folder / "worker.log", {"TRAINQ_RUNTIME": "process"}, ["--gpus", str(gpu)]
    )
    worker.start()
    try:
        yield gpu, worker
    finally:
        worker.stop()


def test_train_py_trains_on_its_pinned_gpu_and_sees_only_it(pinned: tuple[int, Worker]) -> None:
    gpu, worker = pinned

    r = submit_training.delay(epochs=2, gpu=True, gpu_ids=[gpu])
    result = r.get(timeout=300)

    record = connections.records().get(r.id)
    assert record.status == JobStatus.SUCCEEDED
    (attempt,) = record.attempts
    assert attempt.worker == worker.name
    assert attempt.gpu_ids == [gpu]
    assert result["device"].startswith("cuda")
    assert result["cuda_visible_devices"] == str(gpu)
    assert result["cuda_device_count"] == 1  # only its own device
    if result.get("device_uuid") and attempt.gpu_uuids:
        assert result["device_uuid"] == attempt.gpu_uuids[0]  # the very GPU it was given
    assert result["final_loss"] < result["metrics"][0]["loss"]
