"""Live workers (interim: replaced by the GPU routing branch's registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainq.config import Settings


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    queues: list[str]
    gpus: list[int] = field(default_factory=list)
    runtime_error: str | None = None


def live_workers(settings: Settings) -> list[WorkerInfo]:
    return []
