"""What every ``trainq`` command shares: the Typer app, its consoles, errors, ``main``.

Exit codes: 0 success (with ``--wait``: the job succeeded), 1 the job did not
succeed, was not found, or was refused (a bad token, not yours); 2 invalid input
(nothing was enqueued); 3 a service trainq needs does not answer (Redis, broker and
job store; or, for the remote CLI, the REST API), said in one line on stderr.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from trainq import connections
from trainq.config import get_settings
from trainq.errors import TrainqError, Unavailable
from trainq.logs import components

EXIT_UNAVAILABLE = 3
# Options several commands share, spelled once.
JobId = Annotated[str, typer.Argument(help="Job id")]
RecordAsJson = Annotated[bool, typer.Option("--json", help="Print the job record as JSON")]


class PriorityLevel(StrEnum):
    """The scheduler's priorities (trainq.jobs.spec.PRIORITIES), as Typer choices."""

    low = "low"
    normal = "normal"
    high = "high"


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


def main() -> None:
    """The ``trainq`` command."""
    settings = get_settings()
    components.configure("cli", settings.log_dir)
    # httpx logs every request at INFO: a remote --wait polls twice a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
    except connections.OUTAGE_ERRORS as exc:
        _exit_with(connections.unavailable(exc, settings), EXIT_UNAVAILABLE)
    except Unavailable as exc:  # the REST API (remote CLI) or the artifact store
        _exit_with(exc, EXIT_UNAVAILABLE)
    except TrainqError as exc:  # refused: a bad token, another user's job, a rate limit
        _exit_with(exc, 1)


def _exit_with(exc: Exception, code: int) -> None:
    """One line on stderr, then exit ``code``."""
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
    sys.exit(code)
