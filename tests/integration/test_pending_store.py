"""The scheduler's indexes in real Redis: RedisJobRecords.create/update keep the pending
groups, the admitted set, the wake list and the owners' decayed usage with each change,
and SchedulerState.snapshot() reads them back (trainq.store.pending, trainq.scheduler.state)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from tests.harness import REDIS_URL
from trainq.cluster.registry import Registry, WorkerInfo
from trainq.config import Settings
from trainq.errors import JobNotFound, QuotaExceeded
from trainq.jobs.failures import FailureClass
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.scheduler.policy import OwnerPolicy, Policies
from trainq.scheduler.state import SchedulerState
from trainq.store.keys import Keys
from trainq.store.protocols import Mutation
from trainq.store.redis import RedisCoordination, RedisJobRecords

pytestmark = pytest.mark.integration

HALF_LIFE_S = 3600.0


@pytest.fixture
def client(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def keys(client: redis.Redis) -> Iterator[Keys]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    keys = Keys(f"pending-test-{uuid.uuid4().hex[:12]}:")
    yield keys
    for name in client.scan_iter(f"{keys.prefix}*"):
        client.delete(name)


@pytest.fixture
def store(client: redis.Redis, keys: Keys) -> RedisJobRecords:
    return RedisJobRecords(client, keys, half_life_s=HALF_LIFE_S)


def pending(job_id: str, owner: str = "alice", *, at: float = 1_000.0, **spec: Any) -> JobRecord:
    """A record as the fair scheduler's submit creates it (queue cpu unless a GPU job)."""
    parsed = JobSpec.parse(spec)
    queue = "gpus.1" if parsed.gpu_count else "cpu"
    return JobRecord(id=job_id, spec=parsed, owner=owner, queue=queue, created_at=at, queued_at=at)


def admit(record: JobRecord) -> JobRecord:
    return record.moved_to(record.status, admitted_at=time.time(), admissions=1)


def start(worker: str, gpu_ids: list[int] | None = None) -> Mutation:
    def mutate(record: JobRecord) -> JobRecord:
        number = len(record.attempts) + 1
        attempt = Attempt(
            number=number, worker=worker, gpu_ids=gpu_ids or [], started_at=time.time()
        )
        return record.moved_to(JobStatus.RUNNING, attempts=[*record.attempts, attempt])

    return mutate


def end_attempt(status: JobStatus, run_s: float, **attempt: Any) -> Mutation:
    def mutate(record: JobRecord) -> JobRecord:
        last = record.attempts[-1].model_copy(
            update={"ended_at": time.time(), "run_s": run_s, **attempt}
        )
        return record.moved_to(status, attempts=[*record.attempts[:-1], last])

    return mutate


def members(client: redis.Redis, key: str) -> dict[str, float]:
    entries = cast(list[tuple[str, float]], client.zrange(key, 0, -1, withscores=True))
    return dict(entries)


def test_a_created_pending_job_is_in_its_group_and_wakes_the_scheduler(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    assert store.create(pending("j1", at=1_000.0))
    assert store.create(pending("j2", at=999.0))
    assert members(client, keys.pending("normal:cpu:alice")) == {"j1": 1_000.0, "j2": 999.0}
    assert client.smembers(keys.pending_groups) == {"normal:cpu:alice"}
    assert client.lrange(keys.scheduler_wake, 0, -1) == ["1"]  # one element, however many
    assert members(client, keys.admitted) == {}


def test_admitting_then_running_moves_the_job_between_the_indexes(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    store.create(pending("j1"))
    client.delete(keys.scheduler_wake)
    sent = store.update("j1", admit)
    assert members(client, keys.pending("normal:cpu:alice")) == {}
    assert members(client, keys.admitted) == {"j1": pytest.approx(sent.admitted_at)}
    assert client.llen(keys.scheduler_wake) == 0  # nothing new to admit
    store.update("j1", start("w1@h"))
    assert members(client, keys.admitted) == {}
    store.update("j1", end_attempt(JobStatus.SUCCEEDED, 2.0))
    assert client.llen(keys.scheduler_wake) == 1  # its slot is free


def test_an_ended_attempt_adds_decayed_usage_to_its_owner(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    usage = keys.owner_usage("alice")
    store.create(pending("gpu", gpu=True, gpus=2, max_retries=3))
    store.update("gpu", admit)
    store.update("gpu", start("w1@h", [0, 1]))
    assert client.hgetall(usage) == {}  # nothing until an attempt ends
    before = time.time()
    store.update("gpu", end_attempt(JobStatus.RETRYING, 30.0))
    first = client.hgetall(usage)
    assert (float(first["gpu_s"]), float(first["cpu_s"])) == (60.0, 0.0)  # 30 s × 2 GPUs
    assert before <= float(first["at"]) <= time.time()
    # One half-life later (the stored time moved back), a CPU job's attempt ends.
    client.hset(usage, "at", str(float(first["at"]) - HALF_LIFE_S))
    store.create(pending("cpu"))
    store.update("cpu", admit)
    store.update("cpu", start("w2@h"))
    store.update("cpu", end_attempt(JobStatus.FAILED, 10.0))
    second = client.hgetall(usage)
    assert float(second["gpu_s"]) == pytest.approx(30.0, rel=1e-3)  # halved
    assert float(second["cpu_s"]) == pytest.approx(10.0)
    # A progress write of the retrying job adds nothing again.
    store.update("gpu", lambda r: r.moved_to(r.status))
    assert client.hget(usage, "gpu_s") == second["gpu_s"]


def test_a_preempted_job_is_pending_again_and_its_attempt_counts(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    store.create(pending("j1", at=500.0))
    store.update("j1", admit)
    store.update("j1", start("w1@h"))
    client.delete(keys.scheduler_wake)

    def preempted(record: JobRecord) -> JobRecord:
        stopped = end_attempt(JobStatus.QUEUED, 40.0, failure_class=FailureClass.PREEMPTED)
        return stopped(record).model_copy(update={"admitted_at": None, "preemptions": 1})

    store.update("j1", preempted)
    assert members(client, keys.pending("normal:cpu:alice")) == {"j1": 500.0}  # its own age
    assert client.llen(keys.scheduler_wake) == 1
    assert float(client.hget(keys.owner_usage("alice"), "cpu_s") or 0) == 40.0


def test_a_priority_change_moves_the_job_between_groups(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    store.create(pending("j1", at=700.0))
    client.delete(keys.scheduler_wake)

    def raised(record: JobRecord) -> JobRecord:
        return record.model_copy(
            update={"spec": record.spec.model_copy(update={"priority": "high"})}
        )

    store.update("j1", raised)
    assert members(client, keys.pending("normal:cpu:alice")) == {}
    assert members(client, keys.pending("high:cpu:alice")) == {"j1": 700.0}
    assert "high:cpu:alice" in client.smembers(keys.pending_groups)
    assert client.llen(keys.scheduler_wake) == 1


def test_the_owners_policy_caps_their_queued_jobs(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    Policies(client, keys).set("alice", OwnerPolicy(queued=2))
    store.create(pending("a1"), max_queued=10)  # the policy's cap wins over the default
    store.create(pending("a2"), max_queued=10)
    with pytest.raises(QuotaExceeded):
        store.create(pending("a3"), max_queued=10)
    with pytest.raises(JobNotFound):
        store.get("a3")
    assert set(members(client, keys.pending("normal:cpu:alice"))) == {"a1", "a2"}
    assert store.create(pending("b1", "bob"), max_queued=1)  # others: the default
    with pytest.raises(QuotaExceeded):
        store.create(pending("b2", "bob"), max_queued=1)


def test_a_policy_cap_refusal_names_the_policys_cap(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    Policies(client, keys).set("alice", OwnerPolicy(queued=1))
    store.create(pending("a1"))
    with pytest.raises(QuotaExceeded, match=r"already has 1 queued jobs.*alice's queued quota"):
        store.create(pending("a2"))


def worker(name: str, queues: tuple[str, ...], **problems: str) -> WorkerInfo:
    info = WorkerInfo(name=name, hostname="h", queues=queues, runtime="process", concurrency=2)
    return info.model_copy(update=problems)


def test_a_snapshot_reads_workers_holders_heads_and_owners(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    registry = Registry(client, keys, ttl_s=30.0)
    registry.beat(worker("w1@h", ("cpu",)))
    registry.beat(worker("w2@h", ("gpus.1",)))
    registry.beat(worker("sick@h", ("cpu",), runtime_error="docker is down"))
    for n in range(4):
        store.create(pending(f"p{n}", at=100.0 + n))
    store.create(pending("hi", "bob", at=50.0, priority="high"))
    store.create(pending("sent", "bob", at=60.0))
    store.update("sent", admit)
    store.create(pending("run", "bob", at=70.0, gpu=True))
    store.update("run", admit)
    store.update("run", start("w2@h", [0]))
    RedisCoordination(client, keys).request_yield("run", "hi", 60.0)
    Policies(client, keys).set("alice", OwnerPolicy(gpus=3, weight=2.0))
    a_half_life_ago = time.time() - HALF_LIFE_S
    for field, value in (("gpu_s", 100.0), ("cpu_s", 1000.0), ("at", a_half_life_ago)):
        client.hset(keys.owner_usage("alice"), field, value)
    settings = Settings(fairshare_half_life_h=HALF_LIFE_S / 3600, fairshare_cpu_weight=0.1)
    state = SchedulerState(client, keys, registry, settings)

    snapshot = state.snapshot()

    assert [w.name for w in snapshot.workers] == ["w1@h", "w2@h"]  # not the sick one
    by_id = {h.job_id: h for h in snapshot.holders}
    assert set(by_id) == {"sent", "run"}
    assert (by_id["sent"].worker, by_id["sent"].running) == (None, False)
    run = by_id["run"]
    assert (run.worker, run.running, run.gpus, run.yielding_to) == ("w2@h", True, 1, "hi")
    assert run.started_at is not None and run.started_at <= time.time()
    # Capacity 4, 2 slots held: each group's 3 oldest.
    assert {g: [c.job_id for c in jobs] for g, jobs in snapshot.heads.items()} == {
        "normal:cpu:alice": ["p0", "p1", "p2"],
        "high:cpu:bob": ["hi"],
    }
    assert snapshot.heads["high:cpu:bob"][0].queued_at == 50.0  # read: it may preempt
    assert [c.job_id for c in state.snapshot(heads_per_group=1).heads["normal:cpu:alice"]] == ["p0"]
    assert [c.job_id for c in state.pending()["normal:cpu:alice"]] == ["p0", "p1", "p2", "p3"]
    alice = snapshot.owner("alice")
    assert (alice.policy.gpus, alice.policy.weight) == (3, 2.0)
    assert alice.usage_s == pytest.approx((100.0 + 0.1 * 1000.0) / 2, rel=1e-3)
    assert snapshot.owner("bob").usage_s == 0.0


def test_a_snapshot_prunes_empty_groups(
    client: redis.Redis, keys: Keys, store: RedisJobRecords
) -> None:
    store.create(pending("j1"))
    store.create(pending("j2", "bob"))
    store.update("j1", admit)
    assert client.smembers(keys.pending_groups) == {"normal:cpu:alice", "normal:cpu:bob"}
    state = SchedulerState(client, keys, Registry(client, keys, ttl_s=30.0), Settings())

    assert list(state.snapshot().heads) == ["normal:cpu:bob"]
    assert client.smembers(keys.pending_groups) == {"normal:cpu:bob"}
    store.create(pending("j3"))  # pending again: the group is back
    assert "normal:cpu:alice" in client.smembers(keys.pending_groups)
