"""An attempt's files and the artifact store, as the runner moves them.

Before an attempt starts, the job's latest published checkpoint is restored into
this host's checkpoint directory when that is missing or older. While it runs, a
background sync uploads new or changed checkpoint files after each new epoch
(debounced) and archives the job's log so far: nothing the job prints or reports
waits on the store. When it ends, a last sync, the log's final archive and the
attempt's output directory are uploaded, and the job record lists them. A failed
upload is retried by the sync and reported: in the worker's log and, when it still
fails at the end, in the attempt's ``artifact_error``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from trainq.artifacts import checkpoints, outputs
from trainq.artifacts import logs as archives
from trainq.artifacts.manifest import Manifest, as_artifacts, read_manifest
from trainq.artifacts.store import ArtifactStore
from trainq.artifacts.sync import CheckpointSync
from trainq.config import Settings
from trainq.errors import ArtifactError, RuntimeFault
from trainq.jobs.record import Artifact, JobRecord
from trainq.worker import attempts
from trainq.worker.endings import AttemptEnd

log = logging.getLogger("trainq.artifacts")

# How long the end of an attempt may wait for its last checkpoint upload.
_FINISH_S = 300.0


class AttemptFiles:
    """The artifact store's part in an attempt; without a store, nothing is moved."""

    def __init__(self, store: ArtifactStore | None, settings: Settings) -> None:
        self.store = store
        self._settings = settings
        # The upload failures of the current attempt, and those its end did not recover.
        self.errors: list[str] = []
        self._unrecovered: list[str] = []
        # What this attempt's sync published last (None: nothing, or not yet).
        self._published: Manifest | None = None
        # The attempt's log archive while it syncs (None: none under way).
        self._archive: archives.LogArchive | None = None

    def kept(self, record: JobRecord, attempt: int, end: AttemptEnd) -> AttemptEnd:
        """``end``, with the job's artifacts once this attempt's files are uploaded."""
        if self.store is None:
            return end
        log_path = attempts.log_path(self._settings, record)
        outputs = attempts.output_dir(self._settings, record.id, attempt)
        found = self.collect(record, attempt, log_path, outputs)
        return dataclasses.replace(end, artifacts=found, artifact_error=self.error())

    def state_path(self, job_id: str) -> Path:
        """This host's record of the checkpoint it last published or restored: next to
        the job's checkpoint directory, never inside it (the job sees that one)."""
        return (self._settings.checkpoint_dir / f".{job_id}.sync.json").absolute()

    def restore(self, job_id: str, checkpoint_dir: Path) -> int | None:
        """Bring the job's latest checkpoint here if this host lacks it or holds an older
        one; the epoch it restored (None: nothing to restore). RuntimeFault (retried)
        when the store does not answer: starting over from epoch 1 would lose work."""
        if self.store is None:
            return None
        try:
            restored = checkpoints.restore(
                self.store, job_id, checkpoint_dir, state_path=self.state_path(job_id)
            )
        except ArtifactError as exc:
            raise RuntimeFault(f"cannot restore the job's checkpoint: {exc}") from exc
        if restored is None:
            return None
        log.info("job %s: restored checkpoint of epoch %s from %s", job_id, restored.epoch,
                 self.store.url)  # fmt: skip
        return restored.epoch if restored.epoch is not None else 0

    @contextmanager
    def syncing(
        self, record: JobRecord, attempt: int, checkpoint_dir: Path, log_path: Path
    ) -> Iterator[Callable[[int | None], None]]:
        """Sync the attempt's checkpoints and archive its log in the background while the
        block runs; yields ``poke(epoch)``, to call after each progress line. The last
        sync runs when the block ends (the caller then calls :meth:`collect`)."""
        if self.store is None:
            yield lambda _epoch: None
            return
        if self._archive is not None:  # an attempt that ended without collect()
            self._archive.close()
        # Appended to at each sync and once more by collect(), which removes it.
        self._archive = archive = archives.LogArchive(self.store, record.id, attempt, log_path)

        def archive_so_far() -> None:
            archive.update()

        sync = CheckpointSync(
            self.store,
            record.id,
            checkpoint_dir,
            attempt=attempt,
            host=self._settings.hostname,
            state_path=self.state_path(record.id),
            interval_s=self._settings.artifact_sync_interval_s,
            on_error=self._report(record.id),
            also=archive_so_far,
        )
        self.errors, self._unrecovered, self._published = [], [], None
        sync.start()
        try:
            yield sync.poke
        finally:
            before = len(self.errors)
            self._published = sync.finish(_FINISH_S)
            self._unrecovered = self.errors[before:]  # the last pass failed too

    def collect(
        self, record: JobRecord, attempt: int, log_path: Path, output_dir: Path | None
    ) -> list[Artifact]:
        """After the attempt: its log's final archive and its outputs, uploaded; the
        job's artifacts as the record should list them now."""
        if self.store is None:
            return record.artifacts
        found: list[Artifact] = []
        try:
            # The manifest this attempt published, else the store's (an earlier one's).
            published = self._published or read_manifest(self.store, record.id)
            found += as_artifacts(published)
            archive, self._archive = self._archive, None
            if archive is None:  # its attempt never got as far as syncing
                archived = archives.archive_log(self.store, record.id, attempt, log_path)
            else:
                try:
                    archived = archive.update(final=True)
                finally:
                    archive.close()
            found += [archived] if archived else []
            if output_dir is not None and output_dir.is_dir():
                found += outputs.upload_outputs(self.store, record.id, attempt, output_dir)
        except ArtifactError as exc:
            message = f"uploading the attempt's files failed: {exc}"
            self._report(record.id)(message)
            self._unrecovered.append(message)
        return merged(record.artifacts, found)

    def error(self) -> str | None:
        """What of this attempt could not be uploaded in the end, if anything."""
        return "; ".join(self._unrecovered) or None

    def _report(self, job_id: str) -> Callable[[str], None]:
        def report(message: str) -> None:
            log.warning("job %s: %s", job_id, message)
            self.errors.append(message)

        return report


def merged(old: list[Artifact], new: list[Artifact]) -> list[Artifact]:
    """``old`` updated with ``new``: one entry per path, the newest upload's, by path."""
    by_path = {a.path: a for a in old}
    by_path.update((a.path, a) for a in new)
    return sorted(by_path.values(), key=lambda a: a.path)
