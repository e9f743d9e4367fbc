"""A sentinel-managed Redis connection that asks the sentinels on every (re)connect.

redis-py 8.1 asks the sentinels only when a pooled connection is made the first time:
a connection that dropped reconnects to the address it had (redis/redis-py#3874, #3560,
open). After a failover that is the dead primary, whose host may come back as a
primary for the seconds before the sentinels demote it: it took trainq's writes,
which were then lost, and once demoted it answered READONLY until every retry was
spent. This connection looks the primary up again before each connect, and never
retries a refused connect on the same address: the caller's retry does, asking again.
"""

from __future__ import annotations

from redis.sentinel import SentinelManagedConnection


class FollowingConnection(SentinelManagedConnection):
    """Connects to the primary the sentinels name now (replicas: as redis-py does)."""

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock:
            return
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=False)
