"""``submit_training``: the Celery task as callers see it.

``submit_training.delay(**spec)`` (or ``apply_async(kwargs=spec, ...)``) validates
and records the job, then sends it (:func:`trainq.client.submit.submit`): an invalid
spec raises :class:`~trainq.errors.SpecError` and enqueues nothing. What a worker
does with the message is :mod:`trainq.worker.task`, registered under the same name
in worker processes only.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.result import AsyncResult

from trainq.celery_app import TASK_NAME, app
from trainq.client.submit import submit
from trainq.errors import SpecError, TrainqError


class SubmitTraining(Task):  # type: ignore[misc]
    """Validates, routes and records a job on ``apply_async`` before sending it.

    The queue is :func:`trainq.jobs.routing.queue_for` the spec; an explicit
    ``queue=`` option overrides it (and is recorded as the job's queue).
    """

    name = TASK_NAME

    def apply_async(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        if args:
            raise SpecError("submit_training takes keyword arguments only, e.g. epochs=2")
        queue = options.pop("queue", None)
        job_id = submit(
            kwargs or {},
            job_id=task_id,
            queue=queue if isinstance(queue, str) else None,
            **options,
        )
        return self.AsyncResult(job_id)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        raise TrainqError(
            "a training job runs on a trainq worker: submit it with "
            "submit_training.delay(...) and start one with `trainq worker`"
        )


submit_training: SubmitTraining = app.register_task(SubmitTraining())
