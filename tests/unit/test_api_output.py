"""ApiOutput: a container's output followed through the engine's API, in batches, resumed
after a dropped connection without a line twice."""

from __future__ import annotations

from collections.abc import Iterator

from trainq.runtime.container_logs import ApiOutput, stamp_ns

STAMPS = ["2026-11-29T00:00:01.5Z", "2026-11-29T00:00:01.5Z", "2026-11-29T00:00:02Z"]
STAMPS += ["2026-11-29T00:00:02Z", "2026-11-29T00:00:03.25Z"]
LINES = [f"{stamp} line {i}\n".encode() for i, stamp in enumerate(STAMPS)]


def _ns(stamp: bytes | str) -> int:
    ns = stamp_ns(stamp.decode() if isinstance(stamp, bytes) else stamp)
    assert ns is not None
    return ns


class Engine:
    """Gives the lines from ``since`` on, as the engine does (its own chunks); the first
    stream drops after three lines, cut inside the fourth."""

    def __init__(self) -> None:
        self.calls: list[float | None] = []

    def stream(self, since: float | None) -> Iterator[bytes]:
        self.calls.append(since)
        given = [line for line in LINES if since is None or _ns(line.split()[0]) / 1e9 >= since]
        data = b"".join(given)
        if len(self.calls) == 1:
            data = b"".join(LINES[:3]) + LINES[3][:12]  # dropped mid-line
        yield data[:40]
        yield data[40:]

    def alive(self) -> bool:
        return len(self.calls) < 2  # it ends during the second stream


def test_batches_come_per_chunk_and_a_dropped_stream_resumes_without_a_line_twice() -> None:
    engine = Engine()
    output = ApiOutput(engine.stream, engine.alive)

    batches = list(output.batches())

    assert [line for batch in batches for line in batch] == [f"line {i}" for i in range(5)]
    assert all(batches) and len(batches) >= 3  # one per chunk that finished a line
    assert engine.calls[0] is None
    # Resumed a millisecond before the last line given (line 2's time), skipping it.
    assert engine.calls[1] == _ns(STAMPS[2]) / 1e9 - 0.001
    assert output.position == f"{_ns(STAMPS[4])}#1"
