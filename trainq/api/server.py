"""Serving the REST API with uvicorn (``trainq api``).

Closed by default: every call but ``/health`` needs a token (a user's, or one of
``TRAINQ_API_TOKENS``) unless ``TRAINQ_DEV_MODE`` is set explicitly.
"""

from __future__ import annotations

from trainq.config import Settings


def serve_api(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the API until interrupted; a :class:`~trainq.errors.ConfigError` when it may
    not start."""
    import uvicorn

    from trainq.api.app import create_app

    create_app(settings)  # fail here, with the reason, rather than in each process
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
