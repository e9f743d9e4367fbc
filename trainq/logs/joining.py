"""Joining a job's lines from its copies: the Redis stream, this host's log file and
the attempts' archives, each line once and in order, noting where each came from
(:func:`trainq.logs.reader.job_lines` reads through it)."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trainq.logs.format import Decoded, decode
from trainq.logs.stream import LogLine

# An attempt's archived log: its raw JSON lines (the log file's), or None when there
# is none, by attempt number.
Archive = Callable[[int], Iterator[str] | None]


@dataclass
class LogSources:
    """Where a job's lines were read from, filled in as they are read."""

    used: list[str] = field(default_factory=list)  # "stream", "local file <path>", ...
    missing: dict[int, int] = field(default_factory=dict)  # attempt: lines in no copy

    def note(self, source: str) -> None:
        if source not in self.used:
            self.used.append(source)


def join(
    job_id: str,
    numbers: list[int],
    streamed: list[LogLine],
    dropped: int,
    local: Path | None,
    archive: Archive,
    sources: LogSources,
    only_attempt: int | None = None,
) -> Iterator[LogLine]:
    """Every line of the job once, in order, from the stream and the older copies."""
    if streamed and not dropped:  # the stream holds every line since the job's first
        yield from noted(iter(streamed), sources, "stream")
        return
    first = streamed[0] if streamed else None
    by_attempt: dict[int, list[LogLine]] = {}
    for line in streamed:
        by_attempt.setdefault(line.attempt, []).append(line)
    before = set(range(1, first.attempt)) if first is not None else set()
    gone = 0  # lines read of the attempts the stream no longer holds at all
    incomplete: list[int] = []  # of those, the ones no copy holds to their end
    for number in sorted(set(numbers) | set(by_attempt) | before):
        if only_attempt is not None and number != only_attempt:
            continue
        ours = by_attempt.get(number, [])
        if ours and ours[0].index == 0:
            yield from noted(iter(ours), sources, "stream")
            continue
        if first is not None and not ours and number > first.attempt:
            continue  # the stream holds every line since its first: this one had none
        needed = ours[0].index if ours else None  # None: all of it
        copy = _Copy(job_id, number)
        if local is not None:
            yield from noted(copy.read(_texts(local)), sources, f"local file {local}")
        short = not copy.complete if needed is None else copy.taken < needed
        if short:
            texts = archive(number)
            if texts is not None:
                yield from noted(copy.read(texts), sources, f"archive attempt {number}")
        yield from noted(_after(ours, copy.taken), sources, "stream")
        if needed is not None and copy.taken < needed:
            sources.missing[number] = needed - copy.taken
        elif not ours and first is not None:
            gone += copy.taken
            if not copy.complete:
                incomplete.append(number)
    if first is not None and first.index is not None and incomplete:
        # The stream's first offset counts the lines before it; the attempts no copy
        # holds to their end share what is not found: put on the last of them.
        lost = dropped - first.index - gone
        if lost > 0:
            sources.missing[incomplete[-1]] = lost


class _Copy:
    """One attempt's lines from older copies (its log file, its archive), each read
    from where the copies before it ended."""

    def __init__(self, job_id: str, attempt: int) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.taken = 0  # lines of the attempt read so far
        self.complete = False  # a copy held the attempt's end marker (not truncated)

    def read(self, texts: Iterator[str]) -> Iterator[LogLine]:
        index, seen = 0, False
        for entry in _decoded(texts):
            if entry.attempt != self.attempt:
                if seen and entry.attempt > self.attempt:
                    return  # a later attempt: this one's part is over
                continue
            seen = True
            if entry.event == "truncated":
                return  # the copy's size cap: its later lines were only counted
            if entry.event == "attempt_ended":
                self.complete = True
            if entry.event:
                continue  # attempt boundaries and markers: not the job's own output
            if index >= self.taken:
                yield LogLine(self.job_id, entry.attempt, entry.ts, entry.msg, index=index)
                self.taken = index + 1
            index += 1


def _after(lines: list[LogLine], taken: int) -> Iterator[LogLine]:
    """The stream's lines of an attempt past the ``taken`` ones read from its copies;
    lines without an index (written before there was one) only when none were."""
    for line in lines:
        past = not taken if line.index is None else line.index >= taken
        if past:
            yield line


def noted(lines: Iterator[LogLine], sources: LogSources, source: str) -> Iterator[LogLine]:
    for line in lines:
        sources.note(source)
        yield line


def _texts(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        yield from lines


def _decoded(texts: Iterator[str]) -> Iterator[Decoded]:
    for text in texts:
        entry = decode(text)
        if entry is not None:
            yield entry
