"""The worker's Celery consumer: Celery's, surviving a broker connection lost while
jobs run.

Celery 5.7 with kombu 5.7: when the broker's connection drops, the consumer collects
the connection, which unhooks its transport from it (``transport.client = None``),
and then closes it. Everything that still talks through that transport then fails
with ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which is not a
connection error, so the whole worker shut down: the close, putting unacknowledged
messages back, and the acknowledgement of each job that was running when the
connection dropped, as it ends. A Redis restart or failover thus ended every worker
that ran a job (with a free slot the close crashed at once; a full one, as its jobs
ended).

Here the collected transport stays hooked to its (closed) connection: its channels
reach Redis again through a new pool (through the sentinels, to the new primary), so
the running jobs are acknowledged when they end, and the close does what it can.
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Named by celery_app (``worker_consumer``); only a worker imports it."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        if connection is not None:
            collect = connection.collect

            def collect_keeping_the_transport(*args: Any, **kwargs: Any) -> None:
                transport = connection._transport
                collect(*args, **kwargs)
                if transport is not None:
                    transport.client = connection

            connection.collect = collect_keeping_the_transport
        super().on_connection_error_after_connected(exc)
