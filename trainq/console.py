"""What every ``trainq`` command shares: the Typer app, its consoles and errors."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

# Options several commands share, spelled once.
JobId = Annotated[str, typer.Argument(help="Job id")]
RecordAsJson = Annotated[bool, typer.Option("--json", help="Print the job record as JSON")]
cli = typer.Typer(
    name="trainq",
    help="Run training jobs in containers through Celery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output is read by people too: do not squeeze it into 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)
