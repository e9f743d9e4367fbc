"""An attempt's archive holds exactly the lines decoding would pick, though most are
told by their bytes (trainq.artifacts.logs._copy_attempt's fast path)."""

from __future__ import annotations

import gzip
import io

from trainq.artifacts.logs import _copy_attempt
from trainq.logs.format import decode, encode, lines_encoder

TRICKY = [
    "plain",
    'quotes " and a fake field , "attempt": 2, "msg": "x',
    "ünïcödé ✓ and a tab\there",
    "ends with a brace }",
    '{"ts": "2026-01-01T00:00:00Z", "attempt": 2, "msg": "nested"}',
    "",
]


def by_decoding(lines: list[bytes], attempt: int) -> list[bytes]:
    """What the archive held before: every line decoded, kept if of ``attempt``."""
    kept = []
    for raw in lines:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        decoded = decode(text)
        if decoded is not None and decoded.attempt == attempt:
            kept.append(text.encode())
    return kept


def archived(lines: list[bytes], attempt: int) -> tuple[int, list[bytes]]:
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb") as target:
        count = _copy_attempt(io.BytesIO(b"".join(lines)), target, attempt)
    return count, gzip.decompress(packed.getvalue()).splitlines()


def test_an_archive_holds_what_decoding_every_line_would_keep() -> None:
    lines: list[bytes] = []
    for attempt in (1, 2, 12):
        out = lines_encoder("job", job_id="j", attempt=attempt)
        lines += [out([msg], 1_700_000_000.5 + n) for n, msg in enumerate(TRICKY)]
        lines.append(
            (
                encode("worker", "started", job_id="j", attempt=attempt, event="attempt_started")
                + "\n"
            ).encode()
        )
        lines.append(
            (
                encode(
                    "worker",
                    "ended",
                    job_id="j",
                    attempt=attempt,
                    detail={"attempt": 9, "msg": "x"},
                )
                + "\n"
            ).encode()
        )
    lines += [
        (encode("worker", "no attempt", job_id="j") + "\n").encode(),
        # no attempt of its own, but its extra fields hold one in the very same shape
        (
            encode("worker", "x", job_id="j", detail={"x": 1, "attempt": 1, "msg": "y"}) + "\n"
        ).encode(),
        b"not json at all\n",
        b'{"ts": "2026-01-01T00:00:00Z", "level": "INFO", "attempt": 1, "msg": "bad utf8 \xff"}\n',
        b'{"ts": "2026-01-01T00:00:00Z", "level": "INFO", "attempt": 1, "msg": "cut sh',
    ]

    for attempt in (1, 2, 12, 3):
        count, kept = archived(lines, attempt)
        assert kept == by_decoding(lines, attempt)
        assert count == len(kept)
    assert len(archived(lines, 1)[1]) == len(TRICKY) + 3  # its output, 2 events, bad utf8


def test_a_block_is_copied_whole_only_when_each_line_has_one_own_attempt_field() -> None:
    out = lines_encoder("job", job_id="j", attempt=1)
    plain = [out([f"line {i}"], 1_700_000_000.5) for i in range(5)]
    # As many own-attempt fields in all as lines, but two on one line and none on the next.
    ts = b'{"ts": "2026-01-01T00:00:00Z'
    twice = ts + b'", "attempt": 1, "msg": "x", "d": {"q": 1, "attempt": 1, "msg": "y"}}\n'
    none = ts + b'", "msg": "z"}\n'

    for lines in (plain, [*plain, twice, none], [none, twice, *plain], [*plain, b"cut"]):
        count, kept = archived(lines, 1)
        assert kept == by_decoding(lines, 1)
        assert count == len(kept)
    assert archived(plain, 1)[1] == [line.rstrip(b"\n") for line in plain]
    assert archived([*plain, twice, none], 1)[0] == 6  # `none` has no attempt 1
