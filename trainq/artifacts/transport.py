"""How bytes move to and from the store: fsspec filesystems with bounded timeouts,
and copies that read each byte once, hashing it (sha256) on a second thread while
the next chunk is read and this one written."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import fsspec  # type: ignore[import-untyped]
from fsspec.asyn import sync  # type: ignore[import-untyped]
from fsspec.spec import AbstractBufferedFile  # type: ignore[import-untyped]

from trainq.artifacts.keys import shown_url
from trainq.errors import ArtifactError

# Large enough for sha256 and the write to overlap (each releases the GIL), small
# enough to stay in the CPU's cache from the read to the write: 4 and 8 MiB chunks
# made a local restore slower and erratic.
CHUNK_BYTES = 1 << 20
# A chunk smaller than this is hashed in line: a second thread would cost more.
_OVERLAP_BYTES = 256 << 10
# A chunk of a file as it was read: one buffer, or a stream's parts (never joined).
Chunk = list[bytes]


def filesystem(
    url: str, options: dict[str, Any], timeout_s: float, *, retries: int = 2
) -> tuple[Any, str]:
    """fsspec's filesystem for ``url`` and the root path in it. S3 gets bounded
    timeouts and retries, and no listings cache (other hosts write too)."""
    options = dict(options)
    if urlsplit(url).scheme in ("s3", "s3a"):
        config = dict(options.pop("config_kwargs", {}))
        config.setdefault("connect_timeout", max(0.5, min(5.0, timeout_s / (2 * retries))))
        config.setdefault("read_timeout", timeout_s)
        config.setdefault("retries", {"max_attempts": retries, "mode": "standard"})
        options.update(config_kwargs=config, skip_instance_cache=True, use_listings_cache=False)
    elif urlsplit(url).scheme in ("", "file", "local"):
        options.setdefault("auto_mkdir", True)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ValueError, ImportError, TypeError) as exc:
        raise ArtifactError(f"cannot use artifact store {shown_url(url)}: {exc}") from exc
    if hasattr(fs, "retries"):
        fs.retries = retries  # s3fs's own retry loop, on top of botocore's
    return fs, root


def copy(chunks: Iterable[Chunk], write: Callable[[bytes], object]) -> tuple[int, str]:
    """Write every chunk, hashing it on a second thread meanwhile; the size and sha256.

    sha256 runs at about 1.2 GB/s, slower than a local copy: hashed in line, its whole
    time added to the copy's (a 100 MB restore from a folder took 130 ms, now 100 ms;
    hashing alone takes 86). The next chunk is read and this one written meanwhile.
    """
    digest, size = hashlib.sha256(), 0
    hashing: Future[None] | None = None
    # Starts its thread on the first large chunk only: a small file is hashed in line.
    with ThreadPoolExecutor(1, thread_name_prefix="trainq-sha256") as hasher:
        for parts in chunks:
            if hashing is not None:
                hashing.result()  # in order: one chunk at a time
                hashing = None
            length = sum(map(len, parts))
            if length >= _OVERLAP_BYTES:
                hashing = hasher.submit(_update, digest, parts)
            else:
                _update(digest, parts)
            for part in parts:
                write(part)
            size += length
        if hashing is not None:
            hashing.result()
    return size, digest.hexdigest()


def _update(digest: Any, parts: Chunk) -> None:
    for part in parts:
        digest.update(part)


@contextmanager
def reading(fs: Any, path: str) -> Iterator[Iterator[Chunk]]:
    """The bytes at ``path``, chunk by chunk. From an object store: one streamed GET,
    the next chunk downloading while the caller handles this one (s3fs's file object
    would fetch 50 MB blocks, nothing else happening while each downloads)."""
    source = None
    if getattr(fs, "async_impl", False):
        with suppress(NotImplementedError):  # s3fs streams; not every async fs does
            source = sync(fs.loop, fs.open_async, path, "rb")
    if source is None:
        with fs.open(path, "rb") as local:
            yield ([chunk] for chunk in iter(lambda: local.read(CHUNK_BYTES), b""))
        return
    ahead = asyncio.run_coroutine_threadsafe(_whole_chunk(source), fs.loop)

    def chunks() -> Iterator[Chunk]:
        nonlocal ahead
        while parts := ahead.result():
            ahead = asyncio.run_coroutine_threadsafe(_whole_chunk(source), fs.loop)
            yield parts

    try:
        yield chunks()
    finally:
        ahead.cancel()
        with suppress(Exception):
            sync(fs.loop, _close_stream, source)


async def _whole_chunk(source: Any) -> Chunk:
    """The parts of the next chunk of an async file (a stream's reads give what has
    arrived); none at its end."""
    parts, size = [], 0
    while size < CHUNK_BYTES and (part := await source.read(CHUNK_BYTES - size)):
        parts.append(part)
        size += len(part)
    return parts


async def _close_stream(source: Any) -> None:
    """Close an async file and its response, if any (when not read to the end, it would
    hold its connection until collected)."""
    response = getattr(source, "r", None)  # s3fs's S3AsyncStreamedFile
    if response is not None:
        response.close()
    await source.close()


def abandon(out: Any) -> None:
    """Close ``out`` without publishing it: a buffered upload (S3) is discarded, its
    multipart upload aborted, never completed with what was written so far; a local
    temporary file is closed (the caller removes it)."""
    with suppress(Exception):
        if isinstance(out, AbstractBufferedFile):
            out.discard()
            out.closed = True  # so that neither close() nor __del__ completes it
        else:
            out.close()


def why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
