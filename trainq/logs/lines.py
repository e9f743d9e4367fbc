"""The one line splitter: bytes as they arrive (a pipe, a file, Docker's chunks) in,
complete lines out, the unfinished rest kept for the next chunk.

Every runtime reads its attempt's output through it, so each splits alike: on
``\\n``, trailing ``\\r`` dropped, invalid UTF-8 replaced, a last line without a
newline given by :meth:`LineSplitter.rest` once the output has ended.
"""

from __future__ import annotations


class LineSplitter:
    def __init__(self) -> None:
        self._pending = b""

    def raw(self, chunk: bytes) -> list[bytes]:
        """The complete lines (bytes, without ``\\n``) that ``chunk`` finishes."""
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        return complete

    def feed(self, chunk: bytes) -> list[str]:
        """The complete lines that ``chunk`` finishes, as text: decoded in one go (a
        newline never falls inside a UTF-8 sequence, so it splits as per-line would)."""
        data = self._pending + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._pending = data
            return []
        self._pending = data[end + 1 :]
        return [line.rstrip("\r") for line in data[:end].decode("utf-8", "replace").split("\n")]

    def rest(self) -> bytes:
        """What came after the last newline (and forget it)."""
        rest, self._pending = self._pending, b""
        return rest

    def reset(self) -> None:
        """Drop what is pending (its source was replaced, e.g. a rotated file)."""
        self._pending = b""


def text(raw: bytes) -> str:
    """One raw line as text: invalid UTF-8 replaced, trailing ``\\r`` dropped."""
    return raw.decode("utf-8", errors="replace").rstrip("\r")
