"""What a job leaves behind: its output files, and the list of all its artifacts.

An attempt's output directory goes to ``jobs/<id>/outputs/<path>`` when the attempt
ends. The job's artifacts, as a person lists and downloads them, are those outputs,
the archived logs and the published checkpoint's files (``checkpoints/<path>``, read
through its manifest); the blobs and the manifest themselves are internal.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from trainq.artifacts.keys import artifact_key, job_prefix
from trainq.artifacts.manifest import blob_key, manifest_key, read_manifest
from trainq.artifacts.store import ArtifactStore
from trainq.errors import ArtifactNotFound, BadArtifactPath
from trainq.jobs.record import Artifact

log = logging.getLogger("trainq.artifacts")

_CHECKPOINTS = "checkpoints/"


def upload_outputs(
    store: ArtifactStore, job_id: str, attempt: int, output_dir: Path
) -> list[Artifact]:
    """Upload every regular file under ``output_dir`` (symlinks are skipped, never
    followed); the artifacts, ``outputs/<path>``, sorted by path."""
    uploaded = []
    for folder, _dirs, names in os.walk(output_dir):  # does not enter linked folders
        for name in names:
            local = Path(folder, name)
            if not S_ISREG(local.lstat().st_mode):
                continue
            path = f"outputs/{local.relative_to(output_dir).as_posix()}"
            try:
                key = artifact_key(job_id, path)
            except BadArtifactPath as exc:
                log.warning("job %s: output %s not uploaded: %s", job_id, local, exc)
                continue
            size, sha256 = store.put_file(local, key)
            uploaded.append(Artifact(path=path, size=size, sha256=sha256, attempt=attempt))
    return sorted(uploaded, key=lambda a: a.path)


def list_artifacts(store: ArtifactStore, job_id: str) -> list[tuple[str, int]]:
    """The job's artifacts (paths relative to its prefix) and their sizes, sorted."""
    prefix = job_prefix(job_id) + "/"
    internal = manifest_key(job_id)
    found = [
        (key.removeprefix(prefix), size)
        for key, size in store.list(job_prefix(job_id))
        if key != internal and not key.startswith(prefix + _CHECKPOINTS)
    ]
    manifest = read_manifest(store, job_id)
    if manifest is not None:
        found += [(_CHECKPOINTS + rel, e.size) for rel, e in manifest.files.items()]
    return sorted(found)


def download(store: ArtifactStore, job_id: str, path: str, local: Path) -> None:
    """Download the job's artifact ``path`` (as :func:`list_artifacts` names it) to
    ``local``; ArtifactNotFound when the job has no such artifact."""
    key = artifact_key(job_id, path)  # BadArtifactPath first
    if not path.startswith(_CHECKPOINTS):
        store.get_file(key, local)
        return
    manifest = read_manifest(store, job_id)
    entry = manifest.files.get(path.removeprefix(_CHECKPOINTS)) if manifest else None
    if entry is None:
        raise ArtifactNotFound(f"job {job_id} has no artifact {path} in {store.url}")
    store.get_file(blob_key(job_id, entry.blob), local, sha256=entry.sha256)


def open_artifact(store: ArtifactStore, job_id: str, path: str) -> BinaryIO:
    """The job's artifact ``path`` for reading (a checkpoint file through its manifest);
    BadArtifactPath for a path outside the job, ArtifactNotFound when it has none."""
    key = artifact_key(job_id, path)
    if not path.startswith(_CHECKPOINTS):
        return store.open(key)
    manifest = read_manifest(store, job_id)
    entry = manifest.files.get(path.removeprefix(_CHECKPOINTS)) if manifest else None
    if entry is None:
        raise ArtifactNotFound(f"job {job_id} has no artifact {path} in {store.url}")
    return store.open(blob_key(job_id, entry.blob))
