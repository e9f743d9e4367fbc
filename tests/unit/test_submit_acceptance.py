"""Submit on a replicated Redis (trainq.client.acceptance), with the in-memory store:
a job is accepted only once enough replicas confirm it, else taken back."""

from __future__ import annotations

import pytest
import redis

from trainq import client
from trainq.client import acceptance
from trainq.config import Settings
from trainq.errors import JobNotFound, NotAccepted, Unavailable
from trainq.jobs.record import JobRecord
from trainq.store.memory import MemoryIdempotencyKeys, MemoryJobRecords

SETTINGS = Settings(redis_min_replicas=1, redis_wait_s=0.5, scheduler="fair", user="ann")


class FlakyRecords(MemoryJobRecords):
    """Redis fails while the replicas are asked; ``outage_withdraws`` withdraws fail too."""

    def __init__(self, outage_withdraws: int = 0) -> None:
        super().__init__()
        self.outage_withdraws = outage_withdraws

    def replicated(self, job_id: str, replicas: int, wait_s: float) -> int:
        raise redis.ConnectionError("Connection closed by server.")

    def withdraw(self, record: JobRecord) -> str:
        if self.outage_withdraws:
            self.outage_withdraws -= 1
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")
        return super().withdraw(record)


class AdmittedMeanwhile(MemoryJobRecords):
    """The scheduler admitted the job while its submit waited on the replicas."""

    def replicated(self, job_id: str, replicas: int, wait_s: float) -> int:
        for record in self.list().records:
            self.update(record.id, lambda r: r.moved_to(r.status, admitted_at=1.0, admissions=1))
        return 0


def test_a_job_confirmed_by_enough_replicas_is_accepted() -> None:
    store = MemoryJobRecords()
    store.replicas = 1

    job_id = client.submit({"epochs": 1}, records=store, settings=SETTINGS)

    assert store.get(job_id).pending


def test_too_few_replicas_refuse_the_job_and_take_it_back() -> None:
    store, keys = MemoryJobRecords(), MemoryIdempotencyKeys()  # no replica confirms

    with pytest.raises(NotAccepted, match=r"0 of the 1 Redis replicas .* within 0.5 s"):
        client.submit({"idempotency_key": "k1"}, records=store, idempotency_keys=keys,
                      settings=SETTINGS)  # fmt: skip

    assert store.count() == 0
    # The key was freed: the same submit, once a replica is back, makes a new job.
    store.replicas = 1
    job_id = client.submit({"idempotency_key": "k1"}, records=store, idempotency_keys=keys,
                           settings=SETTINGS)  # fmt: skip
    assert store.get(job_id).spec.idempotency_key == "k1"


def test_a_failure_while_waiting_takes_the_job_back_on_the_next_primary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(acceptance, "_RETRY_S", 0.01)
    store = FlakyRecords(outage_withdraws=3)  # the failover takes three tries

    with pytest.raises(NotAccepted, match="Redis failed before replicas confirmed it"):
        client.submit({}, records=store, settings=SETTINGS)

    assert store.count() == 0


def test_when_redis_never_answers_again_the_outcome_is_said_to_be_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(acceptance, "_RETRY_S", 0.01)
    monkeypatch.setattr(acceptance, "WITHDRAW_PATIENCE_S", 0.05)
    store = FlakyRecords(outage_withdraws=10_000)

    with pytest.raises(Unavailable, match="may or may not have been accepted") as raised:
        client.submit({}, records=store, settings=SETTINGS)

    assert not isinstance(raised.value, NotAccepted)
    (job_id,) = [r.id for r in store.list().records]
    assert f"trainq status {job_id}" in str(raised.value)


def test_a_job_admitted_while_its_submit_waited_is_accepted() -> None:
    store = AdmittedMeanwhile()

    job_id = client.submit({}, records=store, settings=SETTINGS)

    assert store.get(job_id).admitted_at == 1.0


def test_without_replicas_required_nothing_is_asked() -> None:
    store = FlakyRecords()  # would fail if asked

    job_id = client.submit({}, records=store, settings=SETTINGS.model_copy(
        update={"redis_min_replicas": 0}))  # fmt: skip

    assert store.get(job_id)


def test_fifo_marks_a_job_whose_message_no_replica_confirmed_as_failed() -> None:
    class MessageUnconfirmed(MemoryJobRecords):
        asked = 0

        def replicated(self, job_id: str, replicas: int, wait_s: float) -> int:
            self.asked += 1
            return 1 if self.asked == 1 else 0  # the record yes, the message no

    store, sent = MessageUnconfirmed(), []
    fifo = SETTINGS.model_copy(update={"scheduler": "fifo"})

    with pytest.raises(Exception, match="too few Redis replicas confirmed its message"):
        client.submit({}, records=store, settings=fifo, send=lambda *a: sent.append(a))

    (record,) = store.list().records
    assert record.status.is_terminal and "replicas" in (record.error or "")
    assert len(sent) == 1


def test_min_replicas_defaults_to_one_with_sentinels_and_zero_without() -> None:
    assert Settings(redis_sentinels="s1:26379").min_replicas == 1
    assert Settings(redis_sentinels="").min_replicas == 0
    assert Settings(redis_sentinels="s1:26379", redis_min_replicas=0).min_replicas == 0


def test_a_withdrawn_job_is_gone_for_readers() -> None:
    store = MemoryJobRecords()
    with pytest.raises(NotAccepted) as raised:
        client.submit({}, records=store, settings=SETTINGS)
    job_id = str(raised.value).split()[1]

    with pytest.raises(JobNotFound):
        store.get(job_id)
