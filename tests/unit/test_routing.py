"""Routing: the queue table, the queues a worker consumes, capacity, waiting reasons."""

from __future__ import annotations

from typing import Any

import pytest

from trainq.client.submit import check_capacity
from trainq.cluster.queues import describe_wait
from trainq.cluster.registry import WorkerInfo
from trainq.config import Settings
from trainq.errors import SpecError
from trainq.jobs.routing import queue_for, worker_queues
from trainq.jobs.spec import JobSpec

SETTINGS = Settings(hostname="box1", queue="cpu")


def spec(**fields: Any) -> JobSpec:
    return JobSpec.parse(fields)


@pytest.mark.parametrize(
    ("fields", "queue"),
    [
        ({}, "cpu"),
        ({"host": "box2"}, "cpu@box2"),
        ({"gpu": True}, "gpus.1"),
        ({"gpu": True, "gpus": 1}, "gpus.1"),
        ({"gpu": True, "gpus": 2}, "gpus.2"),
        ({"gpu": True, "gpus": 2, "host": "box2"}, "gpus.2@box2"),
        ({"gpu": True, "gpu_ids": [1]}, "gpu.1@box1"),
        ({"gpu": True, "gpu_ids": [3, 2]}, "gpu.2+3@box1"),
        ({"gpu": True, "gpu_ids": [2, 3], "gpus": 2}, "gpu.2+3@box1"),
        ({"gpu": True, "gpu_ids": [0], "host": "box2"}, "gpu.0@box2"),
    ],
)
def test_routing_table(fields: dict[str, Any], queue: str) -> None:
    assert queue_for(spec(**fields), SETTINGS) == queue


def test_cpu_queue_follows_the_setting() -> None:
    assert queue_for(spec(), Settings(queue="batch")) == "batch"


@pytest.mark.parametrize(
    ("gpu_ids", "queues"),
    [
        ((), ["cpu", "cpu@box1"]),
        ((0,), ["gpu.0@box1", "gpus.1", "gpus.1@box1"]),
        ((3, 2), ["gpu.2+3@box1", "gpus.2", "gpus.2@box1"]),
    ],
)
def test_worker_queues(gpu_ids: tuple[int, ...], queues: list[str]) -> None:
    assert worker_queues(gpu_ids, SETTINGS) == queues


def test_every_job_a_worker_can_run_routes_to_a_queue_it_consumes() -> None:
    gpu_worker = set(worker_queues((2, 3), SETTINGS))
    for fields in (
        {"gpu": True, "gpus": 2},
        {"gpu": True, "gpu_ids": [3, 2]},
        {"gpu": True, "gpus": 2, "host": "box1"},
    ):
        assert queue_for(spec(**fields), SETTINGS) in gpu_worker
    for fields in ({"gpu": True}, {"gpu": True, "gpu_ids": [2]}, {}):
        assert queue_for(spec(**fields), SETTINGS) not in gpu_worker
    assert queue_for(spec(), SETTINGS) in worker_queues((), SETTINGS)


def test_no_queue_name_contains_celerys_separator() -> None:
    names = [
        *worker_queues((0, 1, 2), SETTINGS),
        queue_for(spec(gpu=True, gpu_ids=[0, 1, 2]), SETTINGS),
    ]
    assert not any("," in name or " " in name for name in names)


def worker(name: str, gpu_ids: tuple[int, ...]) -> WorkerInfo:
    return WorkerInfo(
        name=name,
        hostname="box1",
        queues=tuple(worker_queues(gpu_ids, SETTINGS)),
        gpu_ids=gpu_ids,
        runtime="process",
        concurrency=1,
    )


FLEET = [worker("cpu@box1", ()), worker("g0@box1", (0,)), worker("g12@box1", (1, 2))]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"gpu": True, "gpus": 3}, "gpus"), ({"gpu": True, "gpu_ids": [0, 1, 2]}, "gpu_ids")],
)
def test_a_request_larger_than_every_live_gpu_worker_is_refused(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(SpecError, match=rf"^invalid job spec: {field}: asks for 3 GPUs.*owns 2"):
        check_capacity(spec(**fields), FLEET)


@pytest.mark.parametrize(
    ("fields", "workers"),
    [
        ({"gpu": True, "gpus": 2}, FLEET),
        ({"gpu": True, "gpu_ids": [7]}, FLEET),  # nobody owns 7: it waits, visibly
        ({"gpu": True, "gpus": 8}, [worker("cpu@box1", ())]),  # no GPU worker up yet
        ({"gpu": True, "gpus": 8}, []),
        ({}, []),  # CPU jobs never wait for a worker to validate
    ],
)
def test_requests_that_may_yet_run_are_accepted(
    fields: dict[str, Any], workers: list[WorkerInfo]
) -> None:
    check_capacity(spec(**fields), workers)


def test_waiting_reason_names_the_queue_nobody_serves() -> None:
    assert describe_wait("gpu.7@box1", FLEET, 1, 0) == "no live worker serves queue gpu.7@box1"


def test_waiting_reason_gives_the_position_when_served() -> None:
    reason = describe_wait("gpus.1", FLEET, 4, 2)
    assert reason == "in queue gpus.1: 2 job(s) ahead of it, served by 1 live worker"
    assert (
        describe_wait("cpu", FLEET, 9, None) == "in queue cpu (9 waiting), served by 1 live worker"
    )
