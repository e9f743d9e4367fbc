"""The task's worker side: what a worker does with "supervise job J".

Celery imports this module in worker processes only (the app's ``include``); it
registers :class:`SupervisedTraining` under the task's name, in place of the
callers' :class:`~trainq.client.task.SubmitTraining`, which it extends. The task is
thin: it builds a :class:`Runner` and hands it the job. The worker's main process
also joins the live-worker registry, runs the reconciler, and takes part in the
election of the scheduler's admission loop.
"""

from __future__ import annotations

import logging
import threading
import warnings
from functools import cache, partial
from typing import Any

from celery.exceptions import DuplicateTaskNameWarning, Ignore, SoftTimeLimitExceeded
from celery.signals import after_setup_logger, worker_ready, worker_shutting_down

from trainq import connections
from trainq.celery_app import app
from trainq.client.submit import send_job
from trainq.client.task import SubmitTraining
from trainq.cluster.registry import Heartbeat, WorkerInfo
from trainq.config import Settings, get_settings
from trainq.errors import Preempted, SupervisedElsewhere
from trainq.jobs.record import JobRecord, Progress
from trainq.jobs.routing import queue_for
from trainq.jobs.spec import JobSpec
from trainq.logs import components
from trainq.runtime.base import Runtime
from trainq.runtime.factory import make_runtime, runtime_problem
from trainq.scheduler.admission import Admission
from trainq.worker.devices import Gpus
from trainq.worker.reconciler import Reconciler
from trainq.worker.runner import Runner
from trainq.worker.standby import Standby, store_problem
from trainq.worker.startup import deferred_queues, this_worker
from trainq.worker.transfers import AttemptFiles

log = logging.getLogger("trainq.worker")

# A worker keeps trying through a Redis restart: its jobs' supervisors never give up.
connections.ride_out_outages()


@cache
def worker_runtime() -> Runtime:
    """The runtime of this worker child, created after the fork (clients are not fork-safe)."""
    return make_runtime(get_settings())


class SupervisedTraining(SubmitTraining):
    """Runs one training job (keyword arguments: the fields of JobSpec)."""

    def run(self, **kwargs: Any) -> dict[str, Any]:
        settings = get_settings()

        def report(progress: Progress) -> None:
            meta = progress.model_dump(exclude_none=True)
            self.update_state(state="PROGRESS", meta=meta)
            self.send_event("task-progress", **meta)

        owned = this_worker()
        worker = self.request.hostname or settings.hostname
        runner = Runner(
            records=connections.records(settings),
            coordination=connections.coordination(settings),
            runtime=worker_runtime(),
            settings=settings,
            worker=worker,
            on_progress=report,
            logs=connections.log_stream(settings),
            series=connections.metric_series(settings),
            gpus=Gpus(owned.gpu_ids, owned.gpu_uuids) if owned else Gpus(()),
            files=AttemptFiles(connections.artifact_store(settings), settings),
        )
        try:
            with components.job_context(self.request.id):
                return runner.run(self.request.id, JobSpec.parse(kwargs))
        except SupervisedElsewhere as exc:
            # A duplicate delivery while another supervisor runs the job: drop this
            # message without touching the task's state; the other one reports.
            with components.job_context(self.request.id):
                log.info("%s dropped this delivery of the job: %s", worker, exc)
            raise Ignore() from None
        except Preempted:
            # Yielded to a higher-priority job: pending again, the scheduler sends it
            # anew; the task's state stays as it was (not a result).
            raise Ignore() from None
        except SoftTimeLimitExceeded:
            runner.abort(self.request.id, "the worker's backstop time limit was reached")
            raise


# Deliberately in place of the callers' task of the same name; Celery warns of any
# replacement, which here is the point.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DuplicateTaskNameWarning)
    app.register_task(SupervisedTraining())


def requeue(record: JobRecord) -> None:
    """Send "supervise job J" again, to its queue, bypassing submit: the record exists."""
    queue = record.queue or queue_for(record.spec, get_settings())
    send_job(record.spec.model_dump(mode="json"), record.id, queue)


_reconciling = threading.Event()
_heartbeat: list[Heartbeat] = []
_standby: list[Standby] = []
_admission: list[Admission] = []


def _start_admission(settings: Settings, name: str) -> None:
    """Join the admission loop's election (the fair scheduler; not with FIFO)."""
    if settings.scheduler != "fair":
        return
    admission = Admission(
        connections.scheduler_state(settings),
        connections.records(settings),
        connections.coordination(settings),
        requeue,
        settings,
        client=connections.client(settings),
        keys=connections.keys(settings),
        name=name,
    )
    _admission.append(admission)
    threading.Thread(
        target=admission.loop, args=(_reconciling,), daemon=True, name="admission"
    ).start()


@after_setup_logger.connect  # type: ignore[untyped-decorator]
def _json_logs(**_: Any) -> None:
    """The worker's (and its children's) records also go to TrainingWorker_YYYYMMDD.log."""
    components.configure("worker", get_settings().log_dir)


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
    store_probe = partial(store_problem, connections.artifact_store(settings))
    heartbeat = Heartbeat(connections.registry(settings), info, beat_s, probe, store_probe)
    _heartbeat.append(heartbeat.start())
    if deferred_queues():  # the store did not answer at start: join once it does
        _standby.append(Standby(heartbeat, deferred_queues(), store_probe, beat_s).start())
    reconciler = Reconciler(
        connections.records(settings),
        connections.coordination(settings),
        # Its own runtime (and Docker client): never the one forked children use.
        make_runtime(settings),
        settings,
        requeue,
        connections.artifact_store(settings),
    )
    _reconciling.clear()
    threading.Thread(
        target=reconciler.loop, args=(_reconciling,), daemon=True, name="reconciler"
    ).start()
    _start_admission(settings, info.name)


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop_reconciler(**_: Any) -> None:
    _reconciling.set()
    while _admission:
        _admission.pop().resign()
    while _standby:
        _standby.pop().stop()
    while _heartbeat:
        _heartbeat.pop().stop()
