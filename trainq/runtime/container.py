"""Docker runtime: each attempt is a container, found again by its labels.

The container is the truth. It carries ``trainq.job_id``, ``trainq.attempt`` and
``trainq.worker`` labels, so any supervisor can find it (adopt-or-launch). It is
never auto-removed: the exit code, ``State.OOMKilled`` and the output are read
first, then the runner removes it. ``wait(timeout=)`` is an HTTP timeout that
raises, so it is caught; how the output is read is :mod:`trainq.runtime.container_logs`,
what it mounts (checkpoints, outputs, datasets) :mod:`trainq.runtime.container_mounts`.
A client is created lazily, after the worker forks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors
import requests.exceptions
from docker.client import DockerClient
from docker.models.containers import Container
from docker.types import DeviceRequest, LogConfig

from trainq.errors import LaunchRefused, RuntimeFault
from trainq.runtime.base import Exit, Found, Handle, Launch, Output, device_env
from trainq.runtime.container_logs import ENGINE_ERRORS, ApiOutput, stamp_ns
from trainq.runtime.container_mounts import CHECKPOINT_MOUNT, container_env, mounts
from trainq.runtime.json_file import WatchedOutput, readable

__all__ = ["CHECKPOINT_MOUNT", "DockerRuntime", "device_requests"]
_LABEL = "trainq.job_id"
# Containers of one trainq cluster (one key prefix): a reconciler touches no other's.
_CLUSTER_LABEL = "trainq.cluster"
_ALIVE = {"running", "restarting", "paused"}
_SIGKILL_EXIT = 137


def device_requests(gpu_ids: list[int], *, simulate: bool) -> list[DeviceRequest]:
    """Exactly these GPUs of the host, by id: never a count, never ``all``.

    None with simulated GPUs (the job still gets the variables) or for a CPU job.
    """
    if not gpu_ids or simulate:
        return []
    return [DeviceRequest(device_ids=[str(i) for i in gpu_ids], capabilities=[["gpu"]])]


class DockerRuntime:
    name = "docker"

    def __init__(
        self,
        *,
        pids_limit: int,
        log_max_size: str,
        log_max_files: int,
        container_user: str,
        cluster: str,
        simulate_gpus: bool = False,
        memory_bytes: int | None = None,
        cpus: float | None = None,
        allowed: Callable[[str], bool] = lambda _image: True,
    ) -> None:
        self._cluster = cluster
        self._memory_bytes = memory_bytes
        self._cpus = cpus
        self._allowed = allowed
        self._pids_limit = pids_limit
        self._log_config = LogConfig(
            type=LogConfig.types.JSON,
            config={"max-size": log_max_size, "max-file": str(log_max_files)},
        )
        self._user = container_user
        self._simulate_gpus = simulate_gpus
        self._docker: DockerClient | None = None
        self._stopped: set[str] = set()  # containers stop() ended: their 137 is not OOM

    @property
    def client(self) -> DockerClient:
        if self._docker is None:
            try:
                self._docker = DockerClient.from_env()
                self._docker.ping()
            except docker.errors.DockerException as exc:
                self._docker = None
                raise RuntimeFault(f"no Docker engine answers: {exc}") from exc
        return self._docker

    def start(self, launch: Launch) -> Handle:
        if not self._allowed(launch.image):
            # Submit refuses it too; this guards against a message written to Redis.
            raise LaunchRefused(f"image {launch.image!r} is not on this cluster's allow-list")
        digest = self._image_digest(launch.image)
        env = container_env(launch) | device_env(launch.gpu_ids, in_container=True)
        requests_ = device_requests(launch.gpu_ids, simulate=self._simulate_gpus)
        options: dict[str, Any] = {
            "command": launch.command,
            "environment": env,
            "labels": {**launch.labels, _CLUSTER_LABEL: self._cluster},
            "name": f"trainq-{launch.job_id}-{launch.attempt}",
            "detach": True,
            "init": True,  # SIGTERM reaches the script, zombies are reaped
            "auto_remove": False,
            "mounts": mounts(launch, self._user),
            "log_config": self._log_config,
            "device_requests": requests_ or None,
            **self._hardening(),
        }
        cpus = launch.cpus if launch.cpus is not None else self._cpus
        if cpus is not None:
            options["nano_cpus"] = int(cpus * 1e9)
        memory = launch.memory_bytes if launch.memory_bytes is not None else self._memory_bytes
        if memory is not None:
            options["mem_limit"] = memory
            options["memswap_limit"] = memory  # no swap beyond the limit
        if launch.shm_size_bytes is not None:
            options["shm_size"] = launch.shm_size_bytes
        try:
            container = self.client.containers.run(launch.image, **options)
        except docker.errors.ImageNotFound as exc:
            raise LaunchRefused(f"image {launch.image!r} is not on this host") from exc
        except docker.errors.APIError as exc:
            if exc.is_client_error() and exc.status_code != 409:
                raise LaunchRefused(
                    f"the Docker engine refused to start {launch.image!r}: {exc.explanation}"
                ) from exc
            raise RuntimeFault(f"could not start a container: {exc}") from exc
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"could not start a container: {exc}") from exc
        return Handle(launch.job_id, launch.attempt, container.id, launch.image, digest)

    def _hardening(self) -> dict[str, Any]:
        """What every job container gets: it cannot become root nor reach the host."""
        return {
            "user": self._user,  # never uid 0 (settings refuse it)
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": self._pids_limit,
            "privileged": False,
            "network_mode": "bridge",  # never the host's network
        }

    def find(self, job_id: str | None = None) -> list[Found]:
        labels = [f"{_CLUSTER_LABEL}={self._cluster}"]
        labels.append(_LABEL if job_id is None else f"{_LABEL}={job_id}")
        try:
            # A container removed between the listing and its inspection is left out.
            containers = self.client.containers.list(
                all=True, filters={"label": labels}, ignore_removed=True
            )
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"could not list containers: {exc}") from exc
        found = []
        for c in containers:
            if c.status == "created":
                # Its supervisor died between create and start: start it now.
                with contextlib.suppress(*ENGINE_ERRORS):
                    c.start()
                    c.reload()
            attempt = int(c.labels.get("trainq.attempt", "0"))
            owner = c.labels[_LABEL]
            image = c.attrs.get("Config", {}).get("Image")
            digest = c.attrs.get("Image")
            handle = Handle(owner, attempt, c.id, image, digest)
            found.append(Found(handle, c.status in _ALIVE))
        return found

    def output(self, handle: Handle, after: str | None = None) -> Output:
        container = self._container(handle)
        on_disk = readable(container.attrs.get("LogPath"))
        if on_disk is not None:
            # Same host: read the engine's log files, which costs dockerd nothing; a
            # thread blocked in the engine's wait says the moment the container ends.
            return WatchedOutput(on_disk, container.id, after, self.client.api.api_version)
        return ApiOutput(
            lambda since: self._log_stream(container, since),
            lambda: self._is_alive(container),
            after,
        )

    def wait(self, handle: Handle, timeout_s: float) -> Exit | None:
        container = self._container(handle)
        try:
            status = container.wait(timeout=timeout_s)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            return None
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"lost the container {handle.ref[:12]}: {exc}") from exc
        code = int(status.get("StatusCode", -1))
        try:
            container.reload()
            state = container.attrs["State"]
            limit = container.attrs["HostConfig"].get("Memory") or 0
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"lost the container {handle.ref[:12]}: {exc}") from exc
        # OOMKilled alone is unreliable and 137 only means SIGKILL: trust OOMKilled, or
        # a SIGKILL under a memory limit that nobody else sent (stop() records its own).
        oom = bool(state.get("OOMKilled")) or (
            code == _SIGKILL_EXIT and limit > 0 and handle.ref not in self._stopped
        )
        return Exit(code, oom_killed=oom, ran_s=_run_time_s(state))

    def stop(self, handle: Handle, grace_s: float) -> None:
        container = self._container(handle)
        self._stopped.add(handle.ref)
        try:
            container.stop(timeout=max(int(grace_s), 0))  # SIGTERM, grace, SIGKILL
        except docker.errors.NotFound:
            return
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"could not stop {handle.ref[:12]}: {exc}") from exc

    def remove(self, handle: Handle) -> None:
        self._stopped.discard(handle.ref)
        try:
            self.client.api.remove_container(handle.ref, force=True)
        except docker.errors.NotFound:
            return
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"could not remove {handle.ref[:12]}: {exc}") from exc

    def _image_digest(self, image: str) -> str:
        """The image's id, pulling it first if it is not here; LaunchRefused if none."""
        try:
            return str(self.client.images.get(image).id)
        except docker.errors.ImageNotFound:
            pass
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"could not inspect image {image!r}: {exc}") from exc
        try:
            return str(self.client.images.pull(image).id)
        except (docker.errors.ImageNotFound, docker.errors.APIError) as exc:
            raise LaunchRefused(
                f"image {image!r} is not on this host and could not be pulled "
                f"({getattr(exc, 'explanation', None) or exc}); build it or push it first"
            ) from exc

    def _container(self, handle: Handle) -> Container:
        try:
            return self.client.containers.get(handle.ref)
        except docker.errors.NotFound as exc:
            raise RuntimeFault(f"container {handle.ref[:12]} of {handle.job_id} is gone") from exc
        except ENGINE_ERRORS as exc:
            raise RuntimeFault(f"could not inspect {handle.ref[:12]}: {exc}") from exc

    def _log_stream(self, container: Container, since: float | None) -> Iterator[bytes]:
        try:
            stream = container.logs(
                stdout=True, stderr=True, stream=True, follow=True, timestamps=True, since=since
            )
            yield from stream
        except ENGINE_ERRORS:
            return  # a dropped stream: the caller checks the container and resumes

    def _is_alive(self, container: Container) -> bool:
        try:
            container.reload()
        except docker.errors.NotFound:
            return False
        except ENGINE_ERRORS:
            return True  # the engine blinked; try again
        return container.status in _ALIVE


def _run_time_s(state: dict[str, Any]) -> float | None:
    """FinishedAt - StartedAt of a container, as the engine measured them."""
    try:
        started, finished = stamp_ns(state["StartedAt"]), stamp_ns(state["FinishedAt"])
    except (KeyError, AttributeError):
        return None
    if started is None or finished is None:
        return None
    return (finished - started) / 1e9
