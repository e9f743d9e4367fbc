"""What a ``trainq worker`` owns and consumes, decided before Celery starts.

A worker without ``--gpus`` is a CPU worker on the CPU queue. With ``--gpus`` it
owns those devices (checked, or discovered with ``auto``, through NVML; taken as
given with ``TRAINQ_SIMULATE_GPUS=1``), runs one job at a time, and consumes exactly
the queues :func:`trainq.jobs.routing.worker_queues` names for them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from celery.utils.nodenames import host_format

from trainq.cluster.registry import WorkerInfo
from trainq.config import Settings
from trainq.errors import GpuUnavailable
from trainq.jobs.routing import worker_queues
from trainq.worker import devices
from trainq.worker.standby import STANDBY_QUEUE

# Between a worker's Celery event heartbeats (Celery's default: 2 s): what an idle
# cluster publishes to Redis. Flower's "online" follows the interval they carry.
HEARTBEAT_S = 10
# What every trainq worker asks of Celery besides its pool, queues and name. Mingle asks
# the other workers for their revoked tasks at start and waits a second for answers;
# gossip follows their events. trainq revokes nothing (a cancel is its own, in Redis)
# and elects its leaders with leases: neither is used, and mingle's wait was a third of
# a worker's start.
WORKER_FLAGS = (
    "--task-events",
    f"--heartbeat-interval={HEARTBEAT_S}",
    "--without-mingle",
    "--without-gossip",
)


@dataclass(frozen=True)
class WorkerPlan:
    info: WorkerInfo
    celery_argv: list[str]
    # The queues it serves once the artifact store answers; empty: it serves them now.
    deferred: tuple[str, ...] = ()


def plan(
    settings: Settings,
    *,
    name: str,
    gpus: str | None,
    concurrency: int | None,
    loglevel: str,
    runtime: str,
    store_error: str | None = None,
) -> WorkerPlan:
    """The worker's registry entry and Celery's arguments; GpuUnavailable if ``gpus``
    names devices this host cannot give. With a ``store_error`` it starts on standby
    (:mod:`trainq.worker.standby`): its queues are deferred until the store answers."""
    owned = devices.resolve(gpus, simulate=settings.simulate_gpus)
    if owned and concurrency not in (None, 1):
        raise GpuUnavailable(
            f"--concurrency {concurrency}: a GPU worker runs one job at a time on its devices; "
            "start one worker per device set instead"
        )
    jobs = 1 if owned else (concurrency or settings.worker_concurrency)
    queues = worker_queues(owned.ids, settings)
    deferred = tuple(queues) if store_error else ()
    consumed = [STANDBY_QUEUE] if store_error else queues
    info = WorkerInfo(
        name=host_format(name),
        hostname=settings.hostname,
        queues=() if store_error else tuple(queues),
        store_error=store_error,
        gpu_ids=owned.ids,
        gpu_uuids=owned.uuids,
        simulated_gpus=bool(owned) and settings.simulate_gpus,
        runtime=runtime,
        concurrency=jobs,
    )
    argv = [
        "worker",
        "--pool=prefork",
        f"--concurrency={jobs}",
        f"--queues={','.join(consumed)}",
        f"--hostname={info.name}",
        f"--loglevel={loglevel}",
        *WORKER_FLAGS,
    ]
    return WorkerPlan(info, argv, deferred)


# The worker command declares what this process serves before Celery starts; the
# prefork pool's children are forked from it and inherit the declaration, so a task
# knows which GPUs its worker owns.
_declared: list[WorkerPlan] = []
_PLAN_OPTION = "--plan="


def declare(plan: WorkerPlan) -> None:
    """Record what this worker process serves (called by ``trainq worker``)."""
    _declared[:] = [plan]


def this_worker() -> WorkerInfo | None:
    """What this worker process serves, if ``trainq worker`` declared it."""
    return _declared[0].info if _declared else None


def deferred_queues() -> tuple[str, ...]:
    """The queues this worker joins once the artifact store answers (none: joined)."""
    return _declared[0].deferred if _declared else ()


def exec_argv(plan: WorkerPlan) -> list[str]:
    """The command line of ``python -m trainq.worker`` that takes ``plan`` over."""
    handed = {"info": plan.info.model_dump(mode="json"), "deferred": list(plan.deferred)}
    plan_json = json.dumps(handed, separators=(",", ":"))
    return [sys.executable, "-m", "trainq.worker", f"{_PLAN_OPTION}{plan_json}", *plan.celery_argv]


def from_argv(argv: list[str]) -> WorkerPlan:
    """The plan :func:`exec_argv` handed over (its arguments after the module's name)."""
    if not argv or not argv[0].startswith(_PLAN_OPTION):
        raise SystemExit("python -m trainq.worker is started by `trainq worker`; run that")
    handed = json.loads(argv[0].removeprefix(_PLAN_OPTION))
    info = WorkerInfo.model_validate(handed["info"])
    return WorkerPlan(info, argv[1:], tuple(handed["deferred"]))


def yield_to_jobs(nice: int) -> None:
    """The jobs come first: the worker (and the pool it forks) runs ``nice`` lower.

    Under the kernel's autogroup scheduling (sched(7)), a process's nice value only
    counts within its session's group, and a job's container runs in a group of its
    own: the worker's nice alone changed nothing there, and a worker reading a chatty
    job's output took the CPU from it as an equal. Where the worker leads its session
    (a service, a container's entry point, a benchmark's worker) its group is set
    ``nice`` too; one started from a shell shares the shell's group, left as it is.
    """
    os.nice(nice)
    if os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError):  # no autogroups here: the nice value counts
            Path("/proc/self/autogroup").write_text(f"{nice}\n")
