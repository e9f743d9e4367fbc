"""Builds the runtime the settings name, in the process that will use it."""

from __future__ import annotations

from trainq.config import Settings, inherited_env
from trainq.errors import TrainqError
from trainq.runtime.base import Runtime
from trainq.runtime.process import ProcessRuntime


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "process":
        return ProcessRuntime(settings.process_python, settings.train_script, inherited_env())
    raise TrainqError(
        f"TRAINQ_RUNTIME={settings.runtime} is not available in this version; "
        "set TRAINQ_RUNTIME=process"
    )
