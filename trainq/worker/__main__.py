"""``python -m trainq.worker --plan=JSON CELERY_ARGUMENTS...``: what ``trainq worker``
becomes once its checks have passed.

``trainq worker`` checks the settings, the runtime, the GPUs and the artifact store
with the CLI, then replaces itself with this entry point (``exec``, same process id),
handing its plan over on the command line. The worker, and the pool children forked
from it, then never hold the CLI's libraries (typer, rich and the command modules:
about 4 MB in each process). Not meant to be started by hand.
"""

from __future__ import annotations

import sys

from trainq.worker import startup


def main() -> None:
    plan = startup.from_argv(sys.argv[1:])
    startup.declare(plan)  # the pool's children inherit it: they know their GPUs

    from trainq.celery_app import app

    app.worker_main(plan.celery_argv)


if __name__ == "__main__":
    main()
