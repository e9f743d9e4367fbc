"""A followed job's quiet and a dead link, told apart: the API sends a keep-alive while
the job prints nothing, and the remote CLI gives up on a follow that stays silent
longer (a server here that answers the headers, then says nothing at all)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from trainq.api.routes import logs as log_route
from trainq.errors import Unavailable
from trainq.logs.joining import LogSources
from trainq.logs.reader import LogQuery
from trainq.logs.stream import LogLine
from trainq.remote import ApiClient
from trainq.remote import logs as remote_logs

pytestmark = pytest.mark.integration

JOB = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def silent_api() -> Iterator[str]:
    """An HTTP server that starts a server-sent event stream, then never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            held.append(conn)  # open, silent

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


def test_a_follow_silent_past_its_limit_says_the_api_is_gone(
    silent_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_logs, "FOLLOW_SILENCE_S", 1.0)
    started = time.monotonic()
    with ApiClient(silent_api, "tq_token", timeout_s=0.5) as api:
        lines = remote_logs.follow(api, JOB, LogQuery(), LogSources(), lambda exc: None)
        with pytest.raises(Unavailable, match=silent_api):
            list(lines)
    assert time.monotonic() - started < 10


def live(lines: list[LogLine | None]) -> list[str]:
    """The events the follow route sends for these reads (None: nothing new)."""

    async def events() -> list[str]:
        return [text async for text in log_route._live_events(iter(lines))]

    return asyncio.run(events())


def test_a_quiet_job_gets_keep_alives_between_its_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_route, "KEEPALIVE_S", 0.0)
    monkeypatch.setattr(log_route, "FOLLOW_POLL_S", 0.0)
    line = LogLine(JOB, 1, 1.5, "epoch 1")
    # A read that brings lines stops at the next idle mark: the last two are two reads.
    events = live([None, line, None, None])
    assert events[0] == ": keep-alive\n\n"
    assert events[1].startswith("event: line\n") and '"epoch 1"' in events[1]
    assert events[2] == ": keep-alive\n\n"
    monkeypatch.setattr(log_route, "KEEPALIVE_S", 3600.0)
    assert live([None, line, None, None]) == [events[1]]
