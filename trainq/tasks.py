"""The Celery task: thin on both sides of the broker.

Caller side, ``submit_training.delay(**spec)`` validates and records the job before
anything is sent (an invalid spec raises :class:`~trainq.errors.SpecError` and
enqueues nothing). Worker side, the task hands the job to a :class:`Runner`.
"""

from __future__ import annotations

import threading
from functools import cache, partial
from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.result import AsyncResult
from celery.signals import after_setup_logger, worker_ready, worker_shutting_down

from trainq import client, logs
from trainq.celery_app import create_app
from trainq.config import get_settings
from trainq.devices import Gpus
from trainq.errors import SpecError, SupervisedElsewhere
from trainq.reconciler import Reconciler
from trainq.record import JobRecord, Progress
from trainq.routing import queue_for
from trainq.runner import Runner
from trainq.runtime.base import Runtime
from trainq.runtime.factory import make_runtime, runtime_problem
from trainq.spec import JobSpec
from trainq.workers import Heartbeat, WorkerInfo, live_workers, registry, this_worker

app = create_app(get_settings())


@cache
def worker_runtime() -> Runtime:
    """The runtime of this worker child, created after the fork (clients are not fork-safe)."""
    return make_runtime(get_settings())


class TrainingTask(Task):  # type: ignore[misc]
    """Validates, routes and records a job on ``apply_async`` before sending it.

    The queue is :func:`trainq.routing.queue_for` the spec; an explicit ``queue=``
    option overrides it (and is recorded as the job's queue).
    """

    def apply_async(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        if args:
            raise SpecError("submit_training takes keyword arguments only, e.g. epochs=2")
        settings = get_settings()
        queue = options.pop("queue", None)

        def send(payload: dict[str, Any], job_id: str, queue: str) -> object:
            # The message's kwargs summary for monitors (Flower): Celery's own saferepr of
            # the spec cost a quarter of a submit (profiled); repr() says the same.
            summary = repr(payload)[: app.amqp.kwargsrepr_maxsize]
            return super(TrainingTask, self).apply_async(
                kwargs=payload, task_id=job_id, queue=queue, **{"kwargsrepr": summary, **options}
            )

        job_id = client.submit(
            kwargs or {},
            send,
            store=client.default_store(settings),
            settings=settings,
            job_id=task_id,
            queue=queue if isinstance(queue, str) else None,
            workers=lambda: live_workers(settings),
        )
        return self.AsyncResult(job_id)


@app.task(bind=True, base=TrainingTask, name="trainq.submit_training")  # type: ignore[untyped-decorator]
def submit_training(self: TrainingTask, **kwargs: Any) -> dict[str, Any]:
    """Run one training job (keyword arguments: the fields of JobSpec)."""
    settings = get_settings()

    def report(progress: Progress) -> None:
        meta = progress.model_dump(exclude_none=True)
        self.update_state(state="PROGRESS", meta=meta)
        self.send_event("task-progress", **meta)

    owned = this_worker()
    runner = Runner(
        store=client.default_store(settings),
        runtime=worker_runtime(),
        settings=settings,
        worker=self.request.hostname or settings.hostname,
        on_progress=report,
        logs=client.log_stream(settings),
        gpus=Gpus(owned.gpu_ids, owned.gpu_uuids) if owned else Gpus(()),
    )
    try:
        with logs.job_context(self.request.id):
            return runner.run(self.request.id, JobSpec.parse(kwargs))
    except SupervisedElsewhere:
        # A duplicate delivery while another supervisor runs the job: drop this
        # message without touching the task's state; the other one reports.
        raise Ignore() from None
    except SoftTimeLimitExceeded:
        runner.abort(self.request.id, "the worker's backstop time limit was reached")
        raise


def cancel(job_id: str) -> JobRecord:
    """Cancel a job (see :func:`trainq.client.cancel`): ``trainq.cancel(job_id)``."""
    return client.cancel(job_id, revoke=lambda task_id: app.control.revoke(task_id))


def requeue(record: JobRecord) -> None:
    """Send "supervise job J" again, to its queue, bypassing submit: the record exists."""
    app.send_task(
        submit_training.name,
        kwargs=record.spec.model_dump(mode="json"),
        task_id=record.id,
        queue=record.queue or queue_for(record.spec, get_settings()),
    )


_reconciling = threading.Event()
_heartbeat: list[Heartbeat] = []


@after_setup_logger.connect  # type: ignore[untyped-decorator]
def _json_logs(**_: Any) -> None:
    """The worker's (and its children's) records also go to TrainingWorker_YYYYMMDD.log."""
    logs.configure("worker", get_settings().log_dir)


@worker_ready.connect  # type: ignore[untyped-decorator]
def _start_reconciler(sender: Any = None, **_: Any) -> None:
    """Join the worker registry, and reconcile at worker start, then periodically, in
    the worker's main process."""
    settings = get_settings()
    info = this_worker()
    if info is None:  # started by `celery worker` rather than `trainq worker`
        name = getattr(sender, "hostname", None) or f"celery@{settings.hostname}"
        consumed = app.amqp.queues.consume_from or {settings.queue: None}
        info = WorkerInfo(
            name=name,
            hostname=settings.hostname,
            queues=tuple(consumed),
            runtime=settings.runtime,
            concurrency=settings.worker_concurrency,
        )
    beat_s = settings.worker_ttl_s / 3
    probe = partial(runtime_problem, settings)
    _heartbeat.append(Heartbeat(registry(settings), info, beat_s, probe).start())
    reconciler = Reconciler(
        # Its own runtime (and Docker client): never the one forked children use.
        client.default_store(settings),
        make_runtime(settings),
        settings,
        requeue,
    )
    _reconciling.clear()
    threading.Thread(
        target=reconciler.loop, args=(_reconciling,), daemon=True, name="reconciler"
    ).start()


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop_reconciler(**_: Any) -> None:
    _reconciling.set()
    while _heartbeat:
        _heartbeat.pop().stop()
