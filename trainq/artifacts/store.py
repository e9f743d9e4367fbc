"""The artifact store: one folder tree of every job's files, behind fsspec.

The store is a URL: ``file:///srv/artifacts`` (one host, or a shared mount seen by
every host) or ``s3://bucket/prefix`` (any S3-compatible server). Keys are paths
relative to that root, ``jobs/<job_id>/outputs/model.pt``; :func:`artifact_key`
builds them and refuses a path that would leave the job's prefix.

Write, then publish: a reader never sees a half-written object. In a folder each
write goes to a hidden temporary name in the same folder and is renamed into place
(a rename within a folder is atomic); on S3 an object becomes visible only when its
PUT (or multipart upload) completes, so it is written in place, and a failed
upload is aborted rather than completed.

Every failure of the store surfaces as trainq's own error, naming the store's URL:
:class:`~trainq.errors.ArtifactNotFound` (no such key),
:class:`~trainq.errors.StoreUnavailable` (the endpoint does not answer) or
:class:`~trainq.errors.ArtifactError` (anything else).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import botocore.exceptions  # type: ignore[import-untyped]
from fsspec.exceptions import FSTimeoutError  # type: ignore[import-untyped]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

from trainq.artifacts.keys import shown_url
from trainq.artifacts.transport import CHUNK_BYTES, Chunk, abandon, copy, filesystem, reading, why
from trainq.config import Settings
from trainq.errors import (
    ArtifactError,
    ArtifactNotFound,
    BadArtifactPath,
    StoreUnavailable,
)

# Where a write lands before it is renamed into place: hidden, and never listed.
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.partial$")
# Object stores publish a PUT whole; every other filesystem publishes by renaming.
_OBJECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
# What an endpoint that does not answer looks like (refused, timed out, dropped).
_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    FSTimeoutError,
    botocore.exceptions.ConnectionError,  # refused, connect timeout
    botocore.exceptions.HTTPClientError,  # read timeout, connection dropped
)
_STORE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    FSTimeoutError,
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
)
# The probe gives up sooner than a transfer: it answers "is the store there?".
_PROBE_TIMEOUT_S = 2.0


class ArtifactStore:
    """Keys and bytes in the store at ``url``; ``storage_options`` go to fsspec.

    A call gives up within about ``timeout_s`` when an S3 endpoint does not answer
    (bounded connect and read timeouts, few retries).
    """

    def __init__(
        self, url: str, *, storage_options: dict[str, Any] | None = None, timeout_s: float = 30.0
    ) -> None:
        self.url = shown_url(url)
        self._raw_url = url
        self._options = dict(storage_options or {})
        self._timeout_s = timeout_s
        self._pid = os.getpid()
        self._fs_here, root = filesystem(url, self._options, timeout_s)
        self._root = str(root).rstrip("/")
        protocols = self._fs_here.protocol
        protocols = {protocols} if isinstance(protocols, str) else set(protocols)
        self._rename_to_publish = not (protocols & _OBJECT_PROTOCOLS)
        self._local = isinstance(self._fs_here, LocalFileSystem)  # the kernel copies
        # s3fs asks for an object's size (a HEAD) before reading it whole, to split a large
        # read; what this store reads whole is small (manifests): one GET does.
        self._whole_read: dict[str, Any] = {"max_concurrency": 1} if "s3" in protocols else {}
        self._probe_timeout_s = min(timeout_s, _PROBE_TIMEOUT_S)
        self._probe_fs: Any = None  # built on the first probe

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactStore:
        """The store at ``settings.artifact_location``, with its S3 endpoint, region and
        credentials when set (otherwise s3fs finds them as boto does)."""
        url = settings.artifact_location
        options: dict[str, Any] = {}
        if urlsplit(url).scheme in ("s3", "s3a"):
            if settings.artifact_s3_endpoint_url:
                options["endpoint_url"] = settings.artifact_s3_endpoint_url
            if settings.artifact_s3_region:
                options["client_kwargs"] = {"region_name": settings.artifact_s3_region}
            if settings.artifact_s3_access_key_id.get_secret_value():
                options["key"] = settings.artifact_s3_access_key_id.get_secret_value()
            if settings.artifact_s3_secret_access_key.get_secret_value():
                options["secret"] = settings.artifact_s3_secret_access_key.get_secret_value()
        return cls(url, storage_options=options, timeout_s=settings.artifact_timeout_s)

    @property
    def _fs(self) -> Any:
        self._after_fork()
        return self._fs_here

    def _after_fork(self) -> None:
        """In a forked child (a worker's pool process) the filesystems are built again:
        the parent's connections and event loop are not the child's to use."""
        if self._pid != os.getpid():
            self._fs_here, _ = filesystem(self._raw_url, self._options, self._timeout_s)
            self._probe_fs = None
            self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def probe(self) -> None:
        """Write and delete a small object at the root; StoreUnavailable (naming the URL
        and why) when that fails: a folder that cannot be created or written, a missing
        bucket, an endpoint that does not answer, credentials refused."""
        self._after_fork()
        if self._probe_fs is None:
            self._probe_fs, _ = filesystem(
                self._raw_url, self._options, self._probe_timeout_s, retries=1
            )
        fs = self._probe_fs
        path = f"{self._root}/.probe-{uuid.uuid4().hex}"
        try:
            if self._rename_to_publish:
                fs.makedirs(self._root, exist_ok=True)
            fs.pipe_file(path, b"probe")
            fs.rm_file(path)
        except _STORE_ERRORS as exc:
            reason = why(exc)
            raise StoreUnavailable(f"artifact store {self.url} does not answer: {reason}") from exc

    def put_file(self, local: Path, key: str) -> tuple[int, str]:
        """Upload ``local`` to ``key``, reading it once; its size and sha256 (hex)."""
        with self._errors("upload", key, writing=True), local.open("rb") as source:
            # read1: what one read gives (a whole chunk of a file), not waiting on a pipe
            return self._write(key, ([c] for c in iter(lambda: source.read1(CHUNK_BYTES), b"")))

    def put_bytes(self, key: str, data: bytes) -> tuple[int, str]:
        """Store ``data`` at ``key``; its size and sha256 (hex)."""
        with self._errors("upload", key, writing=True):
            return self._write(key, iter([[data]]))

    def get_file(self, key: str, local: Path, *, sha256: str | None = None) -> tuple[int, str]:
        """Download ``key`` to ``local`` through a temporary name next to it, renamed
        into place once complete (and, given ``sha256``, only when the bytes match:
        otherwise ArtifactError and ``local`` is untouched); its size and sha256."""
        with _landing(local) as temp:
            with (
                self._errors("download", key),
                reading(self._fs, self._path(key)) as chunks,
                temp.open("wb") as target,
            ):
                size, found = copy(chunks, target.write)
            if sha256 is not None and found != sha256:
                raise ArtifactError(
                    f"{self.url}/{key} is corrupt: its sha256 is {found}, expected {sha256}"
                )
        return size, found

    def get_blob(self, key: str, local: Path, *, size: int) -> int:
        """Download the checkpoint blob ``key`` of ``size`` bytes to ``local`` (another
        size: ArtifactError, ``local`` untouched); the bytes downloaded. A blob is
        written once under a name of its own and published whole, so one of the right
        size holds the bytes uploaded: they are not hashed again (sha256 alone costs 2.5
        local copies). From a folder the kernel copies; from S3 one streamed GET."""
        with _landing(local) as temp:
            with self._errors("download", key):
                if self._local:
                    shutil.copyfile(self._path(key), temp)
                else:
                    with reading(self._fs, self._path(key)) as chunks, temp.open("wb") as out:
                        out.writelines(part for parts in chunks for part in parts)
            if (found := temp.stat().st_size) != size:
                raise ArtifactError(
                    f"{self.url}/{key} is corrupt: it holds {found} bytes, expected {size}"
                )
        return size

    def open(self, key: str) -> BinaryIO:
        """``key`` opened for reading (ArtifactNotFound when there is none)."""
        with self._errors("open", key):
            return cast(BinaryIO, self._fs.open(self._path(key), "rb"))

    def read_bytes(self, key: str) -> bytes:
        """The whole of ``key`` (ArtifactNotFound when there is none)."""
        with self._errors("read", key):
            return cast(bytes, self._fs.cat_file(self._path(key), **self._whole_read))

    def exists(self, key: str) -> bool:
        with self._errors("look up", key):
            try:
                info = self._fs.info(self._path(key))
            except FileNotFoundError:
                return False
        return bool(info.get("type") != "directory")

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """Every key under the folder ``prefix`` (recursively) with its size, keys
        relative to the store's root, sorted; empty when there is none."""
        folder = self._path(prefix) if prefix.strip("/") else self._root
        with self._errors("list", prefix):
            found = self._fs.find(folder, detail=True)
        start = len(self._root) + 1
        return sorted(
            (path[start:], int(info.get("size") or 0))
            for path, info in found.items()
            if info.get("type") != "directory" and not _TEMP_NAME.match(path.rsplit("/", 1)[-1])
        )

    def delete(self, key: str) -> None:
        """Delete ``key``; nothing when there is none."""
        with suppress(ArtifactNotFound), self._errors("delete", key):
            self._fs.rm_file(self._path(key))

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under the folder ``prefix``; nothing when there is none."""
        with suppress(ArtifactNotFound), self._errors("delete", prefix):
            self._fs.rm(self._path(prefix), recursive=True)

    def _write(self, key: str, chunks: Iterator[Chunk]) -> tuple[int, str]:
        path = self._path(key)
        if self._rename_to_publish:
            parent, _, name = path.rpartition("/")
            self._fs.makedirs(parent, exist_ok=True)
            target = f"{parent}/{_temp_name(name)}"
        else:
            target = path  # the object appears only when its upload completes
        out = self._fs.open(target, "wb")
        try:
            size, sha256 = copy(chunks, out.write)
        except BaseException:
            abandon(out)
            if self._rename_to_publish:
                with suppress(OSError):
                    self._fs.rm_file(target)
            raise
        out.close()
        if self._rename_to_publish:
            self._fs.mv(target, path)
        return size, sha256

    def _path(self, key: str) -> str:
        parts = key.strip("/").split("/")
        if "\\" in key or "\0" in key or any(p in ("", ".", "..") for p in parts):
            raise BadArtifactPath(f"{key!r} is not a key of the artifact store {self.url}")
        return f"{self._root}/{key.strip('/')}"

    @contextmanager
    def _errors(self, action: str, key: str, *, writing: bool = False) -> Iterator[None]:
        """The store's failures as trainq's errors, naming the URL and the key."""
        try:
            yield
        except (ArtifactError, StoreUnavailable):
            raise
        except FileNotFoundError as exc:
            if writing:
                raise ArtifactError(f"cannot {action} {self.url}/{key}: {why(exc)}") from exc
            raise ArtifactNotFound(f"no artifact {key} in {self.url}") from exc
        except _UNREACHABLE as exc:
            raise StoreUnavailable(
                f"artifact store {self.url} does not answer ({action} {key}): {why(exc)}"
            ) from exc
        except _STORE_ERRORS as exc:
            raise ArtifactError(f"cannot {action} {self.url}/{key}: {why(exc)}") from exc


@contextmanager
def _landing(local: Path) -> Iterator[Path]:
    """A temporary name next to ``local``, renamed into place when the block ends well
    and removed otherwise: a download is whole at ``local`` or not there at all."""
    local.parent.mkdir(parents=True, exist_ok=True)
    temp = local.with_name(_temp_name(local.name))
    try:
        yield temp
        os.replace(temp, local)
    finally:
        temp.unlink(missing_ok=True)


def _temp_name(name: str) -> str:
    return f".{name}.{uuid.uuid4().hex}.partial"
