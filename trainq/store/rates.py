"""Request rates counted in Redis with GCRA (the generic cell rate algorithm), as a Lua
body other scripts include: the API's rate limit (:mod:`trainq.api.ratelimit`) and the
token check that counts a user's request in the same round trip
(:mod:`trainq.users.store`).

Each bucket keeps one number, the *theoretical arrival time* of its next request. A
request is let through while that time is less than ``burst`` emission intervals
ahead of now, and pushes it one interval on; so ``burst`` requests pass at once, then
one per interval. It runs on Redis's clock (hosts' clocks do not matter), and the key
expires once the bucket is full again. :class:`Rate` in memory does the same for the
in-memory twins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# A Lua function: gcra(bucket key, interval in µs, burst) → {1, 0} (let through) or
# {0, µs until the next request would pass}.
GCRA_LUA = """
local function gcra(key, interval_us, burst)
  local now_t = redis.call('TIME')
  local now_us = tonumber(now_t[1]) * 1000000 + tonumber(now_t[2])
  local tolerance_us = interval_us * (burst - 1)
  local tat_us = tonumber(redis.call('GET', key) or now_us)
  if tat_us < now_us then
    tat_us = now_us
  end
  local allowed_at_us = tat_us - tolerance_us
  if now_us < allowed_at_us then
    return {0, math.ceil(allowed_at_us - now_us)}
  end
  local next_tat_us = tat_us + interval_us
  local idle_ms = math.ceil((next_tat_us - now_us) / 1000) + 1
  redis.call('SET', key, string.format('%d', next_tat_us), 'PX', idle_ms)
  return {1, 0}
end
"""


@dataclass(frozen=True)
class Rate:
    """``per_s`` requests a second per bucket, in bursts of ``burst``."""

    per_s: float
    burst: int

    @property
    def interval_us(self) -> int:
        return max(1, round(1_000_000 / self.per_s))

    @property
    def args(self) -> list[int]:
        """The script's arguments: interval (µs) and burst."""
        return [self.interval_us, self.burst]


@dataclass
class MemoryBuckets:
    """GCRA in memory: the in-memory twins' rate limit. ``take`` answers the seconds to
    wait (0: let through)."""

    arrivals_us: dict[str, int] = field(default_factory=dict)

    def take(self, bucket: str, rate: Rate, now_s: float) -> float:
        now_us = int(now_s * 1_000_000)
        tat_us = max(self.arrivals_us.get(bucket, now_us), now_us)
        allowed_at_us = tat_us - rate.interval_us * (rate.burst - 1)
        if now_us < allowed_at_us:
            return math.ceil(allowed_at_us - now_us) / 1_000_000
        self.arrivals_us[bucket] = tat_us + rate.interval_us
        return 0.0
