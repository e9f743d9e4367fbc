"""Prometheus exposition of the cluster: jobs, queues, durations, attempts, failures.

Everything is read from Redis at scrape time (:class:`~trainq.cluster.figures.ClusterView`),
so any API replica serves the same figures, and no figure is lost on a restart.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from trainq.cluster.figures import ClusterView
from trainq.store.totals import DURATION_BUCKETS_S


class _ClusterCollector(Collector):
    def __init__(self, view: ClusterView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        now = self._view.snapshot()
        jobs = GaugeMetricFamily("trainq_jobs", "Jobs by status", labels=["status"])
        for status, count in now.jobs.items():
            jobs.add_metric([status.value], count)
        yield jobs
        depth = GaugeMetricFamily("trainq_queue_depth", "Messages waiting", labels=["queue"])
        for queue, length in now.queues.items():
            depth.add_metric([queue], length)
        yield depth
        yield GaugeMetricFamily("trainq_workers", "Live workers", value=len(now.workers))
        finished = CounterMetricFamily(
            "trainq_jobs_finished", "Jobs that reached a final status", labels=["status"]
        )
        for status, count in now.finished.items():
            finished.add_metric([status.value], count)
        yield finished
        failures = CounterMetricFamily(
            "trainq_attempt_failures", "Failed attempts by class", labels=["class"]
        )
        for failure_class, count in sorted(now.figures.failure_classes.items()):
            failures.add_metric([failure_class], count)
        yield failures
        yield CounterMetricFamily(
            "trainq_attempts", "Attempts of finished jobs", value=now.figures.attempts
        )
        yield CounterMetricFamily(
            "trainq_retries", "Attempts beyond each job's first", value=now.figures.retries
        )
        totals = now.durations
        buckets = [(str(b), totals.get(f"duration_le:{b}", 0.0)) for b in DURATION_BUCKETS_S]
        observed = totals.get("duration_count", 0.0)
        yield HistogramMetricFamily(
            "trainq_job_duration_seconds",
            "Run time of finished jobs, first start to end",
            buckets=[*buckets, ("+Inf", observed)],
            sum_value=totals.get("duration_sum_s", 0.0),
        )


def exposition(view: ClusterView) -> bytes:
    """The Prometheus text format of the cluster now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ClusterCollector(view))
    return generate_latest(registry)
