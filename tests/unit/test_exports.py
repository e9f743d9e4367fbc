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
    # The probe is not vacuous: a worker does load the worker side.
    loads = "import sys, trainq.worker.task; assert 'trainq.runtime.base' in sys.modules"
    worker = subprocess.run(
        [sys.executable, "-c", loads],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr


# What a worker's processes must not load (their RSS, issue 17): the API's web stack,
# the remote CLI's HTTP client, Docker's SDK (unless the docker runtime is used), torch.
WORKER_NEVER_LOADS = (
    "docker", "requests", "httpx", "fastapi", "starlette", "uvicorn", "torch", "s3fs",
    "trainq.api", "trainq.ui", "trainq.remote",
)  # fmt: skip
# What `trainq worker` imports (the whole CLI, then the worker side Celery's include
# names) and runs before Celery's worker_main, on the process runtime.
WORKER_PROBE = """
import sys, trainq.cli
from trainq.celery_app import WORKER_MODULES
from trainq.config import Settings
from trainq.runtime.factory import check_runtime, make_runtime, runtime_problem
from trainq.worker import standby, startup
for name in WORKER_MODULES:
    __import__(name)
settings = Settings(runtime="process")
check_runtime(settings)
make_runtime(settings)
assert runtime_problem(settings) is None
"""


def _loaded_after(probe: str, prefixes: tuple[str, ...]) -> list[str]:
    listing = "\nprint(' '.join(m for m in sys.modules if m.split('.')[0] in PREFIXES"
    listing += " or m.startswith(tuple(p + '.' for p in PREFIXES)) or m in PREFIXES))"
    completed = subprocess.run(
        [sys.executable, "-c", f"PREFIXES = {prefixes!r}\n{probe}{listing}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return sorted(completed.stdout.split())


def test_a_process_runtime_worker_never_loads_the_api_stack_http_or_docker() -> None:
    assert _loaded_after(WORKER_PROBE, WORKER_NEVER_LOADS) == []


# What the worker process runs once `trainq worker` has exec'd into it
# (trainq/worker/__main__.py), up to Celery's worker_main.
LEAN_WORKER_PROBE = """
import sys, trainq.worker.__main__
from trainq.celery_app import WORKER_MODULES
from trainq.config import Settings
from trainq.runtime.factory import make_runtime
for name in WORKER_MODULES:
    __import__(name)
make_runtime(Settings(runtime="process"))
"""


def test_the_worker_process_holds_none_of_the_clis_libraries() -> None:
    never = (*WORKER_NEVER_LOADS, "typer", "rich", "trainq.cli")
    assert _loaded_after(LEAN_WORKER_PROBE, never) == []
    # Not vacuous: `trainq worker`, before its exec, does hold them.
    assert {"typer", "rich"} <= set(_loaded_after(WORKER_PROBE, ("typer", "rich")))


def test_a_worker_plan_is_handed_over_whole() -> None:
    from trainq.cluster.registry import WorkerInfo
    from trainq.worker import startup

    info = WorkerInfo(name="w@h", hostname="h", queues=("cpu",), store_error="down: \"x\"",
                      gpu_ids=(0, 2), gpu_uuids=("GPU-a", "GPU-b"), runtime="docker",
                      concurrency=1)  # fmt: skip
    plan = startup.WorkerPlan(info, ["worker", "--concurrency=1"], ("gpu.0-2",))

    argv = startup.exec_argv(plan)

    assert argv[1:3] == ["-m", "trainq.worker"]
    assert startup.from_argv(argv[3:]) == plan
    with pytest.raises(SystemExit, match="trainq worker"):
        startup.from_argv(["worker", "--concurrency=1"])


def test_the_docker_runtime_still_loads_dockers_sdk_when_used() -> None:
    """The probe above is not vacuous: the docker runtime imports the SDK it needs."""
    probe = (
        "import sys\n"
        "from trainq.config import Settings\n"
        "from trainq.runtime.factory import make_runtime\n"
        "assert type(make_runtime(Settings(runtime='docker'))).__name__ == 'DockerRuntime'\n"
    )

    assert "docker.client" in _loaded_after(probe, ("docker",))
