"""The GPU options of the `trainq` CLI, as a user meets them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.harness import BIN, REPO

pytestmark = pytest.mark.e2e


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trainq"), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--gpu-ids", "1,1"], "gpu_ids: duplicated GPU ids"),
        (["--gpu-ids", "one"], "gpu_ids: 'one' is not a comma-separated list"),
        (["--gpus", "-1"], "gpus: Input should be greater than or equal to 0"),
        (["--gpus", "1", "--host", "a b"], "host: String should match pattern"),
    ],
)
def test_submit_refuses_bad_gpu_requests_naming_the_field(
    redis_server: str, options: list[str], message: str
) -> None:
    proc = run("submit", *options)

    assert proc.returncode == 2
    assert message in " ".join(proc.stderr.split())


def without_nvml(folder: Path) -> dict[str, str]:
    """The environment of a process where ``import pynvml`` fails as it does without
    nvidia-ml-py, whether or not it is installed here (`make gpu-check` installs it)."""
    (folder / "pynvml.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pynvml'\", name='pynvml')\n"
    )
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


@pytest.mark.parametrize("gpus", ["auto", "0"])
def test_a_gpu_worker_without_nvml_says_what_to_do(
    redis_server: str, tmp_path: Path, gpus: str
) -> None:
    proc = run("worker", "--gpus", gpus, env=without_nvml(tmp_path))

    assert proc.returncode == 2
    assert "nvidia-ml-py" in proc.stderr
    assert "TRAINQ_SIMULATE_GPUS=1" in proc.stderr


def test_a_gpu_worker_runs_one_job_at_a_time(redis_server: str) -> None:
    proc = run("worker", "--gpus", "0", "--concurrency", "2", env={"TRAINQ_SIMULATE_GPUS": "1"})

    assert proc.returncode == 2
    assert "one job at a time" in proc.stderr
