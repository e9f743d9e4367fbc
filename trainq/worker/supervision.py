"""The threads beside a supervisor: its lease heartbeat, and the watch over an attempt.

A supervisor holds the job's lease (a Redis key with a TTL and a fencing token)
while it runs the job, renewing it every third of its TTL. A lease that is not
renewed expires, which is how the reconciler learns that a supervisor is gone. The
watch stops a running attempt when the job's time is up, a user asked to cancel or
the scheduler asked it to yield (preemption), and notices when the lease was lost
to another supervisor. And the wait for a runtime that does not answer.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType
from typing import Self

from trainq.errors import RuntimeFault, SupervisedElsewhere
from trainq.runtime.base import Exit, Handle, Runtime
from trainq.store.protocols import Coordination

log = logging.getLogger("trainq.runner")
# How often a supervisor asks a runtime that did not answer whether it is back.
_RUNTIME_LOOK_S = 1.0


class Lease:
    """The job's lease, held and renewed in the background for a ``with`` block."""

    def __init__(self, coordination: Coordination, job_id: str, owner: str, ttl_s: float) -> None:
        self._store = coordination
        self._job_id = job_id
        self._owner = owner
        self._ttl_s = ttl_s
        self.token = 0
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="lease")

    def __enter__(self) -> Self:
        token = self._store.acquire_lease(self._job_id, self._owner, self._ttl_s)
        if token is None:
            holder = self._store.lease_holder(self._job_id) or "another supervisor"
            raise SupervisedElsewhere(f"job {self._job_id} is supervised by {holder}")
        self.token = token
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
        with contextlib.suppress(Exception):  # an expired lease frees itself
            self._store.release_lease(self._job_id, self.token)

    def _heartbeat(self) -> None:
        while not self._done.wait(self._ttl_s / 3):
            try:
                if not self._store.renew_lease(self._job_id, self.token, self._ttl_s):
                    self.lost.set()
                    return
            except Exception:  # Redis away for a moment: the next beat tries again
                continue


# How long one wait() call blocks before the supervisor looks at its lease again.
_WAIT_SLICE_S = 5.0


def wait_for_exit(runtime: Runtime, handle: Handle, lease: Lease) -> Exit:
    """The attempt's exit, waited for in slices; SupervisedElsewhere once the lease is lost."""
    while True:
        if lease.lost.is_set():
            raise SupervisedElsewhere(f"lost the lease of job {handle.job_id}")
        exit_ = runtime.wait(handle, _WAIT_SLICE_S)
        if exit_ is not None:
            return exit_


class Stop(StrEnum):
    """Why the watch ended an attempt early."""

    TIME_LIMIT = "time_limit"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"  # the scheduler asked it to yield to a higher-priority job
    LEASE_LOST = "lease_lost"  # not stopped: another supervisor owns it now


class Watch:
    """Polls for the job's deadline, a cancel request and a lost lease while it runs."""

    def __init__(
        self,
        *,
        coordination: Coordination,
        runtime: Runtime,
        handle: Handle,
        lease: Lease,
        deadline: float,
        grace_s: float,
        poll_s: float,
    ) -> None:
        self._store = coordination
        self._runtime = runtime
        self._handle = handle
        self._lease = lease
        self._deadline = deadline
        self._grace_s = grace_s
        self._poll_s = poll_s
        self.reason: Stop | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="watch")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(min(self._poll_s, max(self._deadline - time.time(), 0))):
            self.reason = self._due()
            if self.reason is None:
                continue
            if self.reason != Stop.LEASE_LOST:
                with contextlib.suppress(RuntimeFault):  # it ended on its own meanwhile
                    self._runtime.stop(self._handle, self._grace_s)
            return

    def _due(self) -> Stop | None:
        if self._lease.lost.is_set():
            return Stop.LEASE_LOST
        if time.time() >= self._deadline:
            return Stop.TIME_LIMIT
        try:
            cancel, yield_to = self._store.stop_requests(self._handle.job_id)
        except Exception:  # Redis away for a moment: look again at the next poll
            return None
        if cancel:
            return Stop.CANCELLED
        return None if yield_to is None else Stop.PREEMPTED


def wait_for_runtime(
    runtime: Runtime, coordination: Coordination, job_id: str, fault: RuntimeFault,
    patience_s: float, sleep: Callable[[float], None],
) -> None:  # fmt: skip
    """Wait while the runtime does not answer (a Docker engine restarting) before the
    job's attempt could be found or started, the caller holding the job's lease so
    that no other worker takes it: until the runtime answers or the job is cancelled.
    After ``patience_s`` without an answer ``fault`` is raised (the task fails and the
    job, not final, is sent again by the scheduler later)."""
    log.warning("job %s waits up to %g s for its runtime: %s", job_id, patience_s, fault)
    for _ in range(math.ceil(patience_s / _RUNTIME_LOOK_S)):
        sleep(_RUNTIME_LOOK_S)
        if coordination.cancel_requested(job_id):
            return
        try:
            runtime.find(job_id)
        except RuntimeFault:
            continue
        log.info("job %s: its runtime answers again", job_id)
        return
    raise fault
