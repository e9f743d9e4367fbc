"""A worker that cannot reach the artifact store takes no job until it can.

A job run there could neither restore its checkpoint nor keep its model, so
``trainq worker`` probes the store before Celery starts. When it does not answer, the
worker says so (naming the URL), starts consuming only a standby queue that no job
is ever sent to, and registers without queues and with the store's error, which the
API's ``/health`` shows. Its main process probes again every few seconds; once the
store answers it starts consuming its own queues (Celery's ``add_consumer`` control
command, addressed to itself) and registers them. No message is taken meanwhile, so
none is lost: another worker, or this one later, runs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from trainq.artifacts.store import ArtifactStore
from trainq.celery_app import app
from trainq.cluster.registry import Heartbeat
from trainq.config import Settings
from trainq.errors import StoreUnavailable

log = logging.getLogger("trainq.worker")

STANDBY_QUEUE = "trainq.standby"


def store_problem(store: ArtifactStore) -> str | None:
    """What keeps this host from the artifact store now, or None."""
    try:
        store.probe()
    except StoreUnavailable as exc:
        return str(exc)
    return None


class Standby:
    """Waits, in a daemon thread, for the store to answer, then joins ``queues``."""

    def __init__(
        self,
        heartbeat: Heartbeat,
        queues: tuple[str, ...],
        probe: Callable[[], str | None],
        interval_s: float,
    ) -> None:
        self._heartbeat = heartbeat
        self._queues = queues
        self._probe = probe
        self._interval_s = interval_s
        self._stop = threading.Event()

    def start(self) -> Standby:
        threading.Thread(target=self._wait, daemon=True, name="store-standby").start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _wait(self) -> None:
        while not self._stop.wait(self._interval_s):
            problem = self._probe()
            if problem is not None:
                log.warning("still taking no job: %s", problem)
                continue
            name = self._heartbeat.info.name
            for queue in self._queues:
                app.control.add_consumer(queue, destination=[name])
            app.control.cancel_consumer(STANDBY_QUEUE, destination=[name])
            self._heartbeat.info = self._heartbeat.info.model_copy(
                update={"queues": self._queues, "store_error": None}
            )
            log.info("the artifact store answers: consuming %s", ",".join(self._queues))
            return


def standby_note(settings: Settings, problem: str) -> str:
    """What ``trainq worker`` prints when it starts on standby."""
    return (
        f"{problem}. This worker takes no job until the store answers (checked every "
        f"{settings.worker_ttl_s / 3:g} s); check TRAINQ_ARTIFACT_URL and its credentials"
    )
