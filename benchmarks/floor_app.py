"""Celery as trainq configures it, with none of trainq's work: the floor of a figure.

:mod:`benchmarks.floors` starts prefork workers of this app (``celery -A
benchmarks.floor_app worker`` with the arguments ``trainq worker`` gives Celery) and
serves :func:`create_api` with uvicorn, on the benchmark's private Redis. The task
runs its command and returns; the endpoint validates a small body and sends the task.
What either costs is what Celery, the prefork pool, FastAPI and uvicorn cost here
before trainq records, schedules, supervises or logs anything.
"""

from __future__ import annotations

import subprocess
from typing import Any

from celery import Celery
from fastapi import FastAPI
from pydantic import BaseModel

from trainq.celery_app import celery_config
from trainq.config import get_settings

TASK = "floor.run"

app = Celery("floor")
app.conf.update(celery_config(get_settings()))


@app.task(name=TASK)  # type: ignore[untyped-decorator]
def run(command: list[str]) -> dict[str, int]:
    """Run ``command`` as a job's process would be, and report its exit code."""
    return {"exit_code": subprocess.run(command, check=False).returncode}


class Submit(BaseModel):
    command: list[str]
    epochs: int = 1


def create_api() -> FastAPI:
    """One endpoint: a validated body, sent as the task; 202 with the task's id."""
    api = FastAPI()

    @api.post("/train", status_code=202)
    def train(body: Submit) -> dict[str, Any]:
        sent = app.send_task(TASK, kwargs={"command": body.command})
        return {"id": sent.id}

    return api
