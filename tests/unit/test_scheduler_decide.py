"""The scheduler's pure core: admission order, quotas, slots and preemption, on
hand-built snapshots (trainq.scheduler.decide; the helpers serve test_scheduler_view)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from trainq.cluster.registry import WorkerInfo
from trainq.scheduler.decide import decide, free_slots
from trainq.scheduler.policy import OwnerPolicy
from trainq.scheduler.snapshot import Candidate, Holder, OwnerState, Rules, Snapshot, able
from trainq.scheduler.snapshot import standings as standings_of

NOW = 100_000.0
GPU = "gpus.1"
RULES = Rules()


def worker(name: str, *queues: str, concurrency: int = 1) -> WorkerInfo:
    served = queues or ("cpu",)
    return WorkerInfo(
        name=name, hostname="h", queues=served, runtime="process", concurrency=concurrency
    )


def job(
    job_id: str,
    owner: str = "alice",
    *,
    at: float = 1.0,
    queue: str = "cpu",
    priority: str = "normal",
    waited_s: float | None = None,
) -> Candidate:
    """A pending job created at ``at``; pending for ``waited_s`` (None: not read)."""
    gpus = 1 if queue.startswith("gpu") else 0
    queued_at = None if waited_s is None else NOW - waited_s
    return Candidate(job_id, at, priority, queue, owner, gpus, queued_at)


def held(
    job_id: str,
    on: str | None,
    *,
    owner: str = "bob",
    priority: str = "low",
    ran_s: float | None = 1000.0,
    queue: str = "cpu",
    gpus: int = 0,
    **flags: Any,  # preemptible, preemptions, yielding_to
) -> Holder:
    """A job holding a slot of worker ``on``, running for ``ran_s`` (None: not running)."""
    started = None if ran_s is None else NOW - ran_s
    return Holder(job_id, owner, priority, queue, gpus, on, started, ran_s is not None, **flags)


def snap(
    workers: list[WorkerInfo],
    pending: list[Candidate],
    holders: Sequence[Holder] = (),
    owners: dict[str, OwnerState] | None = None,
) -> Snapshot:
    heads: dict[str, list[Candidate]] = {}
    for candidate in sorted(pending, key=lambda c: c.created_at):
        heads.setdefault(candidate.group, []).append(candidate)
    return Snapshot(NOW, workers, list(holders), heads, dict(owners or {}))


def admitted(snapshot: Snapshot, rules: Rules = RULES) -> list[str]:
    return [c.job_id for c in decide(snapshot, rules).admit]


def victims(snapshot: Snapshot, rules: Rules = RULES) -> list[tuple[str, str]]:
    return [(h.job_id, c.job_id) for h, c in decide(snapshot, rules).preempt]


def usage(**used_s: float) -> dict[str, OwnerState]:
    return {name: OwnerState(usage_s=u) for name, u in used_s.items()}


def test_priority_beats_fair_share_and_fair_share_beats_age() -> None:
    pending = [
        job("light-old", "light", at=1.0),
        job("heavy-old", "heavy", at=0.5),
        job("light-new", "light", at=3.0),
        job("heavy-high", "heavy", at=4.0, priority="high"),
        job("light-low", "light", at=0.1, priority="low"),
    ]
    owners = usage(heavy=10_000.0, light=0.0)
    order = ["heavy-high", "light-old", "light-new", "heavy-old", "light-low"]
    assert admitted(snap([worker("w", concurrency=5)], pending, owners=owners)) == order
    assert admitted(snap([worker("w", concurrency=2)], pending, owners=owners)) == order[:2]


@pytest.mark.parametrize(("alice_s", "bob_s", "first"), [(50.0, 49.0, "b"), (49.0, 50.0, "a")])
def test_the_owner_with_lower_decayed_usage_goes_first(
    alice_s: float, bob_s: float, first: str
) -> None:
    pending = [job("a", "alice", at=1.0), job("b", "bob", at=2.0)]
    assert admitted(snap([worker("w")], pending, owners=usage(alice=alice_s, bob=bob_s))) == [first]


def test_weight_divides_usage() -> None:
    pending = [job("a", "alice", at=1.0), job("b", "bob", at=2.0)]
    owners = usage(alice=300.0, bob=100.0)
    assert admitted(snap([worker("w")], pending, owners=owners)) == ["b"]
    owners["alice"].policy = OwnerPolicy(weight=4.0)
    snapshot = snap([worker("w")], pending, owners=owners)
    assert standings_of(snapshot, Rules()) == {"alice": 75.0, "bob": 100.0}
    assert admitted(snapshot) == ["a"]


def test_a_running_attempt_counts_toward_its_owners_standing() -> None:
    busy = held("alice-run", "busy", owner="alice", ran_s=500.0, gpus=2, queue="other")
    pending = [job("a", "alice", at=1.0), job("b", "bob", at=2.0)]
    snapshot = snap([worker("busy", "other"), worker("w")], pending, [busy], usage(bob=600.0))
    assert standings_of(snapshot, Rules())["alice"] == pytest.approx(1000.0)  # 500 s × 2 GPUs
    assert admitted(snapshot) == ["b"]
    cpu = replace(busy, gpus=0)  # CPU time is weighted
    snapshot = snap([worker("busy", "other"), worker("w")], pending, [cpu], usage(bob=600.0))
    assert standings_of(snapshot, Rules(cpu_weight=0.5))["alice"] == pytest.approx(250.0)
    assert admitted(snapshot, Rules(cpu_weight=0.5)) == ["a"]
    between = replace(busy, running=False, started_at=None)  # between attempts: nothing
    assert standings_of(snap([], [], [between]), Rules()).get("alice", 0.0) == 0.0


@pytest.mark.parametrize(
    ("policy", "holders", "queue"),
    [
        (OwnerPolicy(gpus=1), [held("run", "w", owner="alice", gpus=1, queue=GPU)], GPU),
        (OwnerPolicy(jobs=1), [held("run", "w", owner="alice")], "cpu"),
    ],
)
def test_a_job_over_its_owners_quota_is_skipped_for_the_next_owners(
    policy: OwnerPolicy, holders: list[Holder], queue: str
) -> None:
    workers = [worker("w", queue, concurrency=2)]
    pending = [
        job("alice-old", "alice", at=1.0, queue=queue),
        job("bob", "bob", at=2.0, queue=queue),
    ]
    owners = {"alice": OwnerState(policy), "bob": OwnerState(usage_s=1e9)}
    assert admitted(snap(workers, pending, holders, owners)) == ["bob"]
    owners["alice"] = OwnerState()
    assert admitted(snap(workers, pending, holders, owners)) == ["alice-old"]


def test_a_quota_counts_the_jobs_admitted_in_the_same_pass() -> None:
    pending = [job("a1", "alice", at=1.0), job("a2", "alice", at=2.0), job("b", "bob", at=3.0)]
    owners = {"alice": OwnerState(OwnerPolicy(jobs=1)), "bob": OwnerState(usage_s=1e9)}
    assert admitted(snap([worker("w", concurrency=3)], pending, owners=owners)) == ["a1", "b"]
    owners["alice"] = OwnerState(OwnerPolicy(gpus=0))  # a GPU quota never holds CPU jobs back
    assert admitted(snap([worker("w", concurrency=3)], pending, owners=owners)) == ["a1", "a2", "b"]


def test_a_worker_takes_only_jobs_of_the_queues_it_serves() -> None:
    pending = [job("gpu-job", at=1.0, queue="gpu.0@h"), job("cpu-job", at=2.0)]
    assert admitted(snap([worker("c", "cpu", concurrency=2)], pending)) == ["cpu-job"]
    both = [worker("c", "cpu", concurrency=2), worker("g", "gpu.0@h")]
    assert sorted(admitted(snap(both, pending))) == ["cpu-job", "gpu-job"]


def test_concurrency_admits_several_and_held_slots_are_not_free() -> None:
    pending = [job(f"j{n}", at=float(n)) for n in range(5)]
    assert admitted(snap([worker("w", concurrency=3)], pending)) == ["j0", "j1", "j2"]
    running = [held("r", "w")]
    assert admitted(snap([worker("w", concurrency=3)], pending, running)) == ["j0", "j1"]


def test_an_admitted_job_no_worker_took_yet_reserves_a_slot() -> None:
    in_flight = held("sent", None, ran_s=None)
    snapshot = snap([worker("w")], [job("j")], [in_flight])
    assert free_slots(snapshot) == {"w": 0}
    assert admitted(snapshot) == []
    elsewhere = replace(in_flight, queue="other")  # one of a queue this worker does not serve
    assert free_slots(snap([worker("w")], [], [elsewhere])) == {"w": 1}
    two = [worker("a"), worker("b")]  # it reserves one slot, not one per worker
    assert free_slots(snap(two, [], [in_flight])) == {"a": 0, "b": 1}


def test_only_workers_whose_runtime_and_store_answer_are_able() -> None:
    ok = worker("w")
    assert able(ok)
    assert not able(ok.model_copy(update={"runtime_error": "docker is down"}))
    assert not able(ok.model_copy(update={"store_error": "bucket unreachable"}))
    assert not able(ok.model_copy(update={"queues": ()}))


def preemption(
    *holders: Holder,
    waited_s: float | None = 400.0,
    priority: str = "high",
    workers: int = 1,
    owners: dict[str, OwnerState] | None = None,
) -> Snapshot:
    """``urgent`` (alice's) waits for the GPU workers w0.. that ``holders`` hold."""
    servers = [worker(f"w{n}", GPU) for n in range(workers)]
    urgent = job("urgent", "alice", queue=GPU, priority=priority, waited_s=waited_s)
    return snap(servers, [urgent], holders, owners)


def low(job_id: str = "low", on: str = "w0", **more: Any) -> Holder:
    """bob's 1-GPU job on ``on``, low priority and running 1000 s unless told."""
    return held(job_id, on, queue=GPU, gpus=1, **more)


def test_a_job_that_waited_long_enough_preempts_a_lower_priority_one() -> None:
    assert victims(preemption(low())) == [("low", "urgent")]
    assert victims(preemption(low(), waited_s=299.0)) == []
    assert victims(preemption(low(), waited_s=None)) == []
    assert victims(preemption(low(), waited_s=299.0), Rules(preempt_after_s=200.0)) != []


@pytest.mark.parametrize(
    ("victim", "priority", "chosen"),
    [
        (low(), "normal", True),
        (low(priority="normal"), "normal", False),  # equal priority never preempts
        (low(priority="high"), "high", False),
        (low(preemptible=False), "high", False),
        (low(ran_s=599.0), "high", False),  # preempt_min_run_s not reached
        (low(ran_s=600.0), "high", True),
        (low(preemptions=2), "high", True),
        (low(preemptions=3), "high", False),  # preempt_max reached
        (low(ran_s=None), "high", False),  # between attempts: nothing to stop
    ],
)
def test_which_jobs_may_yield(victim: Holder, priority: str, chosen: bool) -> None:
    assert victims(preemption(victim, priority=priority)) == (
        [(victim.job_id, "urgent")] if chosen else []
    )


def test_the_victim_is_the_lowest_priority_most_recently_started_job() -> None:
    holders = [
        low("normal-new", "w0", priority="normal", ran_s=700.0),
        low("low-old", "w1", ran_s=5000.0),
        low("low-new", "w2", ran_s=800.0),
    ]
    assert victims(preemption(*holders, workers=3)) == [("low-new", "urgent")]


def test_no_second_victim_while_one_yields_on_those_workers() -> None:
    yielding = low("yielding", "w0", yielding_to="someone")
    assert victims(preemption(yielding, low("other", "w1"), workers=2)) == []
    away = held("away", "cpu-w", yielding_to="someone")  # on a worker that is not a server
    snapshot = preemption(low(), away)
    snapshot.workers.append(worker("cpu-w"))
    assert victims(snapshot) == [("low", "urgent")]
    benefits = preemption(low("yielding", yielding_to="urgent"), low("other", "w1"), workers=2)
    assert victims(benefits) == []  # urgent already has its victim


def test_no_preemption_when_a_server_is_free_or_none_allowed_or_over_quota() -> None:
    free = preemption(low(), workers=2)
    assert (admitted(free), victims(free)) == (["urgent"], [])
    assert victims(preemption(low()), Rules(preempt_max=0)) == []
    capped = {"alice": OwnerState(OwnerPolicy(jobs=0))}
    assert victims(preemption(low(), owners=capped)) == []


def test_one_victim_at_a_time_on_a_queues_workers_and_one_per_pending_job() -> None:
    second = job("second", "carol", at=2.0, queue=GPU, priority="high", waited_s=400.0)
    snapshot = preemption(low("a", "w0"), low("b", "w1", ran_s=900.0), workers=2)
    snapshot.heads[second.group] = [second]
    assert victims(snapshot) == [("b", "urgent")]  # not one for `second` too
    elsewhere = replace(second, queue="gpu.5@h")  # other workers: asked in the same pass
    snapshot.heads[second.group] = []
    snapshot.heads[elsewhere.group] = [elsewhere]
    snapshot.workers.append(worker("w5", "gpu.5@h"))
    snapshot.holders.append(low("c", "w5"))
    assert victims(snapshot) == [("b", "urgent"), ("c", "second")]


def test_a_decision_over_ten_thousand_pending_jobs_depends_only_on_the_group_heads() -> None:
    """150 groups (3 priorities × 5 queues × 10 owners) of ~67 jobs: the decision with
    every job equals the one with each group's first few (one more than the free slots)."""
    rng = random.Random(15)
    queues = ["cpu", GPU, "gpus.2", "gpu.0@h", "gpu.1@h"]
    owners = {f"u{n}": OwnerState(usage_s=rng.uniform(0, 1e5)) for n in range(10)}
    groups = [(p, q, o) for p in ("low", "normal", "high") for q in queues for o in owners]
    pending = [
        job(f"j{n}", o, at=rng.uniform(0, 1e6), queue=q, priority=p, waited_s=400.0)
        for n in range(10_000)
        for p, q, o in [groups[n % len(groups)]]
    ]
    workers = [worker(f"w{n}", *queues[n % 5 :: 2], concurrency=2) for n in range(6)]
    holders = [low(f"r{n}", f"w{n}", priority="low") for n in range(3)]
    full = snap(workers, pending, holders, owners)
    assert len(full.heads) == 150 and sum(map(len, full.heads.values())) == 10_000
    slots = sum(free_slots(full).values())
    few = snap(
        workers, [c for jobs in full.heads.values() for c in jobs[: slots + 1]], holders, owners
    )
    decision = decide(full, Rules())
    assert len(decision.admit) == slots and decision.preempt
    assert decision == decide(few, Rules())
