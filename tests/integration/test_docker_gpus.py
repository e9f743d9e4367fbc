"""Simulated GPUs on the Docker runtime: the container gets the variables, no device request."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docker.client import DockerClient

from tests.harness import DOCKER_TEST_PREFIX, Worker, trainq_containers, wait_until
from trainq import JobStatus, connections, submit_training
from trainq.runtime.base import Launch
from trainq.runtime.container import DockerRuntime

pytestmark = pytest.mark.integration

SHOW_ENV = (
    "import json, os; print(json.dumps({'trainq': 'result', 'seen': {k: os.environ.get(k) "
    "for k in ('CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES', 'TRAINQ_GPU_IDS')}}))"
)


@pytest.fixture
def engine() -> Iterator[DockerClient]:
    client = DockerClient.from_env()
    yield client
    client.close()


def test_simulated_gpus_give_the_container_variables_but_no_device_request(
    docker_engine: str, engine: DockerClient, tmp_path: Path
) -> None:
    runtime = DockerRuntime(
        pids_limit=256,
        log_max_size="1m",
        log_max_files=1,
        container_user=f"{os.getuid()}:{os.getgid()}",
        cluster=DOCKER_TEST_PREFIX,
        simulate_gpus=True,
    )
    launch = Launch(
        job_id=f"dk-gpu-{time.monotonic_ns()}",
        attempt=1,
        image=docker_engine,
        command=["python3", "-c", SHOW_ENV],
        env={},
        checkpoint_dir=tmp_path / "ck",
        worker="docker-gpu-test@host",
        gpu_ids=[1],
    )
    handle = runtime.start(launch)
    try:
        container = engine.containers.get(handle.ref)
        assert not container.attrs["HostConfig"].get("DeviceRequests")
        assert runtime.wait(handle, 60) is not None
        (line,) = [x for x in runtime.output(handle) if x.startswith("{")]
        assert json.loads(line)["seen"] == {
            "CUDA_VISIBLE_DEVICES": "0",  # devices are numbered from 0 inside a container
            "NVIDIA_VISIBLE_DEVICES": "1",
            "TRAINQ_GPU_IDS": "1",
        }
    finally:
        runtime.remove(handle)
    assert trainq_containers(launch.job_id) == []


def test_a_simulated_gpu_docker_worker_runs_its_pinned_job(
    docker_workers: Callable[..., Worker],
) -> None:
    name = f"dgpu-{os.getpid()}-{time.monotonic_ns()}@testhost"
    docker_workers(name, {"TRAINQ_SIMULATE_GPUS": "1"}, ["--gpus", "1"])

    r = submit_training.delay(gpu=True, gpu_ids=[1], command=["python3", "-c", SHOW_ENV])
    result = r.get(timeout=120)

    record = connections.records().get(r.id)
    assert record.status == JobStatus.SUCCEEDED
    assert record.attempts[0].worker == name
    assert record.attempts[0].runtime == "docker"
    assert record.attempts[0].gpu_ids == [1]
    assert result["seen"]["NVIDIA_VISIBLE_DEVICES"] == "1"
    assert result["seen"]["CUDA_VISIBLE_DEVICES"] == "0"
    wait_until(lambda: not trainq_containers(r.id), 30, "the container to be removed")
