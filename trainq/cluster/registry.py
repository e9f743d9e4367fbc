"""The live-worker registry: who is up, which queues and GPUs each one serves.

Every worker's main process writes its :class:`WorkerInfo` under ``worker:<name>``
with a TTL (``TRAINQ_WORKER_TTL_S``) and renews it every third of that; a clean
shutdown deletes it, a killed worker's entry expires. ``workers`` (a sorted set of
names) lets readers find the entries without scanning the key space. Submit-time
validation, waiting reasons and the API's ``/stats`` and ``/health`` read it
(:func:`trainq.connections.registry` builds it from settings).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, cast

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainq.store.keys import Keys
from trainq.store.pending import push_wake

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = logging.getLogger("trainq.workers")


class WorkerInfo(BaseModel):
    """One live worker, as it registered itself."""

    model_config = ConfigDict(frozen=True)

    name: str  # the Celery node name, e.g. trainq@gpu-box-1
    hostname: str  # TRAINQ_HOSTNAME: the host part of its queue names
    queues: tuple[str, ...]
    gpu_ids: tuple[int, ...] = ()  # NVML indices on its host; empty: a CPU worker
    gpu_uuids: tuple[str, ...] = ()  # in the order of gpu_ids, when NVML told us
    simulated_gpus: bool = False
    runtime: str
    concurrency: int = Field(ge=1)
    started_at: float = Field(default_factory=time.time)
    heartbeat_at: float = Field(default_factory=time.time)

    # Why its runtime cannot run jobs, if it found out after starting (the API's /health).
    runtime_error: str | None = None
    # Why it cannot reach the artifact store; it takes no job until it can.
    store_error: str | None = None

    def serves(self, queue: str) -> bool:
        return queue in self.queues


class Registry:
    """The registry in Redis under one key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: float) -> None:
        self._redis = client
        self._keys = keys
        self._ttl_ms = int(ttl_s * 1000)

    def beat(self, info: WorkerInfo) -> None:
        """Register ``info`` (or renew it) for another TTL."""
        info = info.model_copy(update={"heartbeat_at": time.time()})
        # One round trip, no transaction: live() skips an index entry without its info.
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.worker(info.name), info.model_dump_json(), px=self._ttl_ms)
            pipe.zadd(self._keys.workers, {info.name: info.heartbeat_at})
            pipe.execute()

    def remove(self, name: str) -> None:
        with self._redis.pipeline() as pipe:
            pipe.delete(self._keys.worker(name))
            pipe.zrem(self._keys.workers, name)
            push_wake(pipe, self._keys)  # fewer workers: the scheduler looks again
            pipe.execute()

    def wake_scheduler(self) -> None:
        """A worker joined (or can take jobs again): the scheduler looks again."""
        with self._redis.pipeline() as pipe:
            push_wake(pipe, self._keys)
            pipe.execute()

    def live(self) -> list[WorkerInfo]:
        """The workers whose entry has not expired, by name."""
        members = cast("list[bytes | str]", self._redis.zrange(self._keys.workers, 0, -1))
        names = [_text(n) for n in members]
        if not names:
            return []
        raws = self._redis.mget([self._keys.worker(n) for n in names])
        live, gone = [], []
        for name, raw in zip(names, raws, strict=True):
            if raw is None:
                gone.append(name)
                continue
            try:
                live.append(WorkerInfo.model_validate_json(raw))
            except ValidationError:
                log.warning("unreadable registry entry of worker %s", name)
        if gone:  # expired: a killed worker; forget its name too
            self._redis.zrem(self._keys.workers, *gone)
        return sorted(live, key=lambda w: w.name)


def serving(queue: str, workers: Sequence[WorkerInfo]) -> list[WorkerInfo]:
    """The workers among ``workers`` that consume ``queue``."""
    return [w for w in workers if w.serves(queue)]


class Heartbeat:
    """Keeps this worker's registry entry alive from a daemon thread until stopped."""

    def __init__(
        self,
        registry: Registry,
        info: WorkerInfo,
        interval_s: float,
        probe: Callable[[], str | None] = lambda: None,
        store_probe: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._registry = registry
        self.info = info
        self._probe = probe  # what is wrong with the runtime now, or None
        self._store_probe = store_probe  # and with the artifact store
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="heartbeat")

    def start(self) -> Heartbeat:
        self._beat()
        self._registry.wake_scheduler()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and leave the registry (a clean shutdown)."""
        self._stop.set()
        self._thread.join(timeout=self._interval_s + 5)
        try:
            self._registry.remove(self.info.name)
        except redis.RedisError as exc:
            log.warning("could not leave the worker registry: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._beat()
            except redis.RedisError as exc:  # Redis restarting: try again next beat
                log.warning("worker heartbeat failed: %s", exc)

    def _beat(self) -> None:
        problems = {"runtime_error": self._probe(), "store_error": self._store_probe()}
        self.info = self.info.model_copy(update=problems)
        self._registry.beat(self.info)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
