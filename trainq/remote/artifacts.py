"""A job's artifacts through the API: the list, and one file streamed to disk."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError

from trainq.errors import ArtifactNotFound, BadArtifactPath, TrainqError
from trainq.jobs.record import Artifact
from trainq.remote.http import ApiClient, job_path

_CHUNK_BYTES = 1 << 20
_ARTIFACTS = TypeAdapter(list[Artifact])


def listed(api: ApiClient, job_id: str) -> list[Artifact]:
    """GET /train/{id}/artifacts: what the job's record lists."""
    data = api.fetch("GET", f"{job_path(job_id)}/artifacts")
    try:
        return _ARTIFACTS.validate_python(data.get("artifacts") if isinstance(data, dict) else None)
    except ValidationError:
        raise TrainqError(f"the API at {api.url} answered no list of artifacts") from None


def download(api: ApiClient, job_id: str, path: str, target: Path) -> None:
    """The artifact ``path`` into ``target``, streamed; the file appears whole or not at
    all. ArtifactNotFound (404), BadArtifactPath (400), Forbidden (403: not the job's
    owner nor an admin)."""
    route = f"{job_path(job_id)}/artifacts/{quote(path, safe='/')}"
    errors = {404: ArtifactNotFound, 400: BadArtifactPath}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    try:
        with api.stream("GET", route, errors=errors) as response, partial.open("wb") as file:
            for chunk in response.iter_bytes(_CHUNK_BYTES):
                file.write(chunk)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
