"""Fixtures: a private Redis server and real prefork workers as subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clusters import Cluster
from tests.harness import REDIS_PORT, REDIS_URL, STATE_DIR, Worker, trainq_containers
from tests.s3server import S3Server
from trainq.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on a free port; its URL (db 0)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    server = RedisServer(STATE_DIR / "redis", port=REDIS_PORT).start()
    yield REDIS_URL
    server.stop()


@pytest.fixture
def cluster(redis_server: str, tmp_path: Path) -> Iterator[Cluster]:
    """A scheduler test's own cluster (key prefix, simulated GPU workers), closed after."""
    made = Cluster(tmp_path)
    try:
        yield made
    finally:
        made.close()


def _workers(folder: Path, env: dict[str, str]) -> Iterator[Callable[..., Worker]]:
    """A function that starts workers by name (and extra env, worker options); all are
    stopped afterwards."""
    started: list[Worker] = []

    def start(
        name: str, extra_env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> Worker:
        log = folder / f"{name.split('@')[0]}.log"
        worker = Worker(name, log, {**env, **(extra_env or {})}, args=args)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def worker_factory(redis_server: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start process-runtime workers by name; all are stopped at the end of the test."""
    yield from _workers(tmp_path, {})


@pytest.fixture(scope="module")
def worker(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One prefork worker shared by a module's tests."""
    for start in _workers(tmp_path_factory.mktemp("worker"), {}):
        yield start(f"w{os.getpid()}-{time.monotonic_ns()}@testhost")


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The Docker engine answers and the standard image is built; its tag."""
    from docker.client import DockerClient
    from docker.errors import DockerException, ImageNotFound

    from trainq.config import get_settings

    image = get_settings().default_image
    try:
        client = DockerClient.from_env()
        client.ping()
    except DockerException as exc:
        pytest.fail(f"no Docker engine answers ({exc}): run `make test`, which starts one")
    try:
        client.images.get(image)
    except ImageNotFound:
        pytest.fail(f"image {image} is missing: run `make image` (make test does)")
    finally:
        client.close()
    return image


@pytest.fixture
def no_leftover_containers(docker_engine: str) -> Iterator[None]:
    """After the test, no container labelled trainq.job_id may remain."""
    yield
    left = trainq_containers()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
        pytest.fail(f"{len(left)} trainq container(s) left behind: {left}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses real services also checks that no container leaks."""
    for item in items:
        # The GPU check runs where there may be no Docker engine (process runtime).
        if "unit" not in item.path.parts and "gpu" not in item.path.parts:
            item.add_marker(pytest.mark.usefixtures("no_leftover_containers"))


@pytest.fixture
def docker_workers(
    redis_server: str, docker_engine: str, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Start Docker-runtime workers by name; all are stopped at the end of the test."""
    yield from _workers(tmp_path, {"TRAINQ_RUNTIME": "docker"})


@pytest.fixture(scope="module")
def docker_worker(
    redis_server: str, docker_engine: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One prefork worker on the Docker runtime, shared by a module's tests."""
    docker = {"TRAINQ_RUNTIME": "docker"}
    for start in _workers(tmp_path_factory.mktemp("docker-worker"), docker):
        yield start(f"d{os.getpid()}-{time.monotonic_ns()}@testhost")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave nothing behind, even after a failed test: this run's containers too (their
    cluster is this run's alone, so no reconciler would ever remove them)."""
    if shutil.which("docker") is not None:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            left = trainq_containers()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
    shutil.rmtree(STATE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server (a subprocess) shared by the session; make buckets with
    ``s3_server.make_bucket(name)``."""
    with S3Server() as server:
        yield server
