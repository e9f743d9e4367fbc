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


HA_SECRETS = {
    **SECRETS,
    "TRAINQ_REDIS_SENTINEL_PASSWORD": "sentinel-pw",
    "TRAINQ_REDIS_SENTINELS": "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379",
}
HA_SERVICES = {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def rendered_services(tmp_path: Path, env: dict[str, str], profile: str) -> dict[str, Any]:
    """The services that ``--profile profile up`` starts: docker-compose 1.x's
    ``config`` lists every service whatever the profile, ``docker compose`` only these."""
    rendered = compose(tmp_path, env, "--profile", profile, "config")
    assert rendered.returncode == 0, rendered.stderr
    services: dict[str, Any] = yaml.safe_load(rendered.stdout)["services"]
    return {name: service for name, service in services.items()
            if profile in service.get("profiles", [profile])}  # fmt: skip


@pytest.fixture
def stack(tmp_path: Path) -> dict[str, Any]:
    return rendered_services(tmp_path, SECRETS, "gpu")


@pytest.fixture
def ha_stack(tmp_path: Path) -> dict[str, Any]:
    return rendered_services(tmp_path, HA_SECRETS, "ha")


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


def test_the_ha_profile_adds_a_replica_and_three_sentinels(ha_stack: dict[str, Any]) -> None:
    assert set(ha_stack) == {"redis", "worker", "api", "flower", *HA_SERVICES}
    assert all("healthcheck" in service for service in ha_stack.values())
    for name in HA_SERVICES:
        assert ha_stack[name]["profiles"] == ["ha"]
        assert ha_stack[name]["restart"] == "unless-stopped"

    replica = " ".join(ha_stack["redis-replica"]["command"])
    assert "--replicaof redis 6379" in replica and "--masterauth redis-pw" in replica
    assert "--requirepass redis-pw" in replica and "--appendonly yes" in replica
    assert "--replica-announce-ip redis-replica" in replica
    primary = " ".join(ha_stack["redis"]["command"])
    assert "--masterauth redis-pw" in primary and "--replica-announce-ip redis" in primary


def test_the_trainq_services_find_the_primary_through_the_sentinels(
    ha_stack: dict[str, Any],
) -> None:
    for name in ("worker", "api", "flower"):
        env = ha_stack[name]["environment"]
        assert env["TRAINQ_REDIS_SENTINELS"] == HA_SECRETS["TRAINQ_REDIS_SENTINELS"]
        assert env["TRAINQ_REDIS_MASTER_NAME"] == "trainq"
        assert env["TRAINQ_REDIS_PASSWORD"] == "redis-pw"
        assert env["TRAINQ_REDIS_SENTINEL_PASSWORD"] == "sentinel-pw"


def test_the_sentinels_monitor_redis_with_a_quorum_of_two(ha_stack: dict[str, Any]) -> None:
    script = (REPO / "docker" / "sentinel.sh").read_text()
    assert "sentinel monitor $name $primary $port $quorum" in script
    announced = set()
    for name in SENTINELS:
        env = ha_stack[name]["environment"]
        assert env["SENTINEL_MONITOR"] == "redis 6379 2"
        assert (env["SENTINEL_DOWN_AFTER_MS"], env["SENTINEL_FAILOVER_TIMEOUT_MS"]) == (
            "2000",
            "10000",
        )
        assert env["SENTINEL_PARALLEL_SYNCS"] == "1"
        assert env["TRAINQ_REDIS_PASSWORD"] == "redis-pw"
        assert env["TRAINQ_REDIS_SENTINEL_PASSWORD"] == "sentinel-pw"
        announced.add(env["SENTINEL_ANNOUNCE"])
    assert announced == set(SENTINELS)


def test_without_sentinels_the_trainq_services_use_redis_directly(
    stack: dict[str, Any],
) -> None:
    for name in ("worker", "gpu-worker", "api", "flower"):
        assert stack[name]["environment"]["TRAINQ_REDIS_SENTINELS"] == ""
