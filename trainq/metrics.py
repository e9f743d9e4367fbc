"""Prometheus exposition of the cluster: jobs, queues, durations, attempts, failures.

Everything is read from Redis at scrape time (:class:`~trainq.cluster.ClusterView`),
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

from trainq.cluster import ClusterView
from trainq.tally import DURATION_BUCKETS_S


class _ClusterCollector(Collector):
    def __init__(self, view: ClusterView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("trainq_jobs", "Jobs by status", labels=["status"])
        for status, count in self._view.jobs_by_status().items():
            jobs.add_metric([status.value], count)
        yield jobs
        workers = self._view.workers()
        depth = GaugeMetricFamily("trainq_queue_depth", "Messages waiting", labels=["queue"])
        for queue, length in self._view.queue_lengths(workers).items():
            depth.add_metric([queue], length)
        yield depth
        yield GaugeMetricFamily("trainq_workers", "Live workers", value=len(workers))
        totals = self._view.totals()
        finished = CounterMetricFamily(
            "trainq_jobs_finished", "Jobs that reached a final status", labels=["status"]
        )
        failures = CounterMetricFamily(
            "trainq_attempt_failures", "Failed attempts by class", labels=["class"]
        )
        for name, value in sorted(totals.items()):
            kind, _, label = name.partition(":")
            if kind == "finished":
                finished.add_metric([label], value)
            elif kind == "failure_class":
                failures.add_metric([label], value)
        yield finished
        yield failures
        yield CounterMetricFamily(
            "trainq_attempts", "Attempts of finished jobs", value=totals.get("attempts", 0)
        )
        yield CounterMetricFamily(
            "trainq_retries", "Attempts beyond each job's first", value=totals.get("retries", 0)
        )
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
