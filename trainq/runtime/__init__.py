"""Runtimes that run one attempt of a job: docker (containers), process (here), and an
in-memory twin for unit tests. The worker builds one with :mod:`trainq.runtime.factory`."""

from trainq.runtime.base import Exit, Found, Handle, Launch, Output, Runtime
from trainq.runtime.memory import MemoryRuntime
from trainq.runtime.process import ProcessRuntime

__all__ = [
    "Exit",
    "Found",
    "Handle",
    "Launch",
    "MemoryRuntime",
    "Output",
    "ProcessRuntime",
    "Runtime",
]
