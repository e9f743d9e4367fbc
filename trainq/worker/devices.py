"""The GPUs a worker owns: parsed from ``--gpus`` and checked (or discovered) with NVML.

``--gpus 0``, ``--gpus 2,3`` or ``--gpus auto``. Ids are NVML indices on this host
(``nvidia-smi``'s order). NVML comes from the optional ``nvidia-ml-py`` package
(``pip install 'trainq[gpu]'``); with ``TRAINQ_SIMULATE_GPUS=1`` ids are taken as
given, without NVML and without UUIDs (a testing aid for machines without GPUs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from trainq.errors import GpuUnavailable, LaunchRefused
from trainq.jobs.spec import JobSpec, parse_ids

_INSTALL_HINT = "install nvidia-ml-py (pip install 'trainq[gpu]')"


@dataclass(frozen=True)
class Gpus:
    """Device ids (NVML indices) and, when NVML told us, their UUIDs in the same order."""

    ids: tuple[int, ...]
    uuids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ids)


def resolve(option: str | None, *, simulate: bool) -> Gpus:
    """The GPUs a ``--gpus`` option names (no option: none, a CPU worker)."""
    if option is None or option.strip() == "":
        return Gpus(())
    if option.strip() == "auto":
        if simulate:
            raise GpuUnavailable(
                "--gpus auto discovers devices with NVML; with TRAINQ_SIMULATE_GPUS=1 "
                "name the simulated ids instead, e.g. --gpus 0,1"
            )
        with _nvml() as nvml:
            count = int(nvml.nvmlDeviceGetCount())
            if count == 0:
                raise GpuUnavailable("--gpus auto: NVML sees no NVIDIA GPU on this host")
            return _with_uuids(nvml, list(range(count)))
    try:
        ids = parse_ids(option)
    except ValueError as exc:
        raise GpuUnavailable(f"--gpus: {exc}") from None
    if simulate:
        return Gpus(tuple(ids))
    with _nvml() as nvml:
        count = int(nvml.nvmlDeviceGetCount())
        missing = [i for i in ids if i >= count]
        if missing:
            raise GpuUnavailable(
                f"--gpus: no GPU {missing} on this host (NVML sees {count}: ids 0-{count - 1})"
                if count
                else f"--gpus: NVML sees no NVIDIA GPU on this host (asked for {ids})"
            )
        return _with_uuids(nvml, ids)


def allot(spec: JobSpec, owned: Gpus, worker: str, queue: str | None) -> Gpus:
    """The GPUs a job gets from a worker owning ``owned``: all of them, in the spec's
    order when it names ids; none for a CPU job.

    Routing sends a GPU job only to a worker whose device set matches it; one that
    arrives elsewhere (a message sent to another queue by hand) is refused
    (:class:`LaunchRefused`) rather than run on devices another job may hold, or on none.
    """
    if not spec.gpu:
        return Gpus(())
    uuids = dict(zip(owned.ids, owned.uuids, strict=False))
    wanted = list(spec.gpu_ids) or list(owned.ids)
    if not owned or set(wanted) != set(owned.ids) or spec.gpu_count != len(owned.ids):
        mine = f"GPUs {list(owned.ids)}" if owned else "no GPUs"
        asked = f"GPUs {list(spec.gpu_ids)}" if spec.gpu_ids else f"{spec.gpu_count} GPU(s)"
        raise LaunchRefused(
            f"the job needs {asked} but {worker} owns {mine}: it was sent to queue "
            f"{queue!r}, not the one trainq.jobs.routing.queue_for gives"
        )
    return Gpus(tuple(wanted), tuple(uuids[i] for i in wanted if i in uuids))


def _with_uuids(nvml: Any, ids: list[int]) -> Gpus:
    uuids = []
    for i in ids:
        uuid = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))
        uuids.append(uuid.decode() if isinstance(uuid, bytes) else str(uuid))
    return Gpus(tuple(ids), tuple(uuids))


@contextmanager
def _nvml() -> Iterator[Any]:
    try:
        import pynvml
    except ImportError:
        raise GpuUnavailable(
            f"GPU workers need NVML: {_INSTALL_HINT}, or set TRAINQ_SIMULATE_GPUS=1 "
            "to simulate GPUs on a machine without them"
        ) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise GpuUnavailable(f"NVML cannot start ({exc}): is an NVIDIA driver installed?") from None
    try:
        yield pynvml
    except pynvml.NVMLError as exc:
        raise GpuUnavailable(f"NVML failed: {exc}") from None
    finally:
        pynvml.nvmlShutdown()
