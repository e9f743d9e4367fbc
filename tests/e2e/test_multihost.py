"""A cluster of simulated hosts that share nothing but Redis and an S3-compatible store.

Each host (tests/hosts.py) is a worker with its own folders, hostname and PID
namespace; the test process, with neither host's files, plays a third host. A job
whose host dies mid-training resumes on another from the checkpoint in the store;
its model, outputs and logs are then read from anywhere. Datasets are mounted
read-only by name; a worker that cannot reach the store takes no job until it can.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests import s3server
from tests.harness import BIN, PREFIX, REDIS_URL, REPO, free_port, wait_until
from tests.hosts import Host, StartHost, elsewhere, hosts, namespaces_problem
from tests.s3server import S3Server
from trainq import connections
from trainq.artifacts.logs import archived_lines
from trainq.artifacts.manifest import read_manifest
from trainq.artifacts.store import ArtifactStore
from trainq.cluster.registry import WorkerInfo
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus
from trainq.logs.format import decode
from trainq.store.keys import Keys
from trainq.store.paging import every_job
from trainq.testing import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

BUCKET = f"trainq-multihost-{os.getpid()}"
TOKEN = "multihost-test-token"
EPOCHS = 6
EPOCH_SLEEP_S = 2.0  # time to act between two epochs of the job whose host dies
# Log lines: (attempt, text) in the order `trainq logs` prints them.
Lines = list[tuple[int, str]]


@dataclass(frozen=True)
class Store:
    """The cluster's artifact store: the settings every process of it gets, and a
    client to look into it."""

    url: str
    env: dict[str, str]
    client: ArtifactStore


@dataclass(frozen=True)
class TakenOver:
    """The job whose host died, once it succeeded on the other host."""

    job_id: str
    killed_at_epoch: int
    killed_pids: list[int]
    job_pids: list[int]  # the job's processes on the dead host, just before it died
    record: JobRecord
    lines: Lines  # `trainq logs --json` before any trimming
    first: Host
    second: Host


def store_env(url: str, endpoint_url: str) -> dict[str, str]:
    """The settings of an S3 artifact store, for every process of a cluster."""
    return {**s3server.store_env(url, endpoint_url), "TRAINQ_ARTIFACT_SYNC_INTERVAL_S": "0.2"}


@pytest.fixture(scope="module")
def namespaces() -> None:
    """Fails every test of the module, saying why, where hosts cannot be simulated."""
    problem = namespaces_problem()
    if problem is not None:
        pytest.fail(f"simulated hosts need Linux namespaces: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def store(s3_server: S3Server) -> Store:
    s3_server.make_bucket(BUCKET)
    url = f"s3://{BUCKET}/cluster"
    env = store_env(url, s3_server.endpoint_url)
    settings = Settings(**s3server.store_settings(url, s3_server.endpoint_url))
    return Store(url, env, ArtifactStore.from_settings(settings))


@pytest.fixture(scope="module")
def hosts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every host's folder lies; hidden from the commands run elsewhere."""
    return tmp_path_factory.mktemp("hosts")


@pytest.fixture(scope="module")
def client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The third host's working directory (the test process's commands run there)."""
    return tmp_path_factory.mktemp("client")


@pytest.fixture(scope="module")
def api(store: Store, client_dir: Path, redis_server: str) -> Iterator[ApiServer]:
    env = {**store.env, "TRAINQ_API_TOKENS": TOKEN}
    server = ApiServer(client_dir / "api.log", env, cwd=client_dir).start()
    yield server
    server.stop()


@pytest.fixture
def start_host(
    namespaces: None,
    redis_server: str,
    store: Store,
    hosts_root: Path,
    request: pytest.FixtureRequest,
) -> Iterator[StartHost]:
    """Start hosts for one test (named after it); all are stopped at its end."""
    with hosts(hosts_root / request.node.name, store.env) as start:
        yield start


def trainq(
    *args: str, env: dict[str, str], cwd: Path, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``trainq ...`` from the test process (none of the hosts' folders are its own),
    with ``env`` over its environment."""
    return subprocess.run(
        [str(BIN / "trainq"), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
        env={**os.environ, **env},
        check=False,
    )


def slow_train(seconds_per_epoch: float) -> list[str]:
    """The standard train.py, as the process runtime runs it, on little data."""
    return [sys.executable, str(REPO / "train.py"), "--samples", "256",
            "--epoch-sleep-s", str(seconds_per_epoch)]  # fmt: skip


def record(job_id: str) -> JobRecord:
    return connections.records().get(job_id)


def progress_epoch(text: str) -> int | None:
    """The epoch of a progress line of train.py, or None for any other line."""
    if not text.startswith("{"):
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("trainq") != "progress":
        return None
    return int(message["epoch"])


def job_lines(texts: Iterator[str] | list[str]) -> Lines:
    """The job's own lines (not trainq's markers) of JSON log lines, in order."""
    found: Lines = []
    for text in texts:
        entry = decode(text)
        if entry is not None and entry.event is None:
            found.append((entry.attempt, entry.msg))
    return found


def of_attempt(lines: Lines, attempt: int) -> list[str]:
    return [text for number, text in lines if number == attempt]


def processes_of(job_id: str) -> list[int]:
    """Every process on this machine whose environment names the job."""
    marker = f"TRAINQ_JOB_ID={job_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                environ = Path(f"/proc/{name}/environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                found.append(int(name))
    return found


def registered(name: str) -> WorkerInfo:
    """The worker ``name`` as the live-worker registry has it."""
    (info,) = [w for w in connections.live_workers() if w.name == name]
    return info


def holds_for(condition: Callable[[], bool], seconds: float, interval_s: float = 0.2) -> bool:
    """Whether ``condition`` is true at every look for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(interval_s)
    return condition()


def http(url: str, token: str | None = TOKEN) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (names in lower case) and body of a GET."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers.items()), exc.read()


def _lower(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


@pytest.fixture(scope="module")
def taken_over(
    namespaces: None, redis_server: str, store: Store, hosts_root: Path, client_dir: Path
) -> TakenOver:
    """A 6-epoch job on host A, whose host dies after epoch 2 (or later) was published;
    host B takes it over. Both hosts are stopped once it succeeded (their files stay)."""
    with hosts(hosts_root / "takeover", store.env) as start:
        first = start("host-a")
        submitted = trainq(
            "submit", "--epochs", str(EPOCHS), "--name", "multihost", "--json", "--",
            *slow_train(EPOCH_SLEEP_S), env=store.env, cwd=client_dir,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = str(json.loads(submitted.stdout)["id"])

        def runs_on_first() -> bool:
            r = record(job_id)
            return r.status == JobStatus.RUNNING and r.attempts[-1].host == first.name

        wait_until(runs_on_first, 60, f"the job to run on {first.name}")
        second = start("host-b")  # before the first dies, so that it takes over

        def published_here() -> int | None:
            """The epoch the job reached, once its checkpoint and its log so far are in
            the store: killed now, it loses nothing the store could have kept."""
            r = record(job_id)
            epoch = r.progress.epoch or 0
            if r.status != JobStatus.RUNNING or epoch < 2:
                return None
            manifest = read_manifest(store.client, job_id)
            if manifest is None or manifest.epoch != epoch:
                return None
            archived = archived_lines(store.client, job_id, 1)
            epochs = [progress_epoch(t) for t in of_attempt(job_lines(archived or []), 1)]
            return epoch if epoch in epochs else None

        wait_until(published_here, 60, "epoch >= 2 published to the store")
        job_pids = processes_of(job_id)
        killed_pids = first.kill()
        # The last epoch the dead host published: its sync may have published one more
        # since the look above (on a loaded machine a look can come late). The other
        # host's first publish is an epoch (2 s) after its launch, well after this.
        at_kill = read_manifest(store.client, job_id)
        epoch = at_kill.epoch if at_kill is not None and at_kill.epoch is not None else 0
        assert at_kill is not None and at_kill.host == first.name, at_kill

        def ended() -> JobRecord | None:
            r = record(job_id)
            return r if r.status.is_terminal else None

        finished = wait_until(ended, 90, "the job to end")
        assert finished is not None
        logs = elsewhere(["logs", job_id, "--json"], hosts_root, {**os.environ, **store.env},
                         client_dir)  # fmt: skip
        assert logs.returncode == 0, logs.stderr
    return TakenOver(
        job_id=job_id,
        killed_at_epoch=epoch,
        killed_pids=killed_pids,
        job_pids=job_pids,
        record=finished,
        lines=job_lines(logs.stdout.splitlines()),
        first=first,
        second=second,
    )


def test_a_job_whose_host_dies_resumes_on_another_host_from_the_store(
    taken_over: TakenOver,
) -> None:
    t = taken_over
    # A host's death: the job's own processes (in sessions of their own) died with it.
    assert t.job_pids, "the job ran no process on the first host"
    assert set(t.job_pids) <= set(t.killed_pids)
    r = t.record
    assert r.status == JobStatus.SUCCEEDED, r.error
    assert [a.host for a in r.attempts] == [t.first.name, t.second.name]
    assert r.attempts[1].restored_epoch is not None and r.attempts[1].restored_epoch >= 2
    assert r.attempts[1].restored_epoch == t.killed_at_epoch
    restored = r.attempts[1].restored_epoch
    assert r.progress.epoch == EPOCHS
    # What train.py printed: the first attempt trained up to the published epoch, the
    # second resumed from it on the other host rather than starting at epoch 1.
    first, second = of_attempt(t.lines, 1), of_attempt(t.lines, 2)
    assert [e for e in map(progress_epoch, first) if e] == list(range(1, restored + 1))
    assert f"resuming from epoch {restored}" in second
    assert [e for e in map(progress_epoch, second) if e] == list(range(restored + 1, EPOCHS + 1))
    # The second host restored the checkpoint into its own folder; the first one's is
    # where it died.
    assert (t.second.checkpoint_dir / t.job_id / "checkpoint.pt").is_file()


def test_the_model_is_fetched_from_anywhere(
    taken_over: TakenOver,
    store: Store,
    hosts_root: Path,
    client_dir: Path,
    api: ApiServer,
    tmp_path: Path,
) -> None:
    job_id = taken_over.job_id
    artifacts = {a.path: a for a in record(job_id).artifacts}
    assert "outputs/model.pt" in artifacts, sorted(artifacts)
    model = artifacts["outputs/model.pt"]
    assert model.attempt == 2
    env = {**os.environ, **store.env}

    listed = elsewhere(["artifacts", job_id], hosts_root, env, client_dir)
    assert listed.returncode == 0, listed.stderr
    assert "outputs/model.pt" in listed.stdout
    assert model.sha256 in listed.stdout

    into = tmp_path / "fetched"
    fetched = elsewhere(["artifacts", job_id, "--download", str(into), "--path", "outputs/*"],
                        hosts_root, env, client_dir)  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    got = into / "outputs" / "model.pt"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == model.sha256
    assert {p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file()} == {
        path for path in artifacts if path.startswith("outputs/")
    }

    base = f"{api.url}/train/{job_id}/artifacts"
    code, _, body = http(base)
    assert code == 200, body
    assert "outputs/model.pt" in [a["path"] for a in json.loads(body)["artifacts"]]
    code, headers, body = http(f"{base}/outputs/model.pt")
    assert code == 200, body
    assert body == got.read_bytes()
    assert headers.get("x-trainq-sha256") == model.sha256
    # A path with "..": percent-encoded, the route receives "../x"; also in plain.
    for escape in ("%2e%2e%2fx", "%2E%2E/x", "outputs/%2e%2e/%2e%2e/x", "../x"):
        code, _, body = http(f"{base}/{escape}")
        assert code == 400, (escape, code, body)
        assert b"'..'" in body, body  # the route's refusal, not the server's
    code, _, body = http(f"{base}/outputs/no-such-file.pt")
    assert code == 404, body
    assert http(f"{base}/outputs/model.pt", token=None)[0] == 401


def test_logs_come_back_whole_after_the_stream_is_trimmed(
    taken_over: TakenOver, store: Store, hosts_root: Path, client_dir: Path
) -> None:
    t = taken_over
    # The truth: what `trainq logs` read from the untrimmed stream is what each host's
    # own log file holds of the attempt it ran.
    assert t.lines == [*[(1, x) for x in _file_lines(t.first, t.job_id, 1)],
                       *[(2, x) for x in _file_lines(t.second, t.job_id, 2)]]  # fmt: skip
    assert of_attempt(t.lines, 1) and of_attempt(t.lines, 2)
    env = {**os.environ, **store.env}
    client = redis.Redis.from_url(REDIS_URL)
    stream = Keys(PREFIX).log(t.job_id)
    assert client.xlen(stream) > 1
    try:
        # Trimmed as the cap trims (the oldest lines gone), then emptied.
        for keep in (1, 0):
            client.xtrim(stream, maxlen=keep, approximate=False)
            assert client.xlen(stream) == keep

            as_json = elsewhere(["logs", t.job_id, "--json"], hosts_root, env, client_dir)
            assert as_json.returncode == 0, as_json.stderr
            assert job_lines(as_json.stdout.splitlines()) == t.lines, f"kept {keep} entries"

            plain = elsewhere(["logs", t.job_id], hosts_root, env, client_dir)
            assert plain.returncode == 0, plain.stderr
            assert plain.stdout.splitlines() == [text for _, text in t.lines]
            assert "archive" in plain.stderr, plain.stderr
    finally:
        client.close()


def _file_lines(host: Host, job_id: str, attempt: int) -> list[str]:
    return of_attempt(job_lines(host.job_log(job_id).read_text().splitlines()), attempt)


# A job that reads its dataset and tries to write into it.
DATASET_SCRIPT = """
import os, pathlib
root = pathlib.Path(os.environ["TRAINQ_DATASET_DEMO"])
print("dataset at", root)
print("read:", (root / "hello.txt").read_text().strip())
try:
    (root / "written.txt").write_text("x")
except OSError as exc:
    print("write refused:", exc)
else:
    print("write succeeded")
"""


def test_a_dataset_is_mounted_read_only_and_an_unknown_one_is_refused(
    start_host: StartHost, store: Store, client_dir: Path, tmp_path: Path, docker_engine: str
) -> None:
    dataset = tmp_path / "demo"
    dataset.mkdir()
    (dataset / "hello.txt").write_text("hello from the host\n")
    dataset.chmod(0o755)  # the container's user (not root) reads it
    (dataset / "hello.txt").chmod(0o644)
    declared = {"TRAINQ_DATASETS": f"demo={dataset}"}
    start_host("host-data", {**declared, "TRAINQ_RUNTIME": "docker"})

    cluster = {**store.env, **declared}  # the submitter checks the names against it
    ran = trainq("submit", "--dataset", "demo", "--wait", "--json", "--",
                 "python3", "-c", DATASET_SCRIPT, env=cluster, cwd=client_dir)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    job_id = str(json.loads(ran.stdout)["id"])
    assert record(job_id).status == JobStatus.SUCCEEDED
    logs = trainq("logs", job_id, env=store.env, cwd=client_dir)
    assert logs.returncode == 0, logs.stderr
    assert "dataset at /data/demo" in logs.stdout
    assert "read: hello from the host" in logs.stdout
    assert "write refused: [Errno 30] Read-only file system" in logs.stdout
    assert "write succeeded" not in logs.stdout
    assert sorted(p.name for p in dataset.iterdir()) == ["hello.txt"]

    before = {r.id for r in every_job(connections.records())}
    refused = trainq("submit", "--dataset", "nope", "--json", "--", "python3", "-c", "pass",
                     env=cluster, cwd=client_dir)  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "datasets" in refused.stderr and "nope" in refused.stderr
    assert {r.id for r in every_job(connections.records())} == before


def test_a_worker_without_its_store_takes_no_job_until_the_store_answers(
    start_host: StartHost, client_dir: Path, api: ApiServer
) -> None:
    port = free_port()  # nothing listens there yet
    endpoint = f"http://127.0.0.1:{port}"
    url = f"s3://{BUCKET}-late/cluster"
    env = {**store_env(url, endpoint), "TRAINQ_WORKER_TTL_S": "3"}
    host = start_host("host-late", env)

    assert url in host.output()
    assert registered(host.worker.name).queues == ()
    code, _, body = http(f"{api.url}/health", token=None)
    health = json.loads(body)
    assert code == 503, health
    assert host.worker.name in health["checks"]["artifact_store"]
    assert url in health["checks"]["artifact_store"]

    submitted = trainq("submit", "--epochs", "2", "--json", "--", *slow_train(0), env=env,
                       cwd=client_dir)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = str(json.loads(submitted.stdout)["id"])
    # Several probes of the store (every second) pass: the job waits, neither taken,
    # lost nor failed.
    assert holds_for(lambda: record(job_id).status == JobStatus.QUEUED, 3.5)

    server = S3Server(port=port)
    server.start()
    try:
        server.make_bucket(f"{BUCKET}-late")
        answered_at = time.monotonic()
        wait_until(lambda: registered(host.worker.name).queues, 10, "the worker to join its queues")
        assert registered(host.worker.name).store_error is None
        assert time.monotonic() - answered_at < 5  # a probe every second
        wait_until(lambda: record(job_id).status.is_terminal, 60, "the job to run and end")
        assert record(job_id).status == JobStatus.SUCCEEDED, record(job_id).error
        assert [a.host for a in record(job_id).attempts] == [host.name]
        code, _, body = http(f"{api.url}/health", token=None)
        assert json.loads(body)["checks"]["artifact_store"] == "ok", body
    finally:
        server.stop()
