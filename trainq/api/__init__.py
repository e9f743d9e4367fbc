"""trainq's REST API (FastAPI): thin routes over the client functions the CLI uses."""

from trainq.api.app import create_app

__all__ = ["create_app"]
