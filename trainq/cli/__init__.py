"""The ``trainq`` command: the daemons (worker, api, flower), the job commands, logs.

The modules register their commands in the order ``trainq --help`` lists them.
"""

# isort: off
from trainq.cli import daemons  # noqa: F401  (worker, api, flower)
from trainq.cli import jobs  # noqa: F401  (submit, status, cancel)
from trainq.cli import logs  # noqa: F401  (logs)
from trainq.cli import listing  # noqa: F401  (list)
from trainq.cli import scheduling  # noqa: F401  (priority, queue)
from trainq.cli import artifacts  # noqa: F401  (artifacts)
from trainq.cli import login  # noqa: F401  (login, logout, whoami)
from trainq.cli import users  # noqa: F401  (users ...)
from trainq.cli.app import cli, main

# isort: on

__all__ = ["cli", "main"]
