"""What a job container sees of the host, against the real engine: its datasets
read-only at /data/<name>, its output directory writable at /outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.harness import DOCKER_TEST_PREFIX, STORE_TEST_URL, trainq_containers
from trainq.artifacts.store import ArtifactStore
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.runtime.base import Exit, Launch
from trainq.runtime.factory import make_runtime
from trainq.store.keys import Keys
from trainq.store.redis import RedisCoordination, RedisJobRecords
from trainq.worker.runner import Runner
from trainq.worker.transfers import AttemptFiles

pytestmark = pytest.mark.integration

PROBE = """
import errno, os, pathlib
print('read', open('/data/imagenet/hello.txt').read(), flush=True)
try:
    open('/data/imagenet/new.txt', 'w')
    print('write allowed')
except OSError as exc:
    print('write refused', errno.errorcode[exc.errno])
pathlib.Path(os.environ['TRAINQ_OUTPUT_DIR'], 'out.txt').write_text('from the container')
for name in ('TRAINQ_OUTPUT_DIR', 'TRAINQ_DATA_DIR', 'TRAINQ_DATASET_IMAGENET'):
    print(f'{name}={os.environ[name]}')
"""


@pytest.fixture
def settings(tmp_path: Path, docker_engine: str) -> Settings:
    data = tmp_path / "imagenet"
    data.mkdir()
    (data / "hello.txt").write_text("hello")
    data.chmod(0o777)  # only the read-only mount can refuse a write, not the mode
    return Settings(
        redis_url=STORE_TEST_URL,
        key_prefix=DOCKER_TEST_PREFIX,
        log_dir=tmp_path / "logs",
        checkpoint_dir=tmp_path / "checkpoints",
        output_dir=tmp_path / "outputs",
        datasets=f"imagenet={data}",
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


def test_datasets_are_read_only_and_outputs_reach_the_host(
    settings: Settings, tmp_path: Path
) -> None:
    runtime = make_runtime(settings)
    launch = Launch(
        job_id="dk-mounts",
        attempt=1,
        image=settings.default_image,
        command=["python3", "-c", PROBE],
        env={},
        checkpoint_dir=tmp_path / "checkpoints" / "dk-mounts",
        worker="mounts-test@host",
        output_dir=tmp_path / "outputs" / "dk-mounts" / "1",
        datasets=settings.dataset_paths,
    )
    handle = runtime.start(launch)
    try:
        lines = list(runtime.output(handle))
        assert runtime.wait(handle, 60) == Exit(0), lines
    finally:
        runtime.remove(handle)

    assert "read hello" in lines
    assert "write refused EROFS" in lines
    assert "TRAINQ_OUTPUT_DIR=/outputs" in lines
    assert "TRAINQ_DATA_DIR=/data" in lines
    assert "TRAINQ_DATASET_IMAGENET=/data/imagenet" in lines
    assert not (tmp_path / "imagenet" / "new.txt").exists()
    assert (tmp_path / "outputs" / "dk-mounts" / "1" / "out.txt").read_text() == (
        "from the container"
    )
    assert trainq_containers("dk-mounts") == []


def test_train_py_leaves_its_model_in_the_output_dir(
    store: RedisJobRecords, settings: Settings
) -> None:
    spec = JobSpec.parse({"epochs": 1, "datasets": ["imagenet"]})
    store.create(JobRecord(id="dk-model", spec=spec))
    runner = Runner(
        store,
        RedisCoordination(store.client, store.keys),
        make_runtime(settings),
        settings,
        "mounts-test@host",
        sleep=lambda _: None,
    )

    result = runner.run("dk-model", spec)

    record = store.get("dk-model")
    assert record.status == JobStatus.SUCCEEDED, record.error
    assert result["model"] == "outputs/model.pt"
    assert (settings.output_dir.absolute() / "dk-model" / "1" / "model.pt").is_file()
    log = Path(record.log_path or "").read_text().splitlines()
    said = [json.loads(line)["msg"] for line in log]
    assert "dataset imagenet at /data/imagenet: 1 files" in said
    reported = [json.loads(msg) for msg in said if msg.startswith('{"trainq": "result"')]
    assert [r["model"] for r in reported] == ["/outputs/model.pt"]
    assert trainq_containers("dk-model") == []


def test_a_checkpoint_restored_on_a_new_host_is_resumed_and_written_by_the_container(
    store: RedisJobRecords, settings: Settings, tmp_path: Path
) -> None:
    """Host A trains one epoch; host B (its own folders, the same store) is asked for
    two: it restores A's checkpoint, and the container (uid 1000) resumes and writes
    its next checkpoint into the folder the worker (root) restored."""
    artifacts = ArtifactStore((tmp_path / "store").as_uri())

    def host(name: str) -> Settings:
        return settings.model_copy(
            update={
                "hostname": name,
                "checkpoint_dir": tmp_path / name / "checkpoints",
                "output_dir": tmp_path / name / "outputs",
                "log_dir": tmp_path / name / "logs",
            }
        )

    def run(on: Settings, job_id: str, epochs: int) -> JobRecord:
        spec = JobSpec.parse({"epochs": epochs})
        coordination = RedisCoordination(store.client, store.keys)
        files = AttemptFiles(artifacts, on)
        runner = Runner(store, coordination, make_runtime(on), on, f"w@{on.hostname}",
                        sleep=lambda _: None, files=files)  # fmt: skip
        runner.run(job_id, spec)
        return store.get(job_id)

    store.create(JobRecord(id="dk-a", spec=JobSpec.parse({"epochs": 1})))
    first = run(host("a"), "dk-a", 1)
    assert first.status == JobStatus.SUCCEEDED, first.error
    # The same checkpoints under the second job's id: B starts where A stopped.
    for key, _size in artifacts.list("jobs/dk-a"):
        if key.startswith("jobs/dk-a/checkpoints"):
            artifacts.put_bytes(key.replace("dk-a", "dk-b", 1), artifacts.read_bytes(key))
    store.create(JobRecord(id="dk-b", spec=JobSpec.parse({"epochs": 2})))

    second = run(host("b"), "dk-b", 2)

    assert second.status == JobStatus.SUCCEEDED, second.error
    assert second.attempts[0].restored_epoch == 1
    lines = Path(second.log_path or "").read_text().splitlines()
    said = [json.loads(line)["msg"] for line in lines]
    progress = [json.loads(m) for m in said if m.startswith('{"trainq": "progress"')]
    assert [p["epoch"] for p in progress] == [2]  # epoch 1 came from host A
    assert any("resum" in m for m in said)
    assert (tmp_path / "b" / "checkpoints" / "dk-b" / "checkpoint.pt").is_file()
