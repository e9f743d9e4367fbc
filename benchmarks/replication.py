"""What waiting for a replica costs a submit: ``submit_training.delay()`` and ``POST
/train`` with ``WAIT`` on (``TRAINQ_REDIS_MIN_REPLICAS=1``: the job is on a replica
before the submit returns) against off (``0``: the primary only), in interleaved
batches on one Redis primary with one replica and three sentinels (every client finds
the primary through them), with no worker consuming; jobs/s.

No goal: the issue asks for the figures. WAIT costs one more round trip per submit (a
mark and WAIT, pipelined) plus the replica's acknowledgement.
Run alone: .venv/bin/python -m benchmarks.replication [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from benchmarks import cluster as _cluster  # first: it points trainq at private state
from benchmarks.figures import Figure, interleave, report
from benchmarks.http import post_rate
from benchmarks.submit import submit_rate

BATCHES = 6
TOKEN = "bench-token"
API_CLIENTS = 8
API_ENV = {"TRAINQ_API_RATE_PER_S": "0"}


def _free_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
    return ports


# The sentinels' ports are known before trainq reads its settings (at its first import).
SENTINEL_PORTS = _free_ports(3)
os.environ.update(
    {
        "TRAINQ_REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in SENTINEL_PORTS),
        "TRAINQ_REDIS_MASTER_NAME": "bench",
        "TRAINQ_REDIS_URL": "redis://127.0.0.1/0",
    }
)


@contextmanager
def min_replicas(count: int) -> Iterator[None]:
    """This process's settings with TRAINQ_REDIS_MIN_REPLICAS=count (what delay() reads)."""
    from trainq.config import get_settings

    os.environ["TRAINQ_REDIS_MIN_REPLICAS"] = str(count)
    get_settings.cache_clear()
    try:
        yield
    finally:
        del os.environ["TRAINQ_REDIS_MIN_REPLICAS"]
        get_settings.cache_clear()


def delay_rate(count: int, jobs: int) -> Callable[[], float]:
    from trainq import submit_training

    def rate() -> float:
        with min_replicas(count):
            return submit_rate(lambda: submit_training.delay(command=["true"]), jobs)

    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="submits per batch")
    args = parser.parse_args()

    from trainq.testing import SentinelCluster

    body = json.dumps({"command": ["true"]}).encode()
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    ha = SentinelCluster(_cluster.STATE / "ha", master_name="bench", sentinel_ports=SENTINEL_PORTS)
    with ExitStack() as stack:
        ha.start()
        stack.callback(ha.stop)
        api = {
            n: stack.enter_context(
                _cluster.api_server(TOKEN, {**API_ENV, "TRAINQ_REDIS_MIN_REPLICAS": str(n)})
            )
            for n in (1, 0)
        }

        def api_rate(n: int) -> Callable[[], float]:
            url = f"{api[n].url}/train"
            return lambda: post_rate(url, auth, body, requests=args.jobs, clients=API_CLIENTS)

        rates = interleave(
            BATCHES,
            {
                "delay on": delay_rate(1, args.jobs),
                "delay off": delay_rate(0, args.jobs),
                "api on": api_rate(1),
                "api off": api_rate(0),
            },
        )
    figures = [
        Figure(
            f"{name} with WAIT for 1 replica (median of batches; baseline: the same without "
            "WAIT, primary only)",
            "jobs/s",
            statistics.median(rates[f"{variant} on"]),
            statistics.median(rates[f"{variant} off"]),
            "",
            goal_on="ratio",
        )
        for variant, name in [
            ("delay", "submit_training.delay()"),
            ("api", f"POST /train, {API_CLIENTS} connections"),
        ]
    ]
    report("replication", figures)


if __name__ == "__main__":
    main()
