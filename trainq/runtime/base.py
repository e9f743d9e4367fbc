"""The runtime protocol: how a runner starts, follows and cleans up one attempt.

A runtime runs one attempt of a job as an isolated unit (a container, a process
group) that it can find again by job id. The Docker runtime implements the same
protocol; the runner never knows which one it drives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Where a container sees its output directory and its datasets (/data/<name>).
OUTPUT_MOUNT = "/outputs"
DATA_MOUNT = "/data"


@dataclass(frozen=True)
class Launch:
    """Everything a runtime needs to start one attempt."""

    job_id: str
    attempt: int
    image: str
    command: list[str] | None  # None: the runtime's standard train.py command
    env: dict[str, str]  # the job's variables, contract variables included
    checkpoint_dir: Path  # on the host; mounted or handed to the job
    worker: str
    cpus: float | None = None
    memory_bytes: int | None = None
    shm_size_bytes: int | None = None
    gpu_ids: list[int] = field(default_factory=list)
    # On the host; mounted at /outputs (or handed over) and uploaded when the attempt ends.
    output_dir: Path | None = None
    # Declared datasets the job asked for, by name: host paths, mounted read-only.
    datasets: dict[str, Path] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return {
            "trainq.job_id": self.job_id,
            "trainq.attempt": str(self.attempt),
            "trainq.worker": self.worker,
        }


@dataclass(frozen=True)
class Handle:
    """A started attempt: ``ref`` is the runtime's own id (container id, pid)."""

    job_id: str
    attempt: int
    ref: str
    image: str | None = None  # the image that runs, where the runtime uses images
    image_digest: str | None = None


@dataclass(frozen=True)
class Exit:
    """How an attempt ended."""

    code: int
    oom_killed: bool = False
    # The attempt's own run time, where the runtime knows it; not part of equality.
    ran_s: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Found:
    """An attempt the runtime still knows of, and whether it still runs."""

    handle: Handle
    running: bool


class Output(Protocol):
    """An attempt's output in batches of lines as they arrive (a chunk read at once),
    and where the batches given so far end."""

    def batches(self) -> Iterator[list[str]]:
        """Every line, in order, in non-empty lists: one per read of the output."""

    def __iter__(self) -> Iterator[str]:
        """Every line, in order (the batches' lines one by one)."""

    @property
    def position(self) -> str | None:
        """The place after the last batch given (None before the first): pass it as
        ``after`` to :meth:`Runtime.output` to go on from there, e.g. in another process."""


class BatchedOutput:
    """An :class:`Output`'s lines one by one, from its :meth:`batches`."""

    def batches(self) -> Iterator[list[str]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:
        for batch in self.batches():
            yield from batch


class Runtime(Protocol):
    name: str

    def start(self, launch: Launch) -> Handle:
        """Start the attempt; raise :class:`~trainq.errors.RuntimeFault` if it cannot."""

    def find(self, job_id: str | None = None) -> list[Found]:
        """Attempts of ``job_id`` (of every job when None) that exist, running or
        exited, not yet removed."""

    def output(self, handle: Handle, after: str | None = None) -> Output:
        """The attempt's stdout and stderr, line by line, until it closes them; with
        ``after``, only the lines after that :attr:`Output.position`."""

    def wait(self, handle: Handle, timeout_s: float) -> Exit | None:
        """The exit, or None if it still runs after ``timeout_s``."""

    def stop(self, handle: Handle, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; returns once it has ended."""

    def remove(self, handle: Handle) -> None:
        """Forget the ended attempt and free what it held."""


def contract_env(
    launch: Launch,
    checkpoint_dir: str,
    output_dir: str | None = None,
    datasets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables every attempt sees, wherever it runs (the environment contract):
    its directories as the attempt sees them, and ``TRAINQ_DATASET_<NAME>`` per dataset."""
    env = {
        **launch.env,
        "TRAINQ_JOB_ID": launch.job_id,
        "TRAINQ_ATTEMPT": str(launch.attempt),
        "TRAINQ_CHECKPOINT_DIR": checkpoint_dir,
        "PYTHONUNBUFFERED": "1",
    }
    if output_dir is not None:
        env["TRAINQ_OUTPUT_DIR"] = output_dir
    for name, path in (datasets or {}).items():
        env[dataset_var(name)] = path
    return env


def dataset_var(name: str) -> str:
    """The variable naming a dataset's directory: ``TRAINQ_DATASET_`` and the name in
    upper case, every character other than a letter or digit made ``_``."""
    return "TRAINQ_DATASET_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def device_env(gpu_ids: list[int], *, in_container: bool) -> dict[str, str]:
    """The variables that give an attempt exactly ``gpu_ids`` (host NVML indices), or none.

    ``NVIDIA_VISIBLE_DEVICES`` names the host's ids (as Docker's device request does);
    ``CUDA_VISIBLE_DEVICES`` is what CUDA in the attempt must use: the host's ids for a
    local process (in PCI bus order, NVML's, not CUDA's default fastest-first), but
    ``0..k-1`` in a container, where the runtime renumbers the devices it was given from 0
    (the host's ids there would hide them). ``TRAINQ_GPU_IDS`` tells the job its host ids.
    A CPU job sees no GPU, even on a GPU host.
    """
    if not gpu_ids:
        hidden = {"CUDA_VISIBLE_DEVICES": ""}
        return {**hidden, "NVIDIA_VISIBLE_DEVICES": "void"} if in_container else hidden
    host_ids = ",".join(str(i) for i in gpu_ids)
    cuda_ids = ",".join(str(i) for i in range(len(gpu_ids))) if in_container else host_ids
    return {
        "CUDA_VISIBLE_DEVICES": cuda_ids,
        "NVIDIA_VISIBLE_DEVICES": host_ids,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "TRAINQ_GPU_IDS": host_ids,
    }


def discard(runtime: Runtime, found: Found, grace_s: float) -> None:
    """Stop the attempt (SIGTERM, grace, SIGKILL; nothing if it has ended), then remove it."""
    runtime.stop(found.handle, grace_s)
    runtime.remove(found.handle)


class CountedOutput(BatchedOutput):
    """An :class:`Output` whose position is how many lines it gave: for runtimes that
    can replay an attempt's output from its first line (a spool file, a script)."""

    def __init__(self, batches: Iterable[list[str]], after: str | None = None) -> None:
        self._batches = batches
        self._skip = int(after) if after else 0
        self._given = 0

    @classmethod
    def of_lines(cls, lines: Iterable[str], after: str | None = None) -> CountedOutput:
        """Lines that come one at a time (a script, a test), each a batch of its own."""
        return cls(([line] for line in lines), after)

    @property
    def position(self) -> str | None:
        return str(self._given) if self._given else None

    def batches(self) -> Iterator[list[str]]:
        for batch in self._batches:
            if not batch:
                continue
            skipped = min(max(self._skip - self._given, 0), len(batch))
            self._given += len(batch)
            if skipped < len(batch):
                yield batch[skipped:] if skipped else batch
