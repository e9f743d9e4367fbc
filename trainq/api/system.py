"""``/stats``, ``/health`` and ``/metrics``: the cluster as the API sees it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from trainq import client, metrics
from trainq.api.auth import TokenCheck
from trainq.api.models import UNAUTHORIZED, Figures, Health, Stats, WorkerView
from trainq.cluster import ClusterView
from trainq.config import Settings
from trainq.status import JobStatus
from trainq.workers import WorkerInfo


def router(check: TokenCheck, settings: Settings) -> APIRouter:
    api = APIRouter(tags=["cluster"])
    auth = [Depends(check)]

    def cluster() -> ClusterView:
        return ClusterView(client.default_store(settings), settings)

    @api.get("/stats", response_model=Stats, dependencies=auth, responses=UNAUTHORIZED)
    def stats() -> Stats:
        """Jobs by status, queue lengths, live workers and their GPUs, and figures."""
        view = cluster()
        totals = view.totals()
        workers = view.workers()
        finished = {status: int(totals.get(f"finished:{status.value}", 0)) for status in JobStatus}
        done = sum(finished.values())
        classes = {
            name.removeprefix("failure_class:"): int(value)
            for name, value in totals.items()
            if name.startswith("failure_class:")
        }
        return Stats(
            jobs={status.value: count for status, count in view.jobs_by_status().items()},
            queues=view.queue_lengths(workers),
            workers=[_worker(w) for w in workers],
            figures=Figures(
                finished=done,
                succeeded=finished[JobStatus.SUCCEEDED],
                failed=done - finished[JobStatus.SUCCEEDED] - finished[JobStatus.CANCELLED],
                success_rate=finished[JobStatus.SUCCEEDED] / done if done else None,
                attempts=int(totals.get("attempts", 0)),
                retries=int(totals.get("retries", 0)),
                failure_classes=classes,
            ),
        )

    @api.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "Something trainq needs is down"}},
    )
    def health(response: Response) -> Health:
        """Redis, live workers and their Docker engines reachable; `503` when not."""
        checks = cluster().health()
        ok = all(value == "ok" for value in checks.values())
        if not ok:
            response.status_code = 503
        return Health(ok=ok, checks=checks)

    @api.get(
        "/metrics",
        response_class=Response,
        dependencies=[] if settings.metrics_public else auth,
        responses={
            **UNAUTHORIZED,
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        },
    )
    def prometheus() -> Response:
        """Jobs by status, queue depth, job durations, attempts and failure classes."""
        return Response(metrics.exposition(cluster()), media_type=CONTENT_TYPE_LATEST)

    return api


def _worker(info: WorkerInfo) -> WorkerView:
    return WorkerView(
        name=info.name,
        hostname=info.hostname,
        queues=list(info.queues),
        gpus=info.gpus,
        gpu_uuids=list(info.gpu_uuids),
        runtime=info.runtime,
        concurrency=info.concurrency,
        runtime_error=info.runtime_error,
    )
