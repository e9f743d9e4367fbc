"""Starting trainq's HTTP services: the REST API (uvicorn) and Flower.

Both are closed by default: the API needs ``TRAINQ_API_TOKENS`` and Flower needs
``TRAINQ_FLOWER_BASIC_AUTH``, unless ``TRAINQ_DEV_MODE`` is set explicitly.
Flower is started through the same Celery app as every other process, so its
broker options (visibility timeout, key prefix) are the workers'.
"""

from __future__ import annotations

import os

from trainq.api.app import ApiRefused
from trainq.config import Settings
from trainq.tally import DURATION_BUCKETS_S


def serve_api(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the API until interrupted; :class:`ApiRefused` when it may not start."""
    import uvicorn

    from trainq.api.app import create_app

    create_app(settings)  # refuse here, with the reason, rather than in each process
    uvicorn.run(
        "trainq.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # trainq's JSON log (TrainingApi_YYYYMMDD.log) is configured
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def serve_flower(settings: Settings, port: int, address: str) -> None:
    """Run Flower with basic auth and job-sized runtime histogram buckets."""
    from trainq.tasks import app

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
