"""The package's public surface, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trainq


@pytest.mark.parametrize("name", trainq.__all__)
def test_every_public_name_exists(name: str) -> None:
    assert getattr(trainq, name) is not None


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from trainq import *", namespace)

    exported = {name for name in namespace if name != "__builtins__"}
    assert exported == set(trainq.__all__)
    assert len(trainq.__all__) == len(set(trainq.__all__))


def test_errors_share_one_base() -> None:
    for name in trainq.__all__:
        value = getattr(trainq, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, trainq.TrainqError)


def test_submit_training_is_the_registered_task() -> None:
    from trainq import submit_training

    assert submit_training.name == "trainq.submit_training"
    assert "trainq.submit_training" in trainq.app.tasks
    assert trainq.app.tasks["trainq.submit_training"].name == submit_training.name


def test_import_does_not_load_torch() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "import trainq, sys; assert 'torch' not in sys.modules"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("module", ["trainq.api.app", "trainq.cli", "trainq"])
def test_callers_never_load_the_worker_side_or_docker(module: str) -> None:
    """The API and CLI processes never import the runner, the runtimes or Docker's SDK."""
    probe = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] == 'docker' or m.startswith(('trainq.worker', 'trainq.runtime')))\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )

    assert completed.returncode == 0, completed.stderr
    # The probe is not vacuous: a worker does load them.
    worker = subprocess.run(
        [sys.executable, "-c", "import sys, trainq.worker.task; assert 'docker' in sys.modules"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
