"""In-memory runtime for unit tests: attempts are scripted, nothing is started.

A script maps a :class:`Launch` to the lines the attempt prints and its exit code,
so a test can play a successful run, a crash or a preemption without a process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainq.errors import RuntimeFault
from trainq.runtime.base import CountedOutput, Exit, Found, Handle, Launch


@dataclass
class Played:
    lines: list[str]
    exit: Exit


Script = Callable[[Launch], Played]


class MemoryRuntime:
    name = "memory"

    def __init__(self, script: Script) -> None:
        self._script = script
        self.launches: list[Launch] = []
        self.attempts: dict[Handle, Played] = {}
        self.stopped: list[Handle] = []
        self.removed: list[Handle] = []

    def start(self, launch: Launch) -> Handle:
        self.launches.append(launch)
        handle = Handle(launch.job_id, launch.attempt, f"mem-{launch.job_id}-{launch.attempt}")
        self.attempts[handle] = self._script(launch)
        return handle

    def find(self, job_id: str | None = None) -> list[Found]:
        # A played attempt has always already ended.
        return [Found(h, False) for h in self.attempts if job_id in (None, h.job_id)]

    def output(self, handle: Handle, after: str | None = None) -> CountedOutput:
        return CountedOutput.of_lines(self._played(handle).lines, after)

    def wait(self, handle: Handle, timeout_s: float) -> Exit | None:
        return self._played(handle).exit

    def stop(self, handle: Handle, grace_s: float) -> None:
        self.stopped.append(handle)

    def remove(self, handle: Handle) -> None:
        self._played(handle)
        del self.attempts[handle]
        self.removed.append(handle)

    def _played(self, handle: Handle) -> Played:
        if handle not in self.attempts:
            raise RuntimeFault(f"memory runtime knows no attempt {handle.ref}")
        return self.attempts[handle]
