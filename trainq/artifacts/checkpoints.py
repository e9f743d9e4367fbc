"""Checkpoints follow the job: published while an attempt runs, restored on any host.

Each upload of a file goes to a new, unique blob; the manifest that names the blobs
is written last, as the publish step (layout: :mod:`trainq.artifacts.manifest`). So
a reader who finds a manifest finds every blob it names complete, and a publish
never overwrites a blob that someone may be downloading. Blobs that the new
manifest no longer names are deleted after it is published; a restore that loses
that race finds the newer manifest and starts over. Blobs of a publish that failed
halfway are deleted at once, or (after a crash) stay unnamed until the job's
artifacts are deleted.

A publish uploads only the files whose size or mtime changed since this host's last
publish or restore (its state file); a restore replaces the local folder only when
that is empty or older than the store's checkpoint, and puts nothing in place until
every file is downloaded and checked.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainq.artifacts.manifest import (
    FileEntry,
    HostState,
    Manifest,
    blob_key,
    listed,
    manifest_key,
    new_blob,
    read_manifest,
    read_state,
    scan,
    write_state,
)
from trainq.artifacts.store import ArtifactStore
from trainq.errors import ArtifactError, ArtifactNotFound

__all__ = [
    "Manifest",
    "Restored",
    "listed",
    "publish",
    "read_manifest",
    "restore",
]


@dataclass(frozen=True)
class Restored:
    """What a restore brought to this host."""

    sequence: int
    epoch: int | None
    host: str  # where it was published
    files: int
    bytes: int  # of all the checkpoint's files
    downloaded_bytes: int  # of those that were not here already
    seconds: float


def publish(
    store: ArtifactStore, job_id: str, local_dir: Path, *, attempt: int, host: str,
    epoch: int | None, state_path: Path, published: Manifest | None = None,
) -> Manifest | None:  # fmt: skip
    """One sync pass: upload the new or changed files of ``local_dir``, then publish
    the manifest; None when neither the files nor the epoch changed since this host's
    last publish (or restore).

    ``published``: the manifest the caller's last pass published, when that pass
    succeeded; it is the store's still (an attempt holds its job's lease, so no other
    host publishes meanwhile), so it is not read again: a pass makes one request
    fewer.
    """
    state = read_state(state_path)
    if published is not None and published.sequence == state.sequence:
        previous: Manifest | None = published
    else:
        previous = read_manifest(store, job_id)
    if previous is not None and previous.sequence > state.sequence:
        state = HostState()  # another host published since: its blobs are not ours to name
    present = scan(local_dir)
    files: dict[str, FileEntry] = {}
    kept: dict[str, dict[str, Any]] = {}
    uploaded: list[str] = []
    try:
        for rel, (size, mtime_ns) in present.items():
            known = state.files.get(rel)
            if not (known and known["size"] == size and known["mtime_ns"] == mtime_ns):
                # None: it changed while being read; the old copy stays, the next pass
                # uploads the new one.
                new = _upload(store, job_id, local_dir / rel, (size, mtime_ns))
                uploaded += [new["blob"]] if new else []
                known = new or known
            if known is not None:
                files[rel] = FileEntry(known["size"], known["sha256"], known["blob"])
                kept[rel] = known
        same_epoch = epoch is None or (previous is not None and previous.epoch == epoch)
        if not uploaded and kept.keys() == state.files.keys() and same_epoch:
            return None
        sequence = max(state.sequence, previous.sequence if previous else 0) + 1
        manifest = Manifest(sequence, epoch, attempt, host, time.time(), files)
        store.put_bytes(manifest_key(job_id), manifest.to_json())
    except BaseException:
        _delete_blobs(store, job_id, uploaded)  # named by no manifest
        raise
    write_state(state_path, HostState(sequence, kept))
    named = {e.blob for e in files.values()}
    stale = {e.blob for e in previous.files.values()} if previous else set()
    stale |= {entry["blob"] for entry in state.files.values()}
    _delete_blobs(store, job_id, sorted(stale - named))
    return manifest


def restore(
    store: ArtifactStore, job_id: str, local_dir: Path, *, state_path: Path
) -> Restored | None:
    """Bring the job's published checkpoint into ``local_dir`` when that is missing or
    empty, or holds an older one than the store; None when there is nothing to do.
    Every file is downloaded and its size checked (a blob is published whole, see
    ArtifactStore.get_blob) before any is put in place, so a missing or truncated blob
    fails (ArtifactError) with ``local_dir`` untouched."""
    for _ in range(3):
        manifest = read_manifest(store, job_id)
        if manifest is None:
            return None
        present = scan(local_dir)
        state = read_state(state_path)
        if present and state.sequence >= manifest.sequence:
            return None  # this host published (or restored) it; its copy may be newer
        try:
            return _restore(store, job_id, local_dir, manifest, state, state_path)
        except ArtifactNotFound as exc:
            newer = read_manifest(store, job_id)
            if newer is None or newer.sequence == manifest.sequence:
                raise ArtifactError(
                    f"checkpoint {manifest.sequence} of job {job_id} in {store.url} is "
                    f"incomplete, not restored: {exc}"
                ) from exc
    raise ArtifactError(f"the checkpoint of job {job_id} in {store.url} kept changing")


def _upload(
    store: ArtifactStore, job_id: str, path: Path, seen: tuple[int, int]
) -> dict[str, Any] | None:
    """Upload one file as a new blob; None when it vanished or changed meanwhile."""
    blob = new_blob()
    try:
        size, sha256 = store.put_file(path, blob_key(job_id, blob))
    except ArtifactError:
        if path.exists():
            raise
        return None
    try:
        after = path.stat()
    except FileNotFoundError:
        after = None
    if after is None or (size, (after.st_size, after.st_mtime_ns)) != (seen[0], seen):
        _delete_blobs(store, job_id, [blob])
        return None
    return {"size": size, "mtime_ns": seen[1], "sha256": sha256, "blob": blob}


def _restore(
    store: ArtifactStore, job_id: str, local_dir: Path, manifest: Manifest, state: HostState,
    state_path: Path,
) -> Restored:  # fmt: skip
    started = time.monotonic()
    present = scan(local_dir)
    for leftover in local_dir.glob(".restore-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = local_dir / f".restore-{uuid.uuid4().hex}"
    downloaded = 0
    try:
        for rel, entry in manifest.files.items():
            known = state.files.get(rel)
            if (
                known
                and known["sha256"] == entry.sha256
                and present.get(rel) == (known["size"], known["mtime_ns"])
            ):
                continue  # this host has these very bytes
            key = blob_key(job_id, entry.blob)
            downloaded += store.get_blob(key, staging / rel, size=entry.size)
        for rel in sorted(set(present) - set(manifest.files)):
            (local_dir / rel).unlink()
        for staged in (p for p in staging.rglob("*") if p.is_file()):
            target = local_dir / staged.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    except OSError as exc:
        raise ArtifactError(f"cannot restore into {local_dir}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = {}
    for rel, entry in manifest.files.items():
        stat = (local_dir / rel).stat()
        files[rel] = {**asdict(entry), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    write_state(state_path, HostState(manifest.sequence, files))
    total = sum(e.size for e in manifest.files.values())
    return Restored(
        manifest.sequence, manifest.epoch, manifest.host, len(manifest.files), total,
        downloaded, time.monotonic() - started,
    )  # fmt: skip


def _delete_blobs(store: ArtifactStore, job_id: str, blobs: list[str]) -> None:
    """Best effort: a blob left behind is named by no manifest, so never restored."""
    for blob in blobs:
        with suppress(ArtifactError):
            store.delete(blob_key(job_id, blob))
