"""Redis Sentinel failover under load: a primary, one replica and three sentinels on
local ports; real prefork workers (docker runtime) and the API.

The primary is SIGKILLed while 20 jobs are running or pending and a client submits in
a tight loop. Every job ends succeeded in one container, every accepted submit is a job
that runs, no refused one exists, the old primary returns as a replica, and the time
from the kill to the first job admitted afterwards is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
import redis

from tests.harness import BIN, PREFIX, REPO, Worker, wait_until
from trainq.connections import RIDE_OUT, Target, redis_client
from trainq.jobs.status import JobStatus
from trainq.store.keys import Keys
from trainq.store.redis import RedisJobRecords
from trainq.testing import ApiServer, SentinelCluster, settings_of

pytestmark = pytest.mark.faults

TOKEN = "failover-token"
CLUSTER = f"ha-{PREFIX}"
# A job that runs about 6 s, printing as it goes (no torch: 20 of them fit 2 cores).
SLOW = ["python3", "-c", "import time\nfor i in range(6): print(i, flush=True); time.sleep(1)"]
QUICK = ["python3", "-c", "print('ok')"]
RECOVERY_GOAL_S = 30.0


@dataclass
class Submitted:
    name: str
    status: int | None  # None: no HTTP answer
    job_id: str | None
    elapsed_s: float


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelCluster]:
    cluster = SentinelCluster(tmp_path / "ha").start()
    yield cluster
    cluster.stop()


def container_creations(stop: threading.Event, found: list[str]) -> threading.Thread:
    """Follows Docker's events: the job id of every container created for CLUSTER."""
    events = subprocess.Popen(
        ["docker", "events", "--format", "{{json .}}", "--filter", "type=container",
         "--filter", "event=create", "--filter", f"label=trainq.cluster={CLUSTER}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def follow() -> None:
        assert events.stdout is not None
        for line in events.stdout:
            found.append(json.loads(line)["Actor"]["Attributes"]["trainq.job_id"])

    def watch() -> None:
        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        stop.wait()
        time.sleep(1)  # events of the last moments
        events.terminate()
        events.wait(10)
        reader.join(10)
        assert events.stdout is not None
        events.stdout.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def submit_loop(api: str, stop: threading.Event, out: list[Submitted]) -> None:
    """POST /train as fast as answers come, each job named, until ``stop``."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=api, headers=headers, timeout=30) as http:
        n = 0
        while not stop.is_set():
            name = f"loop-{n}"
            n += 1
            started = time.monotonic()
            try:
                answer = http.post("/train", json={"name": name, "command": QUICK})
            except httpx.HTTPError:
                out.append(Submitted(name, None, None, time.monotonic() - started))
                continue
            job_id = answer.json().get("id") if answer.status_code == 202 else None
            out.append(Submitted(name, answer.status_code, job_id, time.monotonic() - started))
            if answer.status_code != 202:
                time.sleep(0.05)


def count_up(
    client: redis.Redis, stop: threading.Event, acked: list[int], errors: list[str]
) -> None:
    """An asynchronous writer, as progress and log lines are: INCR, each answer kept."""
    while not stop.is_set():
        try:
            acked.append(int(client.incr(f"{CLUSTER}failover-counter")))
        except redis.RedisError as exc:  # a client that rides out a failover never fails
            errors.append(f"{time.time():.3f} {exc!r}")


def lost_writes(acked: list[int]) -> int:
    """How many acknowledged increments a failover took back (the counter went down)."""
    return sum(before - after + 1 for before, after in pairwise(acked) if after <= before)


@pytest.mark.timeout(300)  # about a minute alone; more beside the rest of make test
def test_every_accepted_job_survives_a_primary_killed_mid_run(
    sentinels: SentinelCluster, docker_engine: str, tmp_path: Path
) -> None:
    env = {**sentinels.env(), "TRAINQ_KEY_PREFIX": CLUSTER, "TRAINQ_RUNTIME": "docker",
           "TRAINQ_API_TOKENS": TOKEN, "TRAINQ_API_RATE_PER_S": "0",
           "TRAINQ_LEASE_TTL_S": "2"}  # fmt: skip
    settings = settings_of(env)
    store = RedisJobRecords(redis_client(Target.of(settings), RIDE_OUT), Keys(CLUSTER))
    creations: list[str] = []
    stop_events = threading.Event()
    watcher = container_creations(stop_events, creations)
    workers = [
        Worker(f"ha{n}@testhost", tmp_path / f"worker{n}.log", env, args=["--concurrency", "4"])
        for n in (1, 2)
    ]
    api = ApiServer(tmp_path / "api.log", env, cwd=REPO)
    try:
        for worker in workers:
            worker.start()
        api.start()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=api.url, headers=headers, timeout=30) as http:
            ids = [
                http.post("/train", json={"name": f"long-{n}", "command": SLOW}).json()["id"]
                for n in range(20)
            ]

        def running() -> int:
            return sum(store.get(i).status == JobStatus.RUNNING for i in ids)

        wait_until(lambda: running() >= 6, 120, "six of the 20 jobs to run")

        loop: list[Submitted] = []
        stop_loop = threading.Event()
        submitter = threading.Thread(target=submit_loop, args=(api.url, stop_loop, loop))
        submitter.start()
        wait_until(lambda: sum(s.status == 202 for s in loop) >= 5, 30, "the loop to submit")

        counted: list[int] = []
        count_errors: list[str] = []
        counter = threading.Thread(
            target=count_up, args=(store.client, stop_loop, counted, count_errors)
        )
        counter.start()
        old = sentinels.primary()
        assert old is not None
        killed_at, killed_wall = time.monotonic(), time.time()
        old.kill()
        new = sentinels.wait_for_failover(old)
        failover_s = time.monotonic() - killed_at
        old.start()  # as its host's supervisor would: it comes back as a replica
        sentinels.wait_until_replica(old)

        def first_admitted_after_kill() -> float:
            stamps = [store.get(i).admitted_at or 0 for i in ids]
            return min((s for s in stamps if s > killed_wall), default=0.0)

        first = wait_until(first_admitted_after_kill, 60, "a job admitted after the kill")
        recovery_s = first - killed_wall
        wait_until(lambda: sum(s.status == 202 for s in loop[-20:]) >= 5, 60,
                   "submits to succeed again")  # fmt: skip
        stop_loop.set()
        submitter.join(60)
        counter.join(60)

        accepted = [s for s in loop if s.status == 202]
        refused = [s for s in loop if s.status != 202]
        figures = (
            f"failover {failover_s:.1f} s, recovery (kill -> first admission) "
            f"{recovery_s:.1f} s, {len(accepted)} submits accepted, {len(refused)} refused; "
            f"asynchronous writes acknowledged then lost: {lost_writes(counted)} of "
            f"{len(counted)}"
        )
        print(figures)
        assert not count_errors, (killed_wall, count_errors[:3])
        every = ids + [s.job_id for s in accepted if s.job_id]
        wait_until(lambda: all(store.get(i).status.is_terminal for i in every), 240,
                   "every accepted job to end")  # fmt: skip
        for job_id in every:
            job = store.get(job_id)
            assert job.status == JobStatus.SUCCEEDED, (job_id, job.status, job.error)
        # Refused submits were taken back, with a 503 that says why, within seconds.
        names = {r.spec.name for r in store.list(limit=1000).records}
        assert not [s.name for s in refused if s.name in names]
        assert {s.name for s in accepted} <= names
        assert all(s.status == 503 for s in refused), {s.status for s in refused}
        assert max(s.elapsed_s for s in loop) < 20
        # One container per job, ever; the workers rode it out by themselves.
        stop_events.set()
        watcher.join(30)
        assert sorted(creations) == sorted(set(creations))
        assert set(creations) == set(every)
        assert all(w.proc is not None and w.proc.poll() is None for w in workers)
        assert sentinels.primary() is new
        assert recovery_s <= RECOVERY_GOAL_S, figures
    finally:
        stop_events.set()
        api.stop()
        for worker in workers:
            worker.stop()


def trainq_list(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "trainq"), "list"], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **env}, timeout=60)  # fmt: skip


def test_callers_say_what_is_down_while_no_primary_answers_and_everyone_recovers(
    sentinels: SentinelCluster, tmp_path: Path
) -> None:
    """No primary at all for a while: the API and the CLI say so within seconds; the
    API, and a worker with a job running and a slot free (Celery 5.7 shut such a worker
    down: trainq.worker.consumer), carry on by themselves once the primary is back."""
    env = {**sentinels.env(), "TRAINQ_KEY_PREFIX": CLUSTER, "TRAINQ_API_TOKENS": TOKEN}
    worker = Worker("calm@testhost", tmp_path / "worker.log", env, args=["--concurrency", "2"])
    api = ApiServer(tmp_path / "api.log", env, cwd=REPO)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        worker.start()
        api.start()
        with httpx.Client(base_url=api.url, headers=headers, timeout=30) as http:
            job_id = http.post("/train", json={"command": SLOW}).json()["id"]

            def status() -> str:
                return str(http.get(f"/train/{job_id}").json()["status"])

            wait_until(lambda: status() == "running", 60, "the job to run")
            for server in sentinels.servers:  # primary and replica: nothing to promote
                server.kill()

            started = time.monotonic()
            listed = http.get("/train")
            health = http.get("/health")
            cli = trainq_list(env)
            assert time.monotonic() - started < 15

            assert listed.status_code == 503, listed.text
            assert "no primary answers for the primary of 'trainq'" in listed.json()["detail"]
            assert health.status_code == 503
            assert cli.returncode == 3, cli.stderr
            assert "sentinels 127.0.0.1:" in cli.stderr and "failover" in cli.stderr

            primary = sentinels.servers[0].start()  # the primary's host is back
            wait_until(lambda: http.get("/train").status_code == 200, 30, "the API to recover")
            assert trainq_list(env).returncode == 0
            wait_until(lambda: status() == "succeeded", 60, "the job to succeed")
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        # Its message was acknowledged on the new connection: nothing left to redeliver.
        unacked = redis.Redis(port=primary.port).hlen(f"{CLUSTER}unacked")
        wait_until(lambda: redis.Redis(port=primary.port).hlen(f"{CLUSTER}unacked") == 0, 30,
                   f"the job's message to be acknowledged ({unacked} unacknowledged)")  # fmt: skip
    finally:
        api.stop()
        worker.stop()


def test_a_primary_back_before_the_sentinels_demote_it_never_takes_trainqs_writes(
    sentinels: SentinelCluster,
) -> None:
    """redis-py#3874: a dropped connection went back to the address it had. The old
    primary, restarted the moment the first sentinel names the new one, is a primary
    for about 10 s: a writer that rode out the failover must write to the new one only."""
    settings = settings_of(sentinels.env())
    client = redis_client(Target.of(settings), RIDE_OUT)
    stop, counted, errors = threading.Event(), list[int](), list[str]()
    writer = threading.Thread(target=count_up, args=(client, stop, counted, errors))
    writer.start()
    try:
        wait_until(lambda: len(counted) > 100, 10, "the writer to write")
        old = sentinels.primary()
        assert old is not None
        old.kill()
        new = sentinels.wait_for_failover(old, every_sentinel=False)
        old.start()
        sentinels.wait_until_replica(old)  # demoted: about 10 s later
        before = len(counted)
        wait_until(lambda: len(counted) > before + 100, 30, "writes after the demotion")
    finally:
        stop.set()
        writer.join(90)
    assert not errors, errors[:3]
    assert lost_writes(counted) <= 50  # what replication had not sent at the kill, at most
    final = int(redis.Redis(port=new.port).get(f"{CLUSTER}failover-counter") or 0)
    assert final == counted[-1]  # the last writes went to the primary that stayed
