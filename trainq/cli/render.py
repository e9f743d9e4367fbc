"""How the CLI shows a job to a person: a live progress bar and a record summary."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from trainq.jobs.record import JobRecord


class ProgressView:
    """A progress bar on a terminal, one plain line per change elsewhere."""

    def __init__(self, console: Console, job_id: str) -> None:
        self._console = console
        self._job_id = job_id
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last_line = ""

    def __enter__(self) -> Self:
        if self._console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} epochs"),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._job_id[:8], total=None, detail="queued")
        return self

    def update(self, record: JobRecord) -> None:
        p = record.progress
        detail = record.status.value
        if p.loss is not None:
            detail += f"  loss {p.loss:.4f}"
        if p.eta_s is not None and not record.status.is_terminal:
            detail += f"  eta {p.eta_s:.0f}s"
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=p.epochs, completed=p.epoch or 0, detail=detail)
            return
        epoch = f"epoch {p.epoch}/{p.epochs}  " if p.epoch is not None else ""
        line = f"{self._job_id}  {epoch}{detail}"
        if line != self._last_line:
            self._last_line = line
            self._console.print(line, highlight=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()


def describe_record(record: JobRecord, waiting: str | None = None) -> RenderableType:
    """A summary table of the record, its attempts, and its result or error; ``waiting``:
    why a queued job has not started (trainq.client.waiting_reason)."""
    summary = Table.grid(padding=(0, 2))
    summary.add_column(no_wrap=True)
    summary.add_column(overflow="fold")  # ids and paths are copied: never cut them
    summary.add_row("job", record.id)
    summary.add_row("status", Text(record.status.value, style=_STYLE.get(record.status.value, "")))
    if waiting:
        summary.add_row("waiting", Text(waiting, style="yellow"))
    shield = "" if record.spec.preemptible else " (not preemptible)"
    summary.add_row("priority", f"{record.spec.priority}{shield}")
    if record.preemptions:
        times = f"{record.preemptions} time{'s' if record.preemptions != 1 else ''}"
        summary.add_row("preempted", f"{times} (yielded to higher-priority jobs)")
    if record.spec.name:
        summary.add_row("name", record.spec.name)
    if record.owner:
        summary.add_row("owner", record.owner)
    if record.queue:
        summary.add_row("queue", record.queue)
    p = record.progress
    if p.epoch is not None:
        loss = f", loss {p.loss:.4f}" if p.loss is not None else ""
        summary.add_row("progress", f"epoch {p.epoch}/{p.epochs}{loss}")
    summary.add_row("created", clock(record.created_at))
    if record.finished_at and record.started_at:
        summary.add_row("ran", f"{record.finished_at - record.started_at:.1f} s")
    if record.result:
        for key in ("final_loss", "model", "checkpoint_path"):
            if record.result.get(key) is not None:
                summary.add_row(key.replace("_", " "), str(record.result[key]))
    image = record.current_attempt.image if record.current_attempt else None
    if image:
        summary.add_row("image", image)
    if record.log_path:
        summary.add_row("log", record.log_path)
    if record.artifacts:
        summary.add_row("artifacts", f"{len(record.artifacts)} (trainq artifacts {record.id})")
    parts: list[RenderableType] = [summary]
    if record.attempts:
        attempts = Table(
            "attempt", "host", "worker", "runtime", "gpus", "from epoch", "handle", "exit",
            "class", title="attempts",
        )  # fmt: skip
        for a in record.attempts:
            attempts.add_row(
                str(a.number),
                a.host or "",
                a.worker or "",
                a.runtime or "",
                ",".join(str(i) for i in a.gpu_ids),
                "" if a.restored_epoch is None else str(a.restored_epoch),
                (a.handle or "")[:12],
                "" if a.exit_code is None else str(a.exit_code),
                a.failure_class or "",
            )
        parts.append(attempts)
    if record.error:
        parts.append(Text(record.error, style="red"))
    for a in record.attempts:
        if a.artifact_error:
            parts.append(Text(f"attempt {a.number}: {a.artifact_error}", style="yellow"))
    return Group(*parts)


_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "red", "cancelled": "yellow"}


def clock(ts: float, short: bool = False) -> str:
    """Local time of a Unix timestamp, for people."""
    return time.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S", time.localtime(ts))


def age(ts: float, now: float | None = None) -> str:
    """How long ago ``ts`` was, in its largest unit: ``45s``, ``12m``, ``3h``, ``2d``."""
    elapsed_s = max(0.0, (time.time() if now is None else now) - ts)
    for unit, size_s in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if elapsed_s >= size_s:
            return f"{int(elapsed_s // size_s)}{unit}"
    return f"{int(elapsed_s)}s"
