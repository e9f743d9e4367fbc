"""Process runtime: each attempt is a local subprocess in its own process group.

The fallback for hosts without a Docker engine, and the fast path for tests. It keeps
the container's environment contract (``TRAINQ_JOB_ID``, ``TRAINQ_ATTEMPT``,
``TRAINQ_CHECKPOINT_DIR``, ``TRAINQ_OUTPUT_DIR``, ``TRAINQ_DATASET_<NAME>``, the
hyper-parameters), with host paths in place of the mounts, but not its isolation:
the job runs as the worker's user, with the worker's Python unless the spec names a
command. It cannot make a dataset read-only (no ``TRAINQ_DATA_DIR`` either, as there
is no one folder of them): the job could write whatever the worker's user may.
Attempts are known to the worker process that started them only: a process
cannot be re-attached after its worker died. Before launching, an orphan of the
same job (a process group whose environment names the job, left by a killed
worker) is stopped (SIGTERM lets train.py checkpoint), so two attempts never run at
once and the new one resumes from the orphan's checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from trainq.errors import LaunchRefused, RuntimeFault
from trainq.logs.lines import LineSplitter, text
from trainq.runtime.base import (
    CountedOutput,
    Exit,
    Found,
    Handle,
    Launch,
    contract_env,
    device_env,
)

_READ_CHUNK = 1 << 16
_IDLE_POLL_S = 0.05


class ProcessRuntime:
    name = "process"

    def __init__(
        self,
        python: str,
        train_script: Path,
        base_env: dict[str, str],
        stop_grace_s: float,
        spool_dir: Path,
    ) -> None:
        self._standard_command = [python, str(train_script)]
        self._stop_grace_s = stop_grace_s
        self._spool_dir = spool_dir
        self._spools: dict[Handle, Path] = {}
        self._started: dict[Handle, float] = {}
        self._base_env = base_env
        self._procs: dict[Handle, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, launch: Launch) -> Handle:
        self._stop_orphans(launch.job_id)
        output_dir = str(launch.output_dir) if launch.output_dir is not None else None
        datasets = {name: str(path) for name, path in launch.datasets.items()}
        env = {
            **self._base_env,
            **contract_env(launch, str(launch.checkpoint_dir), output_dir, datasets),
        }
        env |= device_env(launch.gpu_ids, in_container=False)
        command = launch.command or self._standard_command
        spool = self._spool_dir / f"{launch.job_id}.{launch.attempt}.out"
        try:
            launch.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            if launch.output_dir is not None:
                launch.output_dir.mkdir(parents=True, exist_ok=True)
            self._spool_dir.mkdir(parents=True, exist_ok=True)
            out = spool.open("wb")
        except OSError as exc:
            raise RuntimeFault(f"cannot prepare the attempt's files: {exc}") from exc
        # Output goes to a file, never a pipe: a slow reader can not stall the job.
        with out:
            try:
                proc = subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                spool.unlink(missing_ok=True)
                raise LaunchRefused(f"cannot start {command[0]!r}: {exc.strerror or exc}") from exc
        _normal_priority(proc.pid)
        handle = Handle(launch.job_id, launch.attempt, str(proc.pid))
        with self._lock:
            self._procs[handle] = proc
            self._started[handle] = time.monotonic()
            self._spools[handle] = spool
        return handle

    def find(self, job_id: str | None = None) -> list[Found]:
        with self._lock:
            procs = [(h, p) for h, p in self._procs.items() if job_id in (None, h.job_id)]
        return [Found(handle, proc.poll() is None) for handle, proc in procs]

    def output(self, handle: Handle, after: str | None = None) -> CountedOutput:
        return CountedOutput(self._batches(handle), after)

    def _batches(self, handle: Handle) -> Iterator[list[str]]:
        proc = self._proc(handle)
        with self._lock:
            spool = self._spools[handle]
        splitter = LineSplitter()
        with spool.open("rb") as stream, _ExitSignal(proc) as exited:
            while True:
                chunk = stream.read(_READ_CHUNK)
                if chunk:
                    yield splitter.feed(chunk)
                    continue
                if proc.poll() is not None:
                    # Ended: what it wrote before exiting is all in the file now.
                    last = splitter.feed(stream.read())
                    rest = splitter.rest()  # a last line without a newline
                    yield [*last, text(rest)] if rest else last
                    return
                exited.wait(_IDLE_POLL_S)  # wakes at once when it exits

    def wait(self, handle: Handle, timeout_s: float) -> Exit | None:
        proc = self._proc(handle)
        with self._lock:
            started = self._started.get(handle, time.monotonic())
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        # Report a signal death as a shell (and Docker) would: 128 + signal number.
        return Exit(128 - code if code < 0 else code, ran_s=time.monotonic() - started)

    def stop(self, handle: Handle, grace_s: float) -> None:
        proc = self._proc(handle)
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
        # Whatever the attempt started in its group goes too, even once the leader is gone.
        self._signal_group(proc, signal.SIGKILL)
        proc.wait()

    def remove(self, handle: Handle) -> None:
        with self._lock:
            self._procs.pop(handle, None)
            self._started.pop(handle, None)
            spool = self._spools.pop(handle, None)
        if spool is not None:
            spool.unlink(missing_ok=True)

    def _proc(self, handle: Handle) -> subprocess.Popen[bytes]:
        with self._lock:
            proc = self._procs.get(handle)
        if proc is None:
            raise RuntimeFault(f"process runtime knows no attempt {handle.ref} of {handle.job_id}")
        return proc

    def _stop_orphans(self, job_id: str) -> None:
        with self._lock:
            ours = {proc.pid for proc in self._procs.values()}
        orphans = [pid for pid in _group_leaders_of(job_id) if pid not in ours]
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_grace_s
        while orphans and time.monotonic() < deadline:
            orphans = [pid for pid in orphans if _alive(pid)]
            time.sleep(0.05)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)


class _ExitSignal:
    """Sleeps until a process exits or a timeout passes, whichever comes first.

    A pidfd (Linux >= 5.3) becomes readable when the process exits, so the reader
    wakes at once instead of at its next poll; elsewhere it is a plain sleep.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._fd: int | None = None

    def __enter__(self) -> _ExitSignal:
        with contextlib.suppress(AttributeError, OSError):  # no pidfd here, or reaped
            self._fd = os.pidfd_open(self._proc.pid)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def wait(self, timeout_s: float) -> None:
        if self._fd is None:
            time.sleep(timeout_s)
        else:
            select.select([self._fd], [], [], timeout_s)


def _group_leaders_of(job_id: str) -> list[int]:
    """Process-group leaders whose environment says they run ``job_id``."""
    marker = f"TRAINQ_JOB_ID={job_id}".encode()
    leaders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            # The cheap test first: most processes are no group leader, and reading
            # another process's environment costs a file read.
            if os.getpgid(pid) == pid and marker in (entry / "environ").read_bytes().split(b"\0"):
                leaders.append(pid)
        except (OSError, ProcessLookupError):
            continue  # gone, or not ours to read
    return leaders


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _normal_priority(group: int) -> None:
    """Undo the worker's niceness in the attempt's process group, every thread of it.

    Done from here rather than in the child (``preexec_fn``): a ``preexec_fn`` makes
    Python fork the whole worker instead of vfork, a fifth of a short job's cost.
    """
    # only root may lower a niceness; a group that is gone already needs nothing
    with contextlib.suppress(PermissionError, ProcessLookupError):
        os.setpriority(os.PRIO_PGRP, group, 0)
