"""Real services for tests and benchmarks: private Redis servers (alone, or a primary
with replicas and sentinels) and worker and API processes.

trainq's own tests and benchmarks use these, and so can a user's integration tests:
each piece is the real thing (``redis-server`` and ``redis-sentinel`` binaries, a
prefork ``trainq worker`` subprocess), started on demand and waited for with a
deadline, never a sleep.
"""

from trainq.testing.polling import free_port, wait_until
from trainq.testing.redis_servers import RedisServer, SentinelCluster
from trainq.testing.services import (
    BIN,
    PID_NAMESPACE,
    ApiServer,
    WorkerProcess,
    serves,
    settings_of,
)

__all__ = [
    "BIN", "PID_NAMESPACE", "ApiServer", "RedisServer", "SentinelCluster", "WorkerProcess",
    "free_port", "serves", "settings_of", "wait_until",
]  # fmt: skip
