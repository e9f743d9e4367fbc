"""``/train/{id}/artifacts``: a job's checkpoints, outputs and archived logs, from any host."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import StreamingResponse

from trainq import client, connections
from trainq.api.auth import Caller, job_access
from trainq.api.models import FORBIDDEN, NOT_FOUND, UNAUTHORIZED, ArtifactList, Problem
from trainq.artifacts.keys import artifact_key
from trainq.artifacts.outputs import open_artifact
from trainq.config import Settings
from trainq.errors import ArtifactNotFound, BadArtifactPath
from trainq.users.access import Action

_CHUNK_BYTES = 1 << 20
JobIdPath = Annotated[str, Path(min_length=1, max_length=200, description="The job id")]


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/train", tags=["artifacts"])

    @api.get(
        "/{job_id}/artifacts",
        response_model=ArtifactList,
        responses={**UNAUTHORIZED, **NOT_FOUND},
        summary="List a job's artifacts",
    )
    def list_artifacts(job_id: JobIdPath, principal: Caller) -> ArtifactList:
        """Its checkpoint files, outputs and archived logs as its record lists them (path
        relative to the job, size, sha256, the attempt that wrote it)."""
        record = job_access(principal, Action.READ, client.get_job(job_id), settings)
        store = connections.artifact_store(settings)
        return ArtifactList(job_id=record.id, store=store.url, artifacts=record.artifacts)

    @api.get(
        "/{job_id}/artifacts/{path:path}",
        response_class=StreamingResponse,
        responses={
            **UNAUTHORIZED,
            **FORBIDDEN,
            200: {"content": {"application/octet-stream": {}}, "description": "The file"},
            400: {"model": Problem, "description": "A path that leaves the job's artifacts"},
            404: {"model": Problem, "description": "No such job or artifact"},
        },
        summary="Download one artifact",
    )
    def download(job_id: JobIdPath, path: str, principal: Caller) -> StreamingResponse:
        """The file's bytes, streamed from the artifact store; only for the job's owner or
        an admin (`403`)."""
        try:
            artifact_key(job_id, path)
        except BadArtifactPath as exc:
            raise HTTPException(400, str(exc)) from None
        record = job_access(principal, Action.DOWNLOAD, client.get_job(job_id), settings)
        try:
            source = open_artifact(connections.artifact_store(settings), record.id, path)
        except ArtifactNotFound:
            raise HTTPException(404, f"job {record.id} has no artifact {path!r}") from None
        headers = {"Content-Disposition": f'attachment; filename="{path.rsplit("/", 1)[-1]}"'}
        listed = next((a for a in record.artifacts if a.path == path), None)
        if listed is not None:
            headers["X-Trainq-Sha256"] = listed.sha256
        return StreamingResponse(
            _chunks(source), media_type="application/octet-stream", headers=headers
        )

    return api


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    with source:
        while chunk := source.read(_CHUNK_BYTES):
            yield chunk
