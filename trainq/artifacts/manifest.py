"""A job's published checkpoint, and what one host knows of it.

In the store, per job::

    jobs/<id>/checkpoints/.blobs/<name>   one file's bytes, never written twice
    jobs/<id>/checkpoints.json            the manifest: which blob holds which file

The manifest (sequence, epoch, attempt, host, time, and per file its size, sha256
and blob) is written after every blob it names: publishing a checkpoint is writing
its manifest (:mod:`trainq.artifacts.checkpoints`). The job's checkpoint files are
its artifacts ``checkpoints/<path>``, read through the manifest.

Each host keeps a small state file of its own (outside the checkpoint folder): the
manifest sequence it last published or restored and, per file, the size, mtime and
blob it had then.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

from trainq.artifacts.keys import artifact_key, job_prefix
from trainq.artifacts.store import ArtifactStore
from trainq.errors import ArtifactError, ArtifactNotFound
from trainq.jobs.record import Artifact

# Files a training script is still writing: never published.
_TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".swp", "~")
_BLOB = re.compile(r"^\.blobs/[0-9a-f]{32}$")


@dataclass(frozen=True)
class FileEntry:
    """One file of a checkpoint; ``blob`` relative to the job's checkpoints folder."""

    size: int
    sha256: str
    blob: str


@dataclass(frozen=True)
class Manifest:
    """A published checkpoint: its files, and who published it when."""

    sequence: int  # increases with every publish of the job
    epoch: int | None
    attempt: int
    host: str
    published_at: float
    files: dict[str, FileEntry]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, job_id: str) -> Manifest:
        """The manifest; ArtifactError when it is malformed or names a path outside
        the job's checkpoints."""
        try:
            raw = json.loads(data)
            files = {str(rel): FileEntry(**entry) for rel, entry in raw.pop("files").items()}
            manifest = cls(**raw, files=files)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            why = f"the checkpoint manifest of job {job_id} is malformed: {exc}"
            raise ArtifactError(why) from exc
        for rel, entry in files.items():
            artifact_key(job_id, f"checkpoints/{rel}")  # BadArtifactPath when it leaves
            if not _BLOB.match(entry.blob):
                raise ArtifactError(f"the checkpoint manifest of job {job_id} names a bad blob")
        return manifest


@dataclass
class HostState:
    """This host's record of a job's checkpoint: what it last published or restored."""

    sequence: int = 0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # size, mtime_ns, blob, ...


def manifest_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}/checkpoints.json"


def read_manifest(store: ArtifactStore, job_id: str) -> Manifest | None:
    """The job's published checkpoint, or None when it has none."""
    try:
        return Manifest.from_json(store.read_bytes(manifest_key(job_id)), job_id)
    except ArtifactNotFound:
        return None


def listed(store: ArtifactStore, job_id: str) -> list[Artifact]:
    """The published checkpoint's files as the job's artifacts (``checkpoints/<path>``)."""
    return as_artifacts(read_manifest(store, job_id))


def as_artifacts(manifest: Manifest | None) -> list[Artifact]:
    """A manifest's files as the job's artifacts (none without a manifest)."""
    if manifest is None:
        return []
    return [
        Artifact(path=f"checkpoints/{rel}", size=e.size, sha256=e.sha256, attempt=manifest.attempt)
        for rel, e in sorted(manifest.files.items())
    ]


def blob_key(job_id: str, blob: str) -> str:
    return f"{job_prefix(job_id)}/checkpoints/{blob}"


def new_blob() -> str:
    """A blob name never used before."""
    return f".blobs/{uuid.uuid4().hex}"


def scan(local_dir: Path) -> dict[str, tuple[int, int]]:
    """The checkpoint files of ``local_dir`` (not hidden, not temporary, not links),
    by relative path: their size and mtime_ns."""
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, names in os.walk(local_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith(".") or name.endswith(_TEMP_SUFFIXES):
                continue
            path = Path(folder, name)
            try:
                stat = path.lstat()
            except FileNotFoundError:
                continue  # removed since the listing
            if S_ISREG(stat.st_mode):  # a symlink is not followed
                found[path.relative_to(local_dir).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def read_state(state_path: Path) -> HostState:
    try:
        raw = json.loads(state_path.read_text(encoding="utf-8"))
        return HostState(int(raw["sequence"]), dict(raw["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return HostState()  # none yet, or unreadable: as if this host had nothing


def write_state(state_path: Path, state: HostState) -> None:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    temp = state_path.with_name(f".{state_path.name}.{uuid.uuid4().hex}.tmp")
    temp.write_text(json.dumps(asdict(state)), encoding="utf-8")
    os.replace(temp, state_path)
