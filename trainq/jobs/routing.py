"""Routing: the queue a job goes to, and the queues a worker consumes.

Queue names (``host`` is a worker's ``TRAINQ_HOSTNAME``, by default its hostname):

=============================  ====================  =================================
job                            queue                 consumed by
=============================  ====================  =================================
CPU (``gpu`` false)            ``cpu``               every CPU worker (``TRAINQ_QUEUE``)
CPU, ``host=h``                ``cpu@h``             CPU workers on ``h``
``gpus=N`` (``gpu`` alone: 1)  ``gpus.N``            every worker owning exactly N GPUs
``gpus=N``, ``host=h``         ``gpus.N@h``          workers on ``h`` owning exactly N GPUs
``gpu_ids=[2, 3]``             ``gpu.2+3@h``         the worker on ``h`` owning GPUs 2 and 3
=============================  ====================  =================================

GPU ids are host-local, so a pinned queue always names a host: the spec's ``host``,
else the submitter's own ``TRAINQ_HOSTNAME`` (submit on the GPU box, or name it).
A worker owns a fixed set of devices and runs one job at a time, so a GPU job goes
only to a worker whose device set is exactly its size: a 1-GPU job never holds a
4-GPU worker. Names never contain ``,`` (Celery's ``-Q`` separator); ``@`` never
occurs in a hostname.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainq.config import Settings
from trainq.jobs.spec import JobSpec


def cpu_queue(settings: Settings, host: str | None = None) -> str:
    """The CPU queue (``TRAINQ_QUEUE``), or its per-host variant."""
    return settings.queue if host is None else f"{settings.queue}@{host}"


def count_queue(count: int, host: str | None = None) -> str:
    """Jobs that need ``count`` GPUs, whichever they are (on ``host`` if named)."""
    if count < 1:
        raise ValueError(f"a GPU count queue needs count >= 1 (got {count})")
    return f"gpus.{count}" if host is None else f"gpus.{count}@{host}"


def pinned_queue(gpu_ids: Sequence[int], host: str) -> str:
    """Jobs that name exactly these GPUs of ``host`` (in any order)."""
    if not gpu_ids:
        raise ValueError("a pinned queue needs at least one GPU id")
    return f"gpu.{'+'.join(str(i) for i in sorted(gpu_ids))}@{host}"


def queue_for(spec: JobSpec, settings: Settings) -> str:
    """The one router: the queue a job goes to, from ``gpu``, ``gpus``, ``gpu_ids``, ``host``."""
    if not spec.gpu:
        return cpu_queue(settings, spec.host)
    if spec.gpu_ids:
        return pinned_queue(spec.gpu_ids, spec.host or settings.hostname)
    return count_queue(spec.gpu_count, spec.host)


def worker_queues(gpu_ids: Sequence[int], settings: Settings) -> list[str]:
    """Exactly the queues a worker owning ``gpu_ids`` (none: a CPU worker) consumes."""
    host = settings.hostname
    if not gpu_ids:
        return [cpu_queue(settings), cpu_queue(settings, host)]
    count = len(gpu_ids)
    return [pinned_queue(gpu_ids, host), count_queue(count), count_queue(count, host)]


def queue_gpus(queue: str) -> int:
    """How many GPUs a job of ``queue`` holds: N for ``gpus.N[@h]``, the ids of
    ``gpu.a+b@h``, none for any other (CPU) queue."""
    name = queue.split("@", 1)[0]
    if name.startswith("gpus.") and name[5:].isdigit():
        return int(name[5:])
    if name.startswith("gpu."):
        return len(name[4:].split("+"))
    return 0
