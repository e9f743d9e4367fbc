"""Submit: validate, apply the cluster's policy, route, record as ``queued``.

With the fair scheduler (the default) the job is recorded as pending and the
scheduler sends it when a worker can take it (:mod:`trainq.scheduler`); with
``TRAINQ_SCHEDULER=fifo`` it is sent at once. Either way the job is recorded *before*
its message is sent, so nothing is enqueued when the spec is bad and a job that was
accepted always has a record. Sending is by task
name (:data:`~trainq.celery_app.TASK_NAME`): the caller never imports the worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trainq import connections
from trainq.celery_app import TASK_NAME, app
from trainq.client.acceptance import confirm_accepted
from trainq.cluster.registry import WorkerInfo
from trainq.config import Settings, get_settings
from trainq.errors import EnqueueError, NotAccepted, QuotaExceeded, SpecError
from trainq.jobs.policy import with_defaults
from trainq.jobs.record import JobRecord
from trainq.jobs.routing import queue_for
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store.protocols import IdempotencyKeys, JobRecords

# Sends the validated spec (as JSON-ready kwargs) under the given job id to a queue.
Sender = Callable[[dict[str, Any], str, str], object]
# The live workers, for submit-time checks.
Fleet = Callable[[], Sequence[WorkerInfo]]


def submit(
    values: Mapping[str, Any],
    *,
    settings: Settings | None = None,
    records: JobRecords | None = None,
    idempotency_keys: IdempotencyKeys | None = None,
    send: Sender | None = None,
    workers: Fleet | None = None,
    job_id: str | None = None,
    queue: str | None = None,
    owner: str | None = None,
    **options: Any,
) -> str:
    """Validate, route, record as queued (pending; sent at once with the FIFO
    scheduler); the job id.

    The queue is :func:`~trainq.jobs.routing.queue_for` the spec unless ``queue``
    names one. A GPU request larger than every live GPU worker is refused
    (:func:`check_capacity`). With an ``idempotency_key`` already used, the first
    job's id is returned and nothing is sent. ``options`` go to Celery's send (e.g.
    ``ignore_result``). Defaults: this process's settings, Redis and broker.

    The job's ``owner`` is the API token's user when the API submits; a direct client
    (Python, the CLI on Redis) submits as ``settings.user`` (TRAINQ_USER, else the
    login name). With ``max_queued_per_user`` set, a submit that would put the owner
    over it raises :class:`~trainq.errors.QuotaExceeded` and records nothing.
    """
    settings = settings or get_settings()
    records = records or connections.records(settings)
    spec = with_defaults(JobSpec.parse(dict(values)), settings)
    if spec.gpu_count:  # CPU jobs need no registry read
        check_capacity(spec, (workers or (lambda: connections.live_workers(settings)))())
    queue = queue or queue_for(spec, settings)
    job_id = job_id or str(uuid.uuid4())
    owner = owner or settings.user
    keys = None
    if spec.idempotency_key is not None:
        # Each owner's keys are their own: another user's key names none of their jobs.
        keys = idempotency_keys or connections.idempotency_keys(settings)
        first = keys.claim(f"{owner}/{spec.idempotency_key}", job_id)
        if first != job_id:
            return first
    record = JobRecord(id=job_id, spec=spec, owner=owner, queue=queue)
    fifo = settings.scheduler == "fifo"
    # Fair: pending until the scheduler admits it. FIFO: admitted (sent) right away.
    stamp = {"admitted_at": record.created_at, "admissions": 1} if fifo else {}
    record = record.model_copy(update={"queued_at": record.created_at, **stamp})
    try:
        created = records.create(record, max_queued=settings.max_queued_per_user)
    except QuotaExceeded:
        if keys is not None and spec.idempotency_key is not None:  # refused: free the key
            keys.release(f"{owner}/{spec.idempotency_key}", job_id)
        raise
    if not created:
        raise SpecError(f"a job with id {job_id!r} already exists")

    def free_key() -> None:
        if keys is not None and spec.idempotency_key is not None:
            keys.release(f"{owner}/{spec.idempotency_key}", job_id)

    # With replicas required: on them before anything may send it (or nothing at all).
    confirm_accepted(records, record, settings, free_key)
    if not fifo:
        return job_id  # recorded as pending: the scheduler sends it (trainq.scheduler)
    try:
        if send is None:
            send_job(spec.model_dump(mode="json"), job_id, queue, **options)
        else:
            send(spec.model_dump(mode="json"), job_id, queue)
        if (
            settings.min_replicas
            and records.replicated(job_id, settings.min_replicas, settings.redis_wait_s)
            < settings.min_replicas
        ):
            raise NotAccepted("too few Redis replicas confirmed its message")
    except Exception as exc:
        reason = f"could not enqueue: {exc!r}"
        records.update(job_id, lambda r: r.moved_to(JobStatus.FAILED, error=reason))
        raise EnqueueError(f"job {job_id} was recorded but {reason}") from exc
    return job_id


def send_job(payload: dict[str, Any], job_id: str, queue: str, **options: Any) -> None:
    """Send "supervise job J" to ``queue``; the record must exist already."""
    # The message's kwargs summary for monitors (Flower): Celery's own saferepr of the
    # spec cost a quarter of a submit (profiled); repr() says the same.
    summary = repr(payload)[: app.amqp.kwargsrepr_maxsize]
    app.send_task(
        TASK_NAME, kwargs=payload, task_id=job_id, queue=queue, **{"kwargsrepr": summary, **options}
    )


def check_capacity(spec: JobSpec, workers: Sequence[WorkerInfo]) -> None:
    """Refuse a GPU request larger than every live GPU worker (SpecError naming the field).

    CPU jobs are never refused for want of a worker, nor GPU jobs while no GPU worker
    is registered at all (a cluster still starting): those wait, and their waiting
    reason names the queue nobody serves. Ids that no worker owns wait too.
    """
    wanted = spec.gpu_count
    sizes = [len(w.gpu_ids) for w in workers if w.gpu_ids]
    if not wanted or not sizes or wanted <= max(sizes):
        return
    field = "gpu_ids" if spec.gpu_ids else "gpus"
    raise SpecError(
        f"invalid job spec: {field}: asks for {wanted} GPUs but the largest live GPU worker "
        f"owns {max(sizes)} (got {spec.gpu_ids if spec.gpu_ids else spec.gpus!r})"
    )
