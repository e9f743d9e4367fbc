"""docker-compose.yml as Compose itself reads it: secure defaults, one socket mount."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import REPO

pytestmark = pytest.mark.e2e

SECRETS = {
    "TRAINQ_REDIS_PASSWORD": "redis-pw",
    "TRAINQ_API_TOKENS": "api-token",
    "TRAINQ_FLOWER_BASIC_AUTH": "admin:flower-pw",
}


def compose(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Compose on the repository's file, with only ``env`` (no .env file is read)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.fail("no Compose client: run `make test`, which installs docker-compose")
    return subprocess.run(
        [*command, "-f", str(REPO / "docker-compose.yml"), "--project-directory", str(tmp_path),
         *args],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}, check=False,
    )  # fmt: skip


@pytest.fixture
def stack(tmp_path: Path) -> dict[str, Any]:
    rendered = compose(tmp_path, SECRETS, "--profile", "gpu", "config")
    assert rendered.returncode == 0, rendered.stderr
    config: dict[str, Any] = yaml.safe_load(rendered.stdout)
    return config["services"]  # type: ignore[no-any-return]


def test_compose_accepts_the_file_with_the_secrets_set(stack: dict[str, Any]) -> None:
    assert set(stack) == {"redis", "worker", "gpu-worker", "api", "flower"}
    assert all("healthcheck" in service for service in stack.values())


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_run_without_each_secret(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}

    rendered = compose(tmp_path, env, "config", "-q")

    assert rendered.returncode != 0
    assert missing in rendered.stderr


def test_only_the_workers_mount_the_docker_socket(stack: dict[str, Any]) -> None:
    def mounts_socket(service: dict[str, Any]) -> bool:
        return any("docker.sock" in str(volume) for volume in service.get("volumes", []))

    assert {name for name, s in stack.items() if mounts_socket(s)} == {"worker", "gpu-worker"}


def test_redis_is_durable_closed_and_never_evicts(stack: dict[str, Any]) -> None:
    command = " ".join(stack["redis"]["command"])

    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "--requirepass redis-pw" in command
    assert "--maxmemory-policy noeviction" in command
    url = stack["worker"]["environment"]["TRAINQ_REDIS_URL"]
    assert url == "redis://:redis-pw@redis:6379/0"


def test_the_api_and_flower_need_credentials_and_listen_on_localhost(
    stack: dict[str, Any],
) -> None:
    assert stack["api"]["environment"]["TRAINQ_API_TOKENS"] == "api-token"
    assert stack["flower"]["environment"]["TRAINQ_FLOWER_BASIC_AUTH"] == "admin:flower-pw"
    for name in ("api", "flower"):
        (port,) = stack[name]["ports"]
        host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
        assert host_ip == "127.0.0.1"
    assert "gpu" in stack["gpu-worker"]["profiles"]
    assert "--gpus" in stack["gpu-worker"]["command"]
