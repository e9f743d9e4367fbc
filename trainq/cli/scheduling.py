"""``trainq priority`` and ``trainq queue``: a pending job's priority, and the pending
queue in the order the scheduler will admit it, each job with why it waits.

Straight to Redis or over the REST API like the other job commands
(:mod:`trainq.cli.backend`); ``trainq users quota`` is in :mod:`trainq.cli.users`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from trainq.cli.app import JobId, PriorityLevel, RecordAsJson, cli, fail, out
from trainq.cli.backend import open_jobs
from trainq.cli.render import age
from trainq.errors import AlreadyFinished, Forbidden, JobNotFound, NotPending


@cli.command()
def priority(
    job_id: JobId,
    level: Annotated[PriorityLevel, typer.Argument(help="The job's new priority")],
    as_json: RecordAsJson = False,
) -> None:
    """Change a pending job's priority (at most your highest, unless you are an admin)."""
    with open_jobs() as jobs:
        try:
            record, waiting = jobs.change(job_id, level.value, None)
        except (JobNotFound, NotPending, AlreadyFinished, Forbidden) as exc:
            raise fail(escape(str(exc)), 1) from None
    if as_json:
        print(record.model_dump_json(indent=2))
        return
    out.print(f"{record.id} priority {record.spec.priority}", highlight=False)
    if waiting:
        out.print(f"waiting: {waiting}", markup=False, highlight=False)


@cli.command("queue")
def queue_(
    owner: Annotated[str | None, typer.Option(help="Only this owner's jobs")] = None,
    queue: Annotated[str | None, typer.Option(help="Only jobs for this queue")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON")] = False,
) -> None:
    """Pending jobs in the order the scheduler will admit them, and why each waits."""
    with open_jobs() as jobs:
        try:
            page = jobs.pending_queue(owner, queue, limit)
        except ValueError as exc:  # a bad filter (remote: the API's 422)
            raise fail(escape(str(exc)), 2) from None
    if as_json:
        out.print_json(json.dumps([job.model_dump(mode="json") for job in page.jobs]))
        return
    if not page.jobs:
        out.print("no pending jobs", highlight=False)
        return
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for column in ("position", "job", "owner", "priority", "queue", "age"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold")
    for job in page.jobs:
        table.add_row(
            str(job.position),
            job.id,
            escape(job.owner),
            job.priority,
            escape(job.queue),
            age(job.created_at),
            escape(job.reason),
        )
    out.print(table)
    if page.total > len(page.jobs):
        out.print(f"{page.total - len(page.jobs)} more: raise --limit", highlight=False)
