"""What every caller (Python, CLI, later the API) does with jobs: submit, read, wait.

Submitting validates the spec, fills in the defaults from settings and records the
job as ``queued`` *before* the message is sent, so nothing is enqueued when the spec
is bad and a job that was accepted always has a record.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from trainq.config import Settings, get_settings
from trainq.errors import AlreadyFinished, EnqueueError, IllegalTransition, SpecError
from trainq.images import image_allowed
from trainq.keys import Keys
from trainq.logstream import RedisLogStream
from trainq.record import JobRecord
from trainq.routing import check_capacity, queue_for
from trainq.spec import JobSpec, parse_size
from trainq.status import JobStatus
from trainq.store.base import JobPage, JobStore
from trainq.store.redis import RedisJobStore
from trainq.workers import WorkerInfo

# Sends the validated spec (as JSON-ready kwargs) under the given job id to a queue.
Sender = Callable[[dict[str, Any], str, str], object]
# The live workers, for submit-time checks (see trainq.workers.live_workers).
Fleet = Callable[[], Sequence[WorkerInfo]]


@cache
def job_store(url: str, prefix: str) -> RedisJobStore:
    """One store (and connection pool) per Redis URL and prefix in this process."""
    return RedisJobStore.from_url(url, prefix)


def log_stream(settings: Settings | None = None) -> RedisLogStream:
    """The job log streams, on the job store's connection pool."""
    settings = settings or get_settings()
    store = default_store(settings)
    return RedisLogStream(
        store.client,
        Keys(settings.key_prefix),
        settings.log_stream_max_lines,
        retention_s=settings.log_retention_days * 86_400,
    )


def default_store(settings: Settings | None = None) -> RedisJobStore:
    settings = settings or get_settings()
    return job_store(settings.redis_url, settings.key_prefix)


def with_defaults(spec: JobSpec, settings: Settings) -> JobSpec:
    """The spec with the image and time limit filled in; refuses what this cluster does
    not allow (a too long limit, an image off the allow-list, limits above the cap)."""
    timeout_s = spec.timeout_s if spec.timeout_s is not None else settings.default_timeout_s
    if timeout_s > settings.max_job_s:
        raise SpecError(
            f"invalid job spec: timeout_s: must be at most {settings.max_job_s} s, "
            f"the longest job this cluster allows (got {timeout_s})"
        )
    image = spec.image or settings.default_image
    if not image_allowed(image, settings):
        raise SpecError(
            f"invalid job spec: image: {image!r} is not on this cluster's allow-list "
            f"({', '.join(settings.image_patterns)}; setting TRAINQ_ALLOWED_IMAGES)"
        )
    cap = parse_size(settings.container_memory)
    if spec.memory_bytes is not None and spec.memory_bytes > cap:
        raise SpecError(
            f"invalid job spec: memory: must be at most {settings.container_memory}, "
            f"this cluster's container limit (got {spec.memory!r})"
        )
    if spec.cpus is not None and spec.cpus > settings.container_cpus:
        raise SpecError(
            f"invalid job spec: cpus: must be at most {settings.container_cpus:g}, "
            f"this cluster's container limit (got {spec.cpus:g})"
        )
    return spec.model_copy(update={"image": image, "timeout_s": timeout_s})


def submit(
    values: Mapping[str, Any],
    send: Sender,
    *,
    store: JobStore,
    settings: Settings,
    job_id: str | None = None,
    queue: str | None = None,
    workers: Fleet | None = None,
) -> str:
    """Validate, route, record as queued, then send; the job id.

    The queue is :func:`~trainq.routing.queue_for` the spec unless ``queue`` names
    one. With ``workers``, a GPU request larger than every live GPU worker is
    refused (:func:`~trainq.routing.check_capacity`). With an ``idempotency_key``
    already used, the first job's id is returned and nothing is sent.
    """
    spec = with_defaults(JobSpec.parse(dict(values)), settings)
    if workers is not None and spec.gpu_count:  # CPU jobs need no registry read
        check_capacity(spec, workers())
    queue = queue or queue_for(spec, settings)
    job_id = job_id or str(uuid.uuid4())
    if spec.idempotency_key is not None:
        owner = store.claim_idempotency_key(spec.idempotency_key, job_id)
        if owner != job_id:
            return owner
    if not store.create(JobRecord(id=job_id, spec=spec, queue=queue)):
        raise SpecError(f"a job with id {job_id!r} already exists")
    try:
        send(spec.model_dump(mode="json"), job_id, queue)
    except Exception as exc:
        reason = f"could not enqueue: {exc!r}"
        store.update(job_id, lambda r: r.moved_to(JobStatus.FAILED, error=reason))
        raise EnqueueError(f"job {job_id} was recorded but {reason}") from exc
    return job_id


def get_job(job_id: str, store: JobStore | None = None) -> JobRecord:
    return (store or default_store()).get(job_id)


def list_jobs(
    status: JobStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
    store: JobStore | None = None,
) -> JobPage:
    return (store or default_store()).list(status=status, limit=limit, cursor=cursor)


def wait_for(
    job_id: str,
    *,
    store: JobStore | None = None,
    timeout_s: float | None = None,
    poll_interval_s: float = 0.5,
    on_update: Callable[[JobRecord], None] = lambda _: None,
) -> JobRecord:
    """Poll the store until the job is final; ``on_update`` sees each new version."""
    store = store or default_store()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = -1.0
    while True:
        record = store.get(job_id)
        if record.updated_at != seen:
            seen = record.updated_at
            on_update(record)
        if record.status.is_terminal:
            return record
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {record.status} after {timeout_s} s")
        time.sleep(poll_interval_s)


def cancel(
    job_id: str, *, revoke: Callable[[str], None], store: JobStore | None = None
) -> JobRecord:
    """Ask for the job to be cancelled; the record as it stands right after.

    Cooperative: the cancel flag in Redis is the truth. A queued job is recorded
    ``cancelled`` at once and never starts (``revoke`` only lets workers skip its
    message early). A running job's supervisor sees the flag, stops the container
    (SIGTERM, grace, SIGKILL) and only then records ``cancelled``. A final job
    raises :class:`AlreadyFinished` and nothing changes.
    """
    store = store or default_store()
    record = store.get(job_id)
    if record.status.is_terminal:
        raise AlreadyFinished(f"job {job_id} already {record.status}: nothing to cancel")
    store.request_cancel(job_id)
    revoke(job_id)

    def cancel_if_queued(r: JobRecord) -> JobRecord:
        if r.status == JobStatus.QUEUED:
            return r.moved_to(JobStatus.CANCELLED, error="cancelled before it started")
        return r

    try:
        return store.update(job_id, cancel_if_queued)
    except IllegalTransition:
        record = store.get(job_id)  # it ended meanwhile
        if record.status == JobStatus.CANCELLED:
            return record
        raise AlreadyFinished(f"job {job_id} already {record.status}: nothing to cancel") from None
