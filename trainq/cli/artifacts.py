"""``trainq artifacts``: list a job's checkpoints, outputs and archived logs, or fetch them,
from any host that reaches the artifact store (or the REST API)."""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path
from typing import Annotated

import typer

from trainq.cli.app import JobId, cli, err, fail, out
from trainq.cli.backend import open_jobs
from trainq.errors import ArtifactError, JobNotFound

_CHUNK_BYTES = 1 << 20


@cli.command("artifacts")
def artifacts(
    job_id: JobId,
    download_to: Annotated[
        Path | None, typer.Option("--download", help="Fetch them into this folder")
    ] = None,
    path: Annotated[
        str | None, typer.Option("--path", help="Only paths matching this glob, e.g. outputs/*")
    ] = None,
) -> None:
    """List a job's artifacts, or download them (checked against their sha256)."""
    with open_jobs() as jobs:
        try:
            record = jobs.get_job(job_id)
        except JobNotFound as exc:
            raise fail(str(exc), 1) from None
        chosen = [a for a in record.artifacts if path is None or fnmatch.fnmatchcase(a.path, path)]
        if not chosen:
            which = f" matching {path!r}" if path else ""
            raise fail(f"job {record.id} has no artifacts{which} (status {record.status})", 1)
        if download_to is None:
            for artifact in chosen:
                size = _size(artifact.size)
                out.print(f"{artifact.path}\t{size}\tattempt {artifact.attempt}\t{artifact.sha256}",
                          highlight=False, soft_wrap=True)  # fmt: skip
            return
        for artifact in chosen:
            target = download_to / artifact.path
            # The record's paths are data (an API's answer): none may leave the folder.
            if not target.resolve().is_relative_to(download_to.resolve()):
                raise fail(f"{artifact.path}: leaves {download_to}; not downloaded", 1)
            try:
                jobs.download(record.id, artifact.path, target)
            except ArtifactError as exc:
                raise fail(str(exc), 1) from None
            if _sha256(target) != artifact.sha256:
                target.unlink()
                raise fail(f"{artifact.path}: sha256 differs from the job record's; not kept", 1)
            err.print(f"{artifact.path} → {target} ({_size(artifact.size)})", highlight=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _size(size_bytes: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"
