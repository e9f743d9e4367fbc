"""Builds the runtime the settings name, in the process that will use it."""

from __future__ import annotations

from trainq.config import Settings, inherited_env
from trainq.errors import ConfigError, RuntimeFault
from trainq.jobs.policy import image_allowed
from trainq.jobs.spec import parse_size
from trainq.runtime.base import Runtime
from trainq.runtime.process import ProcessRuntime

# Docker's SDK (and requests under it) is imported only where the docker runtime is
# used: a process-runtime worker never loads it (its RSS; issue 17).


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "docker":
        from trainq.runtime.container import DockerRuntime  # lazy: Docker's SDK

        return DockerRuntime(
            pids_limit=settings.container_pids_limit,
            log_max_size=settings.container_log_max_size,
            log_max_files=settings.container_log_max_files,
            container_user=settings.container_user,
            cluster=settings.key_prefix,
            simulate_gpus=settings.simulate_gpus,
            memory_bytes=parse_size(settings.container_memory),
            cpus=settings.container_cpus,
            allowed=lambda image: image_allowed(image, settings),
        )
    return ProcessRuntime(
        settings.process_python,
        settings.train_script,
        inherited_env(),
        settings.stop_grace_s,
        spool_dir=settings.log_dir / "spool",
    )


def check_runtime(settings: Settings) -> str:
    """Fail early, with what to do, when the configured runtime cannot work; a summary."""
    runtime = make_runtime(settings)
    if settings.runtime != "docker":
        return f"process ({settings.process_python} {settings.train_script})"
    from trainq.runtime.container import DockerRuntime  # lazy: Docker's SDK

    assert isinstance(runtime, DockerRuntime)
    try:
        client = runtime.client
    except RuntimeFault as exc:
        raise ConfigError(
            f"TRAINQ_RUNTIME=docker but {exc}. Start the engine "
            "(bash docker/host.sh docker-up) or set TRAINQ_RUNTIME=process"
        ) from None
    version = client.version().get("Version", "?")
    try:
        client.images.get(settings.default_image)
        image = settings.default_image
    except Exception:
        image = f"{settings.default_image} (missing: build it with `make image`)"
    client.close()
    return f"docker (engine {version}, default image {image})"


def runtime_problem(settings: Settings) -> str | None:
    """What keeps this host's runtime from running jobs now, or None (each heartbeat)."""
    if settings.runtime != "docker":
        return None
    import docker.errors  # lazy: Docker's SDK
    import requests.exceptions
    from docker.client import DockerClient

    try:
        engine = DockerClient.from_env(timeout=5)
    except docker.errors.DockerException as exc:
        return f"no Docker engine answers: {exc}"
    try:
        engine.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return f"the Docker engine does not answer: {exc}"
    finally:
        engine.close()
    return None
