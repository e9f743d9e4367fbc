"""``/stats``, ``/health`` and ``/metrics``: the cluster as the API sees it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from trainq import connections
from trainq.api.auth import Caller, current_principal
from trainq.api.models import UNAUTHORIZED, Health, Me, Stats, UserUsage, WorkerView
from trainq.client.scheduling import owner_shares
from trainq.cluster import metrics
from trainq.cluster.figures import ClusterView
from trainq.cluster.registry import WorkerInfo
from trainq.cluster.usage import Usage, usage
from trainq.config import Settings
from trainq.scheduler.view import Share


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["cluster"])
    auth = [Depends(current_principal)]

    def cluster() -> ClusterView:
        return ClusterView(connections.records(settings), connections.registry(settings), settings)

    @api.get("/me", response_model=Me, responses=UNAUTHORIZED, tags=["users"])
    def me(principal: Caller) -> Me:
        """Whom the token names."""
        return Me(name=principal.name, admin=principal.admin)

    @api.get("/stats", response_model=Stats, responses=UNAUTHORIZED)
    def stats(principal: Caller) -> Stats:
        """Jobs by status, queue lengths, live workers and their GPUs, figures, and per
        user their jobs, GPU-hours, fair-share usage and standing, and quotas."""
        now = cluster().snapshot()
        hidden = settings.jobs_visible == "owner" and not principal.admin
        owners = usage(connections.records(settings), principal.name if hidden else None)
        shares = {share.owner: share for share in owner_shares(settings)}
        idle = [u.name for u in owners if u.name not in shares]
        policies = connections.policies(settings).many(idle) if idle else {}
        return Stats(
            jobs={status.value: count for status, count in now.jobs.items()},
            queues=now.queues,
            workers=[_worker(w) for w in now.workers],
            figures=now.figures,
            users=[
                _usage(u, shares.get(u.name) or Share(u.name, 0.0, 0.0, 0, 0, policies[u.name]))
                for u in owners
            ],
        )

    @api.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "Something trainq needs is down"}},
    )
    def health(response: Response) -> Health:
        """Redis, live workers and their Docker engines reachable; `503` when not."""
        checks = cluster().health(connections.probe(settings))
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
        gpus=list(info.gpu_ids),
        gpu_uuids=list(info.gpu_uuids),
        runtime=info.runtime,
        concurrency=info.concurrency,
        runtime_error=info.runtime_error,
        store_error=info.store_error,
    )


def _usage(found: Usage, share: Share) -> UserUsage:
    """An owner's usage, and their fair share (zeros for one with nothing pending or
    running: the scheduler does not look at them)."""
    return UserUsage(
        name=found.name,
        jobs={status.value: count for status, count in found.jobs.items()},
        gpu_hours=round(found.gpu_hours, 6),
        cpu_hours=round(found.cpu_hours, 6),
        running_gpus=found.running_gpus,
        running_jobs=share.running_jobs,
        usage_gpu_hours=round(share.usage_gpu_hours, 6),
        standing=round(share.standing, 3),
        weight=share.policy.weight,
        quota_gpus=share.policy.gpus,
        quota_jobs=share.policy.jobs,
    )
