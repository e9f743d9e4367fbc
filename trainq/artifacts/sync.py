"""The background thread that publishes one attempt's checkpoints while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from trainq.artifacts.checkpoints import Manifest, publish
from trainq.artifacts.store import ArtifactStore

_MAX_BACKOFF_S = 30.0
_MIN_BACKOFF_S = 0.1
_FINISH_TIMEOUT_S = 300.0


class CheckpointSync:
    """Publishes one attempt's checkpoints from a background thread.

    :meth:`poke` asks for a pass and returns at once, whatever the store does; the
    thread runs at most one pass per ``interval_s`` (the latest epoch poked wins),
    then ``also``. A failed pass is reported through ``on_error`` and retried, backing
    off up to 30 s apart. :meth:`finish` stops the thread and runs a last pass.
    """

    def __init__(
        self, store: ArtifactStore, job_id: str, local_dir: Path, *, attempt: int, host: str,
        state_path: Path, interval_s: float, on_error: Callable[[str], None],
        also: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.job_id = job_id
        self.local_dir = local_dir
        self.last: Manifest | None = None  # the last manifest this sync published
        self._attempt, self._host, self._state_path = attempt, host, state_path
        self._interval_s = interval_s
        self._on_error = on_error
        self._also = also
        self._epoch: int | None = None
        self._published: Manifest | None = None  # by the last pass, which succeeded
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._one_pass = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"checkpoint-sync-{job_id}", daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def poke(self, epoch: int | None = None) -> None:
        """Ask for a pass soon (never waits on the store)."""
        if epoch is not None:
            self._epoch = epoch
        self._wake.set()

    def finish(self, timeout_s: float = _FINISH_TIMEOUT_S) -> Manifest | None:
        """Stop the thread, then publish what is there now; the last published manifest."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._on_error(
                f"checkpoint sync to {self.store.url} still busy after {timeout_s} s: "
                "the last checkpoint is not published"
            )
            return self.last
        self._pass()
        return self.last

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish()

    def _run(self) -> None:
        failures, last_pass = 0, float("-inf")
        while True:
            self._wake.wait()
            wait_s = last_pass + self._interval_s - time.monotonic()
            if self._stop.is_set() or (wait_s > 0 and self._stop.wait(wait_s)):
                return
            self._wake.clear()
            last_pass = time.monotonic()
            failures = 0 if self._pass() else failures + 1
            self._run_also()
            if failures:
                backoff_s = max(self._interval_s, _MIN_BACKOFF_S) * 2 ** (failures - 1)
                if self._stop.wait(min(backoff_s, _MAX_BACKOFF_S)):
                    return
                self._wake.set()  # try again

    def _pass(self) -> bool:
        with self._one_pass:
            try:
                manifest = publish(
                    self.store, self.job_id, self.local_dir, attempt=self._attempt,
                    host=self._host, epoch=self._epoch, state_path=self._state_path,
                    published=self._published,
                )  # fmt: skip
            except Exception as exc:
                self._published = None  # the store's manifest is read again
                self._on_error(f"publishing checkpoints to {self.store.url} failed: {exc}")
                return False
            self.last = manifest or self.last
            self._published = self.last
            return True

    def _run_also(self) -> None:
        if self._also is None:
            return
        try:
            self._also()
        except Exception as exc:
            self._on_error(f"after a checkpoint sync to {self.store.url}: {exc}")
