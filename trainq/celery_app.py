"""The Celery application and the broker options derived from Settings.

``celeryconfig.py`` (top level) and this app both use :func:`celery_config`, so the
worker, the CLI, Flower and the API share ``visibility_timeout`` and the key prefix.
The app takes the dict directly rather than importing ``celeryconfig`` by name, so a
stranger's ``celeryconfig.py`` in the current directory can never replace ours.

Callers send "supervise job J" by :data:`TASK_NAME` (:mod:`trainq.client`); only a
worker imports the task's implementation (:data:`WORKER_MODULES`, Celery's
``include``), so the API and CLI processes never load the runner, the runtimes or
Docker's SDK.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from trainq.config import Settings, get_settings
from trainq.config.redis_urls import sentinel_kwargs

# The one task: "supervise job J" (its kwargs: the job's spec).
TASK_NAME = "trainq.submit_training"
# What a worker imports at start (callers never do): the task's worker side.
WORKER_MODULES = ["trainq.worker.task"]
# An idle worker's wait for a message, per BRPOP: what an idle cluster costs Redis
# (kombu's default: 1 s). Not longer: a warm shutdown waits for the BRPOP under way to
# answer (kombu reads its reply, which may hold a message).
BROKER_POLL_S = 3


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for every trainq process."""
    transport: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout_s,
        "global_keyprefix": settings.key_prefix,
        # An idle consumer's BRPOP returns empty after this long and is sent again; a
        # message is still taken the moment it arrives.
        "polling_interval": BROKER_POLL_S,
    }
    backend: dict[str, Any] = {"global_keyprefix": settings.key_prefix}
    if settings.sentinel_addresses:
        transport.update(sentinel_options(settings))
        backend.update(sentinel_options(settings))
    return {
        "broker_url": settings.celery_redis_url,
        "result_backend": settings.celery_redis_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": backend,
        "broker_connection_retry_on_startup": True,
        # JSON only: pickle would let anyone who can write to Redis run code.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_expires": settings.result_expires_s,
        "result_extended": True,
        # A job is acked when it ends; a lost worker's job comes back (the runner
        # adopts-or-launches, so a re-delivery never runs it twice).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.worker_concurrency,
        "task_default_queue": settings.queue,
        # A backstop above the runner's own time limit, which stops the container
        # first: the soft limit makes the runner stop it and record timed_out.
        "task_soft_time_limit": settings.max_job_s + settings.visibility_margin_s // 2,
        "task_time_limit": settings.max_job_s + settings.visibility_margin_s * 3 // 4,
        # Ride out a Redis restart: results are written again, the broker reconnects.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 30,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # A lost broker connection (a Redis failover) leaves running jobs alone: their
        # containers go on, and their messages are acked on the new connection.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Celery's consumer, surviving a connection lost with a slot free (kombu 5.7).
        "worker_consumer": "trainq.worker.consumer:Consumer",
        "redis_backend_health_check_interval": 10,
        "task_track_started": True,
        # Off by default: a task-sent event costs a submit about 40% of its rate (see
        # benchmarks/submit). Flower then lists a job once a worker receives it; queued
        # jobs are in trainq's own store (trainq list, GET /train, /stats).
        "task_send_sent_event": settings.task_sent_events,
        "worker_send_task_events": True,
        "worker_hijack_root_logger": False,
    }


def sentinel_options(settings: Settings) -> dict[str, Any]:
    """Where kombu and Celery's backend find the primary: the master name, and how to
    talk to the sentinels."""
    password = settings.redis_sentinel_password.get_secret_value()
    return {"master_name": settings.redis_master_name, "sentinel_kwargs": sentinel_kwargs(password)}


def create_app(settings: Settings) -> Celery:
    app = Celery("trainq", include=WORKER_MODULES)
    app.conf.update(celery_config(settings))
    return app


# The app of this process's settings: `celery -A trainq ...` and every trainq process.
app = create_app(get_settings())
