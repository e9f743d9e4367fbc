"""Jobs and records outlive workers (no other worker runs in this module)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness import Worker
from trainq import JobStatus, connections, submit_training

pytestmark = pytest.mark.integration


def test_record_survives_a_worker_restart(worker_factory: Callable[[str], Worker]) -> None:
    first = worker_factory("restart-a@testhost")
    done = submit_training.delay(epochs=1)
    done.get(timeout=120)
    before = connections.records().get(done.id)
    first.stop()

    # Accepted while no worker runs: it must wait in the queue, not get lost.
    waiting = submit_training.delay(epochs=1)
    assert connections.records().get(waiting.id).status == JobStatus.QUEUED

    worker_factory("restart-b@testhost")
    assert waiting.get(timeout=120)["final_loss"] > 0
    assert connections.records().get(done.id) == before
    record = connections.records().get(waiting.id)
    assert record.status == JobStatus.SUCCEEDED
    assert record.attempts[0].worker == "restart-b@testhost"
