"""The fair scheduler with real workers (issue 15's acceptance): admission order by fair
share and priority, quotas, checkpoint-safe preemption. Faults (a lost admission
leader, a crashed admission, a lost message): tests/faults/test_admission_faults.py.

Each test runs its own cluster (tests/clusters.py), so no other module's workers or
jobs take part; the order jobs started in is each record's first attempt's start.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.clusters import PROBE, Cluster, in_start_order, owner, start_of
from tests.harness import REPO, wait_until
from trainq.client import waiting_reason
from trainq.client.scheduling import set_policy
from trainq.jobs.failures import FailureClass
from trainq.logs.format import decode
from trainq.scheduler.policy import OwnerPolicy

pytestmark = pytest.mark.integration


def test_a_second_owner_is_not_stuck_behind_the_first_owners_backlog(cluster: Cluster) -> None:
    cluster.start(0)
    alice, bob = owner("alice"), owner("bob")
    # Alice's first job holds the worker until both backlogs are in.
    alices = [cluster.submit(alice, cluster.gated)]
    alices += [cluster.submit(alice, PROBE) for _ in range(9)]
    bobs = [cluster.submit(bob, PROBE) for _ in range(10)]
    cluster.gate.touch()

    records = {r.id: r for r in cluster.succeeded(alices + bobs)}

    assert start_of(records[bobs[0]]) < start_of(records[alices[2]])
    for mine in (alices, bobs):  # each owner's own jobs keep their order
        assert in_start_order([records[i] for i in mine]) == mine


def test_a_high_priority_job_starts_next_ahead_of_older_normal_ones(cluster: Cluster) -> None:
    cluster.start(0)
    carol = owner("carol")
    blocker = cluster.submit(carol, cluster.gated)
    wait_until(lambda: cluster.running(blocker), 60, "the first job to run")
    normals = [cluster.submit(carol, PROBE) for _ in range(5)]
    urgent = cluster.submit(carol, PROBE, priority="high")
    assert all(cluster.get(i).pending for i in [*normals, urgent])
    cluster.gate.touch()

    records = cluster.succeeded([blocker, *normals, urgent])

    assert in_start_order(records) == [blocker, urgent, *normals]


def test_an_owner_at_their_gpu_quota_waits_and_another_owner_takes_the_free_gpu(
    cluster: Cluster,
) -> None:
    workers = [cluster.start(0), cluster.start(1)]
    alice, bob = owner("alice"), owner("bob")
    set_policy(alice, OwnerPolicy(gpus=1), settings=cluster.settings)
    first, second = cluster.submit(alice, cluster.gated), cluster.submit(alice, cluster.gated)
    bobs = cluster.submit(bob, cluster.gated)
    wait_until(lambda: cluster.running(first) and cluster.running(bobs), 60, "two jobs to run")

    waiting = cluster.get(second)
    assert waiting.pending
    reason = waiting_reason(waiting, cluster.settings) or ""
    assert f"{alice} is at their GPU quota 1/1" in reason
    on = {cluster.get(i).attempts[0].worker for i in (first, bobs)}
    assert on == {w.name for w in workers}  # one job on each worker
    cluster.gate.touch()

    a1, a2, _ = cluster.succeeded([first, second, bobs])
    assert a1.attempts[0].ended_at is not None
    assert start_of(a2) >= a1.attempts[0].ended_at  # never two of hers at once


def test_a_low_priority_job_yields_to_a_high_one_and_resumes_from_its_checkpoint(
    cluster: Cluster,
) -> None:
    cluster.start(0, {"TRAINQ_PREEMPT_AFTER_S": "0", "TRAINQ_PREEMPT_MIN_RUN_S": "1"})
    epochs = 8
    slow_train = [sys.executable, str(REPO / "train.py"), "--epoch-sleep-s", "1"]
    low = cluster.submit(owner("alice"), slow_train, epochs=epochs, priority="low", max_retries=0)
    # By epoch 2 it has run over a second (an epoch's sleep): it may be made to yield.
    wait_until(lambda: (cluster.get(low).progress.epoch or 0) >= 2, 90, "epoch 2 of the job")
    high = cluster.submit(owner("bob"), PROBE, priority="high")

    low_done, high_done = cluster.succeeded([low, high])

    first, second = low_done.attempts  # the yield is no failure: max_retries=0 sufficed
    assert first.failure_class == FailureClass.PREEMPTED
    assert second.failure_class is None
    assert low_done.preemptions == 1
    assert low_done.counted_attempts == 1
    assert first.ended_at is not None and second.started_at is not None
    assert first.ended_at <= start_of(high_done) <= second.started_at
    assert (low_done.result or {})["epochs"] == epochs
    said = lines_by_attempt(Path(low_done.log_path or ""))
    stops = [
        m
        for line in said[1]
        if (m := re.fullmatch(r"stopped by signal, checkpoint at epoch (\d+)", line))
    ]
    assert len(stops) == 1, said[1][-20:]
    reached = int(stops[0].group(1))
    assert 2 <= reached < epochs  # it yielded after the epoch 2 it had reached
    assert f"resuming from epoch {reached}" in said[2]  # and went on from there


def lines_by_attempt(log: Path) -> dict[int, list[str]]:
    """The job's own output lines in its log file, by attempt."""
    said: dict[int, list[str]] = {}
    for text in log.read_text().splitlines():
        line = decode(text)
        if line is not None and line.event is None:
            said.setdefault(line.attempt, []).append(line.msg)
    return said
