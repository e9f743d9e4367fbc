"""Why each pending job waits, and each owner's share: trainq.scheduler.view on
hand-built snapshots (the helpers are test_scheduler_decide's)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.test_scheduler_decide import GPU, held, job, snap, usage, worker
from trainq.scheduler.policy import OwnerPolicy
from trainq.scheduler.snapshot import OwnerState, Rules, Snapshot
from trainq.scheduler.view import YIELD_REASON, describe, ordinal, shares


def reasons(snapshot: Snapshot) -> list[tuple[int, str, str]]:
    return [(e.position, e.job_id, e.reason) for e in describe(snapshot, snapshot.heads, Rules())]


def test_describe_lists_pending_jobs_in_admission_order_with_their_place_per_queue() -> None:
    pending = [
        job("a", "alice", at=1.0),
        job("b", "bob", at=2.0),
        job("c", "bob", at=3.0),
        job("g", "bob", at=0.5, queue=GPU),
        job("hi", "bob", at=9.0, priority="high"),
    ]
    workers = [worker("w0"), worker("w1"), worker("g", GPU)]
    snapshot = snap(workers, pending, [held("r", "w0")], usage(alice=1000.0))
    assert reasons(snapshot) == [
        (1, "hi", "1st for cpu: a worker is free, being admitted"),
        (2, "g", "1st for gpus.1: a worker is free, being admitted"),
        (3, "b", "2nd for cpu (1 of 2 workers busy)"),
        (4, "c", "3rd for cpu (1 of 2 workers busy)"),
        (5, "a", "4th for cpu (1 of 2 workers busy)"),
    ]
    busy = snap([worker("w0")], pending[:2], [held("r", "w0")])
    assert [r for _, _, r in reasons(busy)] == [
        "1st for cpu (1 of 1 workers busy)",
        "2nd for cpu (1 of 1 workers busy)",
    ]


def test_describe_says_who_no_worker_serves_who_is_at_quota_and_who_waits_for_a_yield() -> None:
    owners = {"alice": OwnerState(OwnerPolicy(gpus=1)), "bob": OwnerState(OwnerPolicy(jobs=2))}
    holders = [
        held("ag", "g", owner="alice", queue=GPU, gpus=1),
        held("b1", "w"),
        held("b2", "w"),
        held("low", "g", owner="dave", queue=GPU, gpus=1, yielding_to="urgent"),
    ]
    pending = [
        job("nowhere", "carol", at=1.0, queue="gpu.7@h"),
        job("ag2", "alice", at=2.0, queue=GPU),
        job("b3", "bob", at=3.0),
        job("urgent", "carol", at=4.0, queue=GPU),
        job("next", "carol", at=5.0),
        replace(job("big", "erin", at=6.0, queue="gpus.2"), gpus=2),
    ]
    owners["erin"] = OwnerState(OwnerPolicy(gpus=1))
    workers = [worker("g", GPU, "gpus.2", concurrency=2), worker("w", concurrency=3)]
    snapshot = snap(workers, pending, holders, owners)
    assert {job_id: reason for _, job_id, reason in reasons(snapshot)} == {
        "nowhere": "no live worker serves queue gpu.7@h",
        "ag2": "alice is at their GPU quota 1/1",
        "b3": "bob is at their running-jobs quota 2/2",
        "urgent": YIELD_REASON,
        "next": "1st for cpu: a worker is free, being admitted",  # the others take no place
        "big": "needs 2 GPUs, more than erin's GPU quota of 1",
    }


def test_shares_report_usage_standing_and_holdings_per_owner() -> None:
    holders = [held("r", "w", owner="bob", ran_s=3600.0, gpus=2, queue=GPU)]
    owners = {"alice": OwnerState(OwnerPolicy(weight=2.0), usage_s=7200.0)}
    found = shares(snap([worker("w", GPU)], [job("a")], holders, owners), Rules())
    assert [
        (s.owner, s.usage_gpu_hours, s.standing, s.running_jobs, s.running_gpus) for s in found
    ] == [("alice", 2.0, 3600.0, 0, 0), ("bob", 2.0, 7200.0, 1, 2)]
    assert found[0].policy.weight == 2.0


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (111, "111th"),
    ],
)
def test_ordinal(n: int, text: str) -> None:
    assert ordinal(n) == text
