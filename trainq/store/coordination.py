"""Coordination in Redis: supervisor leases with fencing tokens, cancel flags, yield
requests (preemption) and re-queue claims (:class:`~trainq.store.protocols.Coordination`).
The lease scripts also serve the scheduler's leader lease."""

from __future__ import annotations

import redis

from trainq.store.keys import CANCEL_FLAG_TTL_S, Keys

# Compare-and-set on the lease value: only the holder of the token renews or frees it.
RENEW_LUA = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Take a free lease with the job's next fencing token, in one round trip (it was three:
# EXISTS, INCR, SET NX); nil when someone holds it.
ACQUIRE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
"""

RELEASE_LUA = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisCoordination:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._acquire = client.register_script(ACQUIRE_LUA)
        self._renew = client.register_script(RENEW_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def request_cancel(self, job_id: str) -> None:
        self._redis.set(self._keys.cancel(job_id), "1", ex=CANCEL_FLAG_TTL_S)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._redis.exists(self._keys.cancel(job_id)))

    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> int | None:
        keys = [self._keys.lease(job_id), self._keys.fence(job_id)]
        token = self._acquire(keys=keys, args=[owner, int(ttl_s * 1000)])
        return None if token is None else int(token)

    def renew_lease(self, job_id: str, token: int, ttl_s: float) -> bool:
        keys = [self._keys.lease(job_id)]
        return bool(self._renew(keys=keys, args=[f"{token}:", int(ttl_s * 1000)]))

    def release_lease(self, job_id: str, token: int) -> None:
        self._release(keys=[self._keys.lease(job_id)], args=[f"{token}:"])

    def lease_holder(self, job_id: str) -> str | None:
        value = self._redis.get(self._keys.lease(job_id))
        return None if value is None else str(value)

    def claim_requeue(self, job_id: str, ttl_s: float) -> bool:
        name = self._keys.requeue(job_id)
        return bool(self._redis.set(name, "1", nx=True, px=int(ttl_s * 1000)))

    def request_yield(self, job_id: str, for_job: str, ttl_s: float) -> None:
        self._redis.set(self._keys.yield_request(job_id), for_job, px=int(ttl_s * 1000))

    def stop_requests(self, job_id: str) -> tuple[bool, str | None]:
        cancel, for_job = self._redis.mget(
            [self._keys.cancel(job_id), self._keys.yield_request(job_id)]
        )
        return cancel is not None, None if for_job is None else str(for_job)

    def clear_yield(self, job_id: str) -> None:
        self._redis.delete(self._keys.yield_request(job_id))
