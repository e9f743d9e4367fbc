"""The Docker runtime against the real engine, driven by the real runner and Redis store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from docker.client import DockerClient

from tests.harness import DOCKER_TEST_PREFIX, STORE_TEST_URL, trainq_containers, wait_until
from trainq.config import Settings
from trainq.errors import JobFailed
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec, parse_size
from trainq.jobs.status import JobStatus
from trainq.logs.stream import MemoryLogStream
from trainq.runtime.base import Handle, Launch
from trainq.runtime.container import CHECKPOINT_MOUNT, DockerRuntime
from trainq.runtime.factory import make_runtime
from trainq.store.keys import Keys
from trainq.store.redis import RedisCoordination, RedisJobRecords
from trainq.worker.runner import Runner

pytestmark = pytest.mark.integration

PROGRESS = '{"trainq": "progress", "epoch": 1, "epochs": 1, "loss": 0.5}'


class CountingRuntime(DockerRuntime):
    """The real Docker runtime, counting the containers it launches."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            pids_limit=settings.container_pids_limit,
            log_max_size=settings.container_log_max_size,
            log_max_files=settings.container_log_max_files,
            container_user=settings.container_user,
            cluster=settings.key_prefix,
        )
        self.starts: list[Handle] = []

    def start(self, launch: Launch) -> Handle:
        handle = super().start(launch)
        self.starts.append(handle)
        return handle


@pytest.fixture
def settings(tmp_path: Path, docker_engine: str) -> Settings:
    return Settings(
        redis_url=STORE_TEST_URL,
        key_prefix=DOCKER_TEST_PREFIX,
        log_dir=tmp_path / "logs",
        checkpoint_dir=tmp_path / "checkpoints",
        output_dir=tmp_path / "outputs",
        runtime="docker",
        default_image=docker_engine,
        stop_grace_s=2,
        retry_backoff_s=0,
    )


@pytest.fixture
def store(settings: Settings, redis_server: str) -> Iterator[RedisJobRecords]:
    client = redis.Redis.from_url(STORE_TEST_URL, decode_responses=True)
    client.flushdb()
    yield RedisJobRecords(client, Keys(settings.key_prefix))
    client.close()


def coordination(store: RedisJobRecords) -> RedisCoordination:
    return RedisCoordination(store.client, store.keys)


@pytest.fixture
def engine() -> Iterator[DockerClient]:
    client = DockerClient.from_env()
    yield client
    client.close()


def runner(store: RedisJobRecords, runtime: DockerRuntime, settings: Settings) -> Runner:
    return Runner(
        store, coordination(store), runtime, settings, "docker-test@host", sleep=lambda _: None
    )


def python(script: str) -> list[str]:
    return ["python3", "-c", script]


def queued(store: RedisJobRecords, job_id: str, **spec: Any) -> JobSpec:
    job_spec = JobSpec.parse(spec)
    store.create(JobRecord(id=job_id, spec=job_spec))
    return job_spec


def test_job_runs_in_a_labelled_limited_container_and_leaves_none(
    store: RedisJobRecords, settings: Settings, engine: DockerClient, docker_engine: str
) -> None:
    runtime = CountingRuntime(settings)
    slow_train = ["python3", "/app/train.py", "--epoch-sleep-s", "1"]
    job_spec = queued(
        store, "dk-limits", epochs=2, command=slow_train, cpus=1.5, memory="512m", shm_size="64m"
    )
    outcome: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(runner(store, runtime, settings).run("dk-limits", job_spec))
    )
    thread.start()
    ids = wait_until(lambda: trainq_containers("dk-limits"), 60, "the job's container")
    container = engine.containers.get(ids[0])  # type: ignore[index]
    thread.join(120)

    attrs = container.attrs
    assert attrs["Config"]["Labels"]["trainq.job_id"] == "dk-limits"
    assert attrs["Config"]["Labels"]["trainq.attempt"] == "1"
    assert attrs["Config"]["Labels"]["trainq.worker"] == "docker-test@host"
    assert attrs["Config"]["User"] == settings.container_user
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024**2
    assert host["ShmSize"] == 64 * 1024**2
    assert host["PidsLimit"] == settings.container_pids_limit
    assert host["Init"] is True
    assert host["AutoRemove"] is False
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": settings.container_log_max_size, "max-file": "3"},
    }
    mounts = {m["Destination"]: m["Source"] for m in attrs["Mounts"]}
    checkpoint_dir = settings.checkpoint_dir.absolute() / "dk-limits"
    output_dir = settings.output_dir.absolute() / "dk-limits" / "1"
    assert mounts == {CHECKPOINT_MOUNT: str(checkpoint_dir), "/outputs": str(output_dir)}
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert env["TRAINQ_JOB_ID"] == "dk-limits" and env["TRAINQ_ATTEMPT"] == "1"
    assert env["TRAINQ_CHECKPOINT_DIR"] == CHECKPOINT_MOUNT

    assert not thread.is_alive()
    assert outcome["final_loss"] < outcome["metrics"][0]["loss"]
    assert Path(outcome["checkpoint_path"]) == checkpoint_dir / "checkpoint.pt"
    assert Path(outcome["checkpoint_path"]).is_file()
    record = store.get("dk-limits")
    assert record.status == JobStatus.SUCCEEDED
    attempt = record.attempts[0]
    assert attempt.handle == container.id
    assert attempt.image == docker_engine
    assert attempt.image_digest == engine.images.get(docker_engine).id
    assert len(runtime.starts) == 1
    assert trainq_containers("dk-limits") == []


def adopted_record(store: RedisJobRecords, job_id: str, job_spec: JobSpec, handle: Handle) -> None:
    """The record a supervisor leaves when it dies right after launching ``handle``."""
    open_attempt = Attempt(number=1, handle=handle.ref, runtime="docker", started_at=time.time())
    store.create(
        JobRecord(id=job_id, spec=job_spec).moved_to(JobStatus.RUNNING, attempts=[open_attempt])
    )


def launch_of(settings: Settings, job_id: str, command: list[str]) -> Launch:
    return Launch(
        job_id=job_id,
        attempt=1,
        image=settings.default_image,
        command=command,
        env={},
        checkpoint_dir=settings.checkpoint_dir.absolute() / job_id,
        worker="dead-worker@host",
    )


def test_an_exited_container_is_collected_not_launched_again(
    store: RedisJobRecords, settings: Settings, engine: DockerClient
) -> None:
    runtime = CountingRuntime(settings)
    command = python(f"print('from the first supervisor'); print({PROGRESS!r})")
    job_spec = JobSpec.parse({"epochs": 1, "command": command})
    handle = DockerRuntime.start(runtime, launch_of(settings, "dk-exited", command))
    engine.containers.get(handle.ref).wait(timeout=60)
    adopted_record(store, "dk-exited", job_spec, handle)

    runner(store, runtime, settings).run("dk-exited", job_spec)

    assert runtime.starts == []
    record = store.get("dk-exited")
    assert record.status == JobStatus.SUCCEEDED
    assert [a.handle for a in record.attempts] == [handle.ref]
    assert record.progress.loss == 0.5
    assert "from the first supervisor" in Path(record.log_path or "").read_text()
    assert trainq_containers("dk-exited") == []


def test_a_running_container_is_reattached(
    store: RedisJobRecords, settings: Settings, engine: DockerClient
) -> None:
    runtime = CountingRuntime(settings)
    command = python(f"import time; time.sleep(3); print({PROGRESS!r}); print('done late')")
    job_spec = JobSpec.parse({"epochs": 1, "command": command})
    handle = DockerRuntime.start(runtime, launch_of(settings, "dk-running", command))
    assert engine.containers.get(handle.ref).status == "running"
    adopted_record(store, "dk-running", job_spec, handle)

    runner(store, runtime, settings).run("dk-running", job_spec)

    assert runtime.starts == []
    record = store.get("dk-running")
    assert record.status == JobStatus.SUCCEEDED
    assert len(record.attempts) == 1 and record.attempts[0].exit_code == 0
    assert "done late" in Path(record.log_path or "").read_text()
    assert trainq_containers("dk-running") == []


def test_a_missing_image_fails_fast_and_names_the_image(
    store: RedisJobRecords, settings: Settings
) -> None:
    runtime = CountingRuntime(settings)
    image = "trainq-test/no-such-image:never"
    job_spec = queued(store, "dk-noimage", image=image, max_retries=3)
    started = time.monotonic()

    with pytest.raises(JobFailed, match="no-such-image"):
        runner(store, runtime, settings).run("dk-noimage", job_spec)

    assert time.monotonic() - started < 30
    record = store.get("dk-noimage")
    assert record.status == JobStatus.FAILED
    assert [a.failure_class for a in record.attempts] == ["permanent"]
    assert image in (record.error or "")
    assert runtime.starts == []


def test_exceeding_the_memory_limit_is_recorded_as_oom_killed(
    store: RedisJobRecords, settings: Settings
) -> None:
    runtime = CountingRuntime(settings)
    hog = python("print('allocating', flush=True); x = b'x' * (512 << 20); print('survived')")
    job_spec = queued(store, "dk-oom", command=hog, memory="64m", max_retries=3)

    with pytest.raises(JobFailed, match="memory limit"):
        runner(store, runtime, settings).run("dk-oom", job_spec)

    record = store.get("dk-oom")
    assert record.status == JobStatus.FAILED
    assert [a.failure_class for a in record.attempts] == ["permanent"]
    assert record.attempts[0].exit_code == 137
    assert "allocating" in (record.error or "")
    assert "survived" not in (record.error or "")


def test_containers_are_hardened_by_default(
    store: RedisJobRecords, settings: Settings, engine: DockerClient
) -> None:
    runtime = make_runtime(settings)  # the worker's runtime, with the default limits
    probe = python(
        "import os, time; print('uid', os.getuid(), flush=True); "
        "print('caps', open('/proc/self/status').read().split('CapEff:')[1].split()[0], "
        "flush=True); time.sleep(2)"
    )
    job_spec = queued(store, "dk-hardened", command=probe, max_retries=0)
    thread = threading.Thread(
        target=runner(store, runtime, settings).run, args=("dk-hardened", job_spec)
    )
    thread.start()
    ids = wait_until(lambda: trainq_containers("dk-hardened"), 60, "the job's container")
    attrs = engine.containers.get(ids[0]).attrs  # type: ignore[index]
    thread.join(60)

    assert attrs["Config"]["User"] == "1000:1000"
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "bridge"
    assert host["PidsLimit"] == settings.container_pids_limit
    assert host["Memory"] == parse_size(settings.container_memory)
    assert host["NanoCpus"] == int(settings.container_cpus * 1e9)
    assert all("docker.sock" not in m["Source"] for m in attrs["Mounts"])
    output = Path(store.get("dk-hardened").log_path or "").read_text()
    assert '"uid 1000"' in output  # the job's process is not root
    assert '"caps 0000000000000000"' in output  # and holds no capability


def test_an_image_off_the_allow_list_is_refused_before_any_container(
    store: RedisJobRecords, settings: Settings, docker_engine: str
) -> None:
    strict = settings.model_copy(update={"allowed_images": ""})
    runtime = make_runtime(strict)
    engine_image = "trainq-base:bookworm"  # on this host, but not allowed
    job_spec = queued(store, "dk-denied", image=engine_image, max_retries=3)

    with pytest.raises(JobFailed, match="allow-list"):
        runner(store, runtime, strict).run("dk-denied", job_spec)

    record = store.get("dk-denied")
    assert [a.failure_class for a in record.attempts] == ["permanent"]
    assert trainq_containers("dk-denied") == []


def test_the_standard_image_runs_train_py_without_a_numpy_warning(
    store: RedisJobRecords, settings: Settings
) -> None:
    """torch warns "Failed to initialize NumPy" on every start in an image without it."""
    logs = MemoryLogStream()
    job_spec = queued(store, "dk-standard", epochs=1)
    run = Runner(
        store, coordination(store), make_runtime(settings), settings, "docker-test@host",
        sleep=lambda _: None, logs=logs,
    )  # fmt: skip

    result = run.run("dk-standard", job_spec)

    lines = [line.line for line in logs.read("dk-standard")]
    assert result["final_loss"] is not None and lines
    assert not [line for line in lines if "NumPy" in line or "numpy" in line], lines
