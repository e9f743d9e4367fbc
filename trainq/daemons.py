"""The long-running commands: ``trainq worker``, ``trainq api`` and ``trainq flower``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from trainq.config import get_settings
from trainq.console import cli, err, fail
from trainq.errors import TrainqError
from trainq.logs import configure as configure_logs


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
    from trainq import startup, workers
    from trainq.runtime.factory import check_runtime
    from trainq.tasks import app

    settings = get_settings()
    try:
        runtime = check_runtime(settings)  # fail here, not in every job
        plan = startup.plan(
            settings,
            name=name,
            gpus=gpus,
            concurrency=concurrency,
            loglevel=loglevel,
            runtime=settings.runtime,
        )
    except TrainqError as exc:
        raise fail(str(exc), 2) from None
    workers.declare(plan.info)  # the pool's children inherit it: they know their GPUs
    os.nice(settings.worker_nice)  # the jobs come first; the process runtime's too (reset)
    info = plan.info
    owned = ",".join(str(i) for i in info.gpu_ids) or "none"
    simulated = " (simulated)" if info.simulated_gpus else ""
    err.print(
        f"trainq worker: runtime={runtime} gpus={owned}{simulated} "
        f"queues={','.join(info.queues)} concurrency={info.concurrency} "
        f"redis={settings.redis_url}",
        highlight=False,
    )
    app.worker_main(plan.celery_argv)


@cli.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes")] = None,
) -> None:
    """Serve the REST API (Swagger at /docs); needs TRAINQ_API_TOKENS."""
    from trainq.server import serve_api

    settings = get_settings()
    configure_logs("api", settings.log_dir)
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
    from trainq.server import serve_flower

    settings = get_settings()
    try:
        serve_flower(settings, port or settings.flower_port, address)
    except TrainqError as exc:
        raise fail(str(exc), 2) from None
