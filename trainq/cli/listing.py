"""``trainq list``: jobs, newest first, a page at a time."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.table import Table

from trainq.cli.app import cli, fail, out
from trainq.cli.backend import open_jobs
from trainq.cli.render import clock
from trainq.jobs.status import JobStatus
from trainq.store.name_filter import NAME_TEXT_MAX_LENGTH, NAME_TEXT_PATTERN


def _part_of_a_name(text: str | None) -> str | None:
    if text is not None and (
        len(text) > NAME_TEXT_MAX_LENGTH or not re.match(NAME_TEXT_PATTERN, text)
    ):
        raise typer.BadParameter(
            f"{text!r} is not part of a job name: 1 to {NAME_TEXT_MAX_LENGTH} letters, "
            "digits, '_', '.' or '-'"
        )
    return text


@cli.command("list")
def list_(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue after this cursor")] = None,
    owner: Annotated[str | None, typer.Option(help="Only jobs this user submitted")] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Only jobs whose name contains this text, any case", callback=_part_of_a_name
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print records as JSON")] = False,
) -> None:
    """List jobs, newest first."""
    with open_jobs() as jobs:
        try:
            page = jobs.list_jobs(status, limit, cursor, owner, name)
        except ValueError as exc:
            raise fail(str(exc), 2) from None
    if as_json:
        payload = {
            "jobs": [r.model_dump(mode="json") for r in page.records],
            "next_cursor": page.next_cursor,
        }
        out.print_json(json.dumps(payload))
        return
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("status", "owner", "epoch", "loss", "tries", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("name", overflow="fold")
    for r in page.records:
        p = r.progress
        table.add_row(
            r.id,
            r.status.value,
            r.owner or "",
            f"{p.epoch}/{p.epochs}" if p.epoch is not None else "",
            f"{p.loss:.4f}" if p.loss is not None else "",
            str(len(r.attempts)),
            clock(r.created_at, short=True),
            r.spec.name or "",
        )
    out.print(table)
    if page.next_cursor:
        same = [f"--status {status.value}"] if status else []
        same += [f"--owner {owner}"] if owner else []
        same += [f"--name {name}"] if name else []
        more = " ".join(["more: trainq list", *same, f"--cursor {page.next_cursor}"])
        out.print(more, highlight=False)
