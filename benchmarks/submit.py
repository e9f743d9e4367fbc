"""Submission throughput and list-page latency, against bare Celery and bare Redis.

Submits: ``submit_training.delay()`` (validate, record as pending: with the default
fair scheduler a worker's admission loop sends it later) and ``POST /train`` through
a real API server (``trainq api``, its default processes, 8 keep-alive connections
from ApacheBench) against a bare Celery ``send_task`` of a no-op, in interleaved
batches, with no worker consuming; jobs/s. The API's caller is a user whose token is
checked against its stored hash, every submit is audited (file and stream) and
rate-limited (one Redis call, with a limit set high enough never to refuse). Goals,
as ratios to the bare ``send_task`` rate of the same run: ``delay()`` >= 0.85,
``POST /train`` >= 0.77 (issue 17 wants 1,200/s where ``send_task`` ran 1,555/s;
this replaces a fixed >= 500/s).

Listing: the store topped up to 10,000 job records, then every page of the job list,
newest first, 50 jobs a page, walked twice: ``client.list_jobs`` (what ``trainq
list`` calls) and ``GET /train`` through the API, against a bare ``ZREVRANGE`` +
``MGET`` of the same page's raw records (no parsing, no HTTP), page by page in turn;
p50 and p95 per page. Goals, as ratios of p95 to the bare read's p95 of the same run:
``client.list_jobs`` <= 4, ``GET /train`` <= 15 (measured 1.9-2.7 and 6.5-8.8 on 2
shared cores; lower with both saturated). They replace a fixed p95 <= 50 ms, about
50x the bare read, which only a many-fold slowdown could miss.

A missed goal exits 3, naming the figure, after every figure is written.
Run alone: .venv/bin/python -m benchmarks.submit [--jobs N] [--store-jobs N]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import quote
from urllib.request import Request, urlopen

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.figures import Figure, interleave, percentile, report, timed
from benchmarks.http import post_rate

PAGE = 50
BATCHES = 6
WALKS = 2  # walks through every page of the list, per variant
TOKEN = "bench-token"
# The rate limit is checked on every request, and never refuses one here.
API_ENV = {"TRAINQ_API_RATE_PER_S": "1000000", "TRAINQ_API_RATE_BURST": "1000000"}
API_CLIENTS = 8
# Ratio goals against the bare baselines of the same run (see the docstring).
SUBMIT_GOAL = ">= 0.85"
API_SUBMIT_GOAL = ">= 0.77"
CLIENT_PAGE_GOAL = "<= 4"
API_PAGE_GOAL = "<= 15"
P = TypeVar("P")  # where a page starts: a cursor, an offset


def submit_rate(submit: Callable[[], object], jobs: int) -> float:
    """Jobs per second of ``jobs`` calls to ``submit`` in a row."""
    with timed() as elapsed_s:
        for _ in range(jobs):
            submit()
        return jobs / elapsed_s()


def page_steps_ms(fetch: Callable[[P | None], P | None]) -> Callable[[], float]:
    """A step through the pages (``fetch`` takes a page's start, returns the next's):
    each call fetches the next page, from the first again after the last; its ms."""
    start: P | None = None

    def step() -> float:
        nonlocal start
        with timed() as elapsed_s:
            start = fetch(start)
            return elapsed_s() * 1000

    return step


def top_up(records: int) -> None:
    """Add queued job records (copies of a submitted one) until the store holds ``records``."""
    from trainq import connections

    store = connections.records()
    model = store.list(limit=1).records[0]
    for _ in range(records - store.count()):
        store.create(model.model_copy(update={"id": str(uuid.uuid4()), "created_at": time.time()}))


@contextmanager
def _user_token() -> Iterator[str]:
    """A new user's token (the API checks it against its stored hash on every call)."""
    from trainq import connections

    yield connections.users().add(f"bench-{uuid.uuid4().hex[:8]}")[1].secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="submits per batch")
    parser.add_argument("--store-jobs", type=int, default=10_000)
    args = parser.parse_args()

    from trainq import client, connections, submit_training
    from trainq.celery_app import app
    from trainq.config import get_settings
    from trainq.store.keys import Keys

    store = connections.records()
    keys = Keys(get_settings().key_prefix)

    def bare_page(offset: int | None) -> int | None:
        offset = offset or 0
        ids: list[str] = store.client.zrevrange(keys.all_jobs, offset, offset + PAGE - 1)  # type: ignore[assignment]
        store.client.mget([keys.job(i) for i in ids])
        return offset + PAGE if len(ids) == PAGE else None

    def trainq_page(cursor: str | None) -> str | None:
        return client.list_jobs(limit=PAGE, cursor=cursor, records=store).next_cursor

    body = json.dumps({"command": ["true"]}).encode()

    with (
        _cluster.redis_server(),
        _user_token() as user_token,
        _cluster.api_server(TOKEN, API_ENV) as api,
    ):
        auth = {"Authorization": f"Bearer {user_token}", "Content-Type": "application/json"}

        def api_page(cursor: str | None) -> str | None:
            query = f"?limit={PAGE}" + (f"&cursor={quote(cursor)}" if cursor else "")
            with urlopen(Request(f"{api.url}/train{query}", headers=auth)) as reply:
                page: dict[str, str | None] = json.load(reply)
            return page["next_cursor"]

        submits = interleave(
            BATCHES,
            {
                "trainq": lambda: submit_rate(
                    lambda: submit_training.delay(command=["true"]), args.jobs
                ),
                "api": lambda: post_rate(
                    f"{api.url}/train", auth, body, requests=args.jobs, clients=API_CLIENTS
                ),
                "bare": lambda: submit_rate(lambda: app.send_task("bench.noop"), args.jobs),
            },
        )
        top_up(args.store_jobs)
        stored = store.count()
        # Page by page, the three in turn: a burst of load falls on all three alike.
        listed = interleave(
            WALKS * math.ceil(stored / PAGE),
            {
                "trainq": page_steps_ms(trainq_page),
                "api": page_steps_ms(api_page),
                "bare": page_steps_ms(bare_page),
            },
        )
    bare_submit = "bare Celery send_task of a no-op"
    figures = [
        Figure(
            f"{name} (median of batches; baseline: {bare_submit})",
            "jobs/s",
            statistics.median(submits[variant]),
            statistics.median(submits["bare"]),
            goal,
            goal_on="ratio",
        )
        for variant, name, goal in [
            ("trainq", "submit_training.delay()", SUBMIT_GOAL),
            ("api", f"POST /train, {API_CLIENTS} connections", API_SUBMIT_GOAL),
        ]
    ]
    bare_page_read = "bare ZREVRANGE + MGET of the page's records"
    figures += [
        Figure(
            f"{name} page of {PAGE} at {stored} jobs, p{q} (baseline: {bare_page_read})",
            "ms",
            percentile(listed[variant], q),
            percentile(listed["bare"], q),
            goal if q == 95 else "",
            goal_on="ratio",
        )
        for variant, name, goal in [
            ("trainq", "client.list_jobs", CLIENT_PAGE_GOAL),
            ("api", "GET /train", API_PAGE_GOAL),
        ]
        for q in (50, 95)
    ]
    report("submit", figures)


if __name__ == "__main__":
    main()
