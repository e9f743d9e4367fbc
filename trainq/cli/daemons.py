"""The long-running commands: ``trainq worker``, ``trainq api`` and ``trainq flower``.

Each imports what it starts when it runs, so the job commands never load the worker
side (the runner, the runtimes, Docker's SDK) or the API's web stack.
``trainq worker`` is the CLI's one door into the worker side. Both HTTP services are
closed by default: the API needs ``TRAINQ_API_TOKENS`` and Flower
``TRAINQ_FLOWER_BASIC_AUTH``, unless ``TRAINQ_DEV_MODE`` is set explicitly. Flower
runs on the same Celery app as every other process, so its broker options
(visibility timeout, key prefix) are the workers'.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from trainq import connections
from trainq.celery_app import app
from trainq.cli.app import cli, err, fail
from trainq.config import Settings, get_settings
from trainq.errors import ApiRefused, TrainqError
from trainq.logs import components
from trainq.store.totals import DURATION_BUCKETS_S


@cli.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
    name: Annotated[str, typer.Option(help="Worker node name")] = "trainq@%h",
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
    gpus: Annotated[
        str | None,
        typer.Option(help="Own these GPUs (0, 2,3 or auto) and run one job at a time on them"),
    ] = None,
) -> None:
    """Start a prefork Celery worker that runs jobs on the configured runtime."""
    from trainq.runtime.factory import check_runtime
    from trainq.worker import standby, startup

    settings = get_settings()
    try:
        runtime = check_runtime(settings)  # fail here, not in every job
        store_error = standby.store_problem(connections.artifact_store(settings))
        plan = startup.plan(
            settings,
            name=name,
            gpus=gpus,
            concurrency=concurrency,
            loglevel=loglevel,
            runtime=settings.runtime,
            store_error=store_error,
        )
    except TrainqError as exc:
        raise fail(str(exc), 2) from None
    if store_error:
        err.print(f"trainq worker: {standby.standby_note(settings, store_error)}", highlight=False)
    startup.yield_to_jobs(settings.worker_nice)  # the process runtime's jobs reset it
    info = plan.info
    owned = ",".join(str(i) for i in info.gpu_ids) or "none"
    simulated = " (simulated)" if info.simulated_gpus else ""
    err.print(
        f"trainq worker: runtime={runtime} gpus={owned}{simulated} "
        f"queues={','.join(info.queues or plan.deferred)} concurrency={info.concurrency} "
        f"redis={settings.redis_url} artifacts={connections.artifact_store(settings).url}",
        highlight=False,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # The worker itself runs lean: without the CLI's libraries (trainq/worker/__main__.py).
    argv = startup.exec_argv(plan)
    os.execv(argv[0], argv)


@cli.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes")] = None,
) -> None:
    """Serve the REST API (Swagger at /docs); needs TRAINQ_API_TOKENS."""
    from trainq.api.server import serve_api

    settings = get_settings()
    components.configure("api", settings.log_dir)
    try:
        serve_api(
            settings,
            host or settings.api_host,
            port or settings.api_port,
            workers or settings.api_workers,
        )
    except TrainqError as exc:
        raise fail(str(exc), 2) from None


@cli.command()
def flower(
    port: Annotated[int | None, typer.Option(help="Port (default 5555)")] = None,
    address: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
) -> None:
    """Serve Flower with basic auth (TRAINQ_FLOWER_BASIC_AUTH) and trainq's broker options."""
    settings = get_settings()
    try:
        serve_flower(settings, port or settings.flower_port, address)
    except TrainqError as exc:
        raise fail(str(exc), 2) from None


def serve_flower(settings: Settings, port: int, address: str) -> None:
    """Run Flower with basic auth and job-sized runtime histogram buckets."""
    auth = settings.flower_auth_list
    if not auth and not settings.dev_mode:
        raise ApiRefused(
            "no Flower password: set TRAINQ_FLOWER_BASIC_AUTH=user:password, or "
            "TRAINQ_DEV_MODE=1 to run an open Flower on a development machine"
        )
    if any(":" not in pair for pair in auth):
        raise ApiRefused("TRAINQ_FLOWER_BASIC_AUTH: each entry must be user:password")
    if auth:
        # Through Flower's environment, not argv, where `ps` would show the password.
        os.environ["FLOWER_BASIC_AUTH"] = ",".join(auth)
    buckets = ",".join(str(float(b)) for b in DURATION_BUCKETS_S)
    app.start(
        [
            "flower",
            f"--port={port}",
            f"--address={address}",
            f"--task_runtime_metric_buckets={buckets}",
        ]
    )
