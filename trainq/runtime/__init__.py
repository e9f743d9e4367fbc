"""Runtimes that run one attempt of a job: process (here), in-memory (tests), docker."""

from trainq.runtime.base import EXIT_PREEMPTED, Exit, Found, Handle, Launch, Runtime
from trainq.runtime.memory import MemoryRuntime
from trainq.runtime.process import ProcessRuntime

__all__ = [
    "EXIT_PREEMPTED",
    "Exit",
    "Found",
    "Handle",
    "Launch",
    "MemoryRuntime",
    "ProcessRuntime",
    "Runtime",
]
