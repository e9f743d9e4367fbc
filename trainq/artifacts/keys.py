"""Where a job's artifacts live in the store: ``jobs/<job_id>/<path>``, and the paths
that may never be used there (anything that could leave the job's prefix)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from trainq.errors import BadArtifactPath


def job_prefix(job_id: str) -> str:
    """The folder of one job's artifacts: ``jobs/<job_id>``."""
    if not job_id or job_id in (".", "..") or any(c in job_id for c in "/\\\0"):
        raise BadArtifactPath(f"{job_id!r} cannot name a job's artifacts")
    return f"jobs/{job_id}"


def artifact_key(job_id: str, path: str) -> str:
    """The store key of ``path`` (``outputs/model.pt``) among the job's artifacts;
    BadArtifactPath for a path that is empty, absolute, or could leave that prefix."""
    why = (
        "it is empty" if not path.strip("/ ")
        else "it is absolute" if path.startswith("/")
        else "it contains a backslash" if "\\" in path
        else "it contains a NUL character" if "\0" in path
        else "it has a '..' part" if ".." in path.split("/")
        else None
    )  # fmt: skip
    if why is not None:
        raise BadArtifactPath(f"artifact path {path!r} is refused: {why}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return f"{job_prefix(job_id)}/{'/'.join(parts)}"


def shown_url(url: str) -> str:
    """The URL without credentials."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
