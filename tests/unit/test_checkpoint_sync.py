"""Checkpoints, logs and outputs between hosts through one artifact store (a folder).

Two "hosts" are two checkpoint folders with two state files over the same store.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainq.artifacts import checkpoints
from trainq.artifacts.checkpoints import publish, read_manifest, restore
from trainq.artifacts.logs import LogArchive, archive_key, archive_log, archived_lines
from trainq.artifacts.outputs import download, list_artifacts, upload_outputs
from trainq.artifacts.store import ArtifactStore
from trainq.artifacts.sync import CheckpointSync
from trainq.errors import ArtifactError, BadArtifactPath
from trainq.logs.format import decode, encode
from trainq.testing import wait_until

JOB = "job-1"


class SpyStore(ArtifactStore):
    """A folder store that counts uploads, can fail the next few and can hold them."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.puts: list[str] = []
        self.reads: list[str] = []
        self.fail_next = 0
        self.entered = threading.Event()  # an upload has begun
        self.release = threading.Event()  # uploads may go on
        self.release.set()

    def read_bytes(self, key: str) -> bytes:
        self.reads.append(f"{threading.current_thread().name}: {key}")
        return super().read_bytes(key)

    def put_file(self, local: Path, key: str) -> tuple[int, str]:
        self.entered.set()
        assert self.release.wait(30), "the test never released the store"
        if self.fail_next:
            self.fail_next -= 1
            raise ArtifactError(f"cannot upload {self.url}/{key}: injected failure")
        self.puts.append(key)
        return super().put_file(local, key)


@dataclass
class Host:
    name: str
    dir: Path
    state: Path

    def publish(self, store: ArtifactStore, epoch: int | None = None) -> Any:
        return publish(
            store, JOB, self.dir, attempt=1, host=self.name, epoch=epoch, state_path=self.state
        )

    def restore(self, store: ArtifactStore) -> checkpoints.Restored | None:
        return restore(store, JOB, self.dir, state_path=self.state)

    def files(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.dir).as_posix(): p.read_bytes()
            for p in sorted(self.dir.rglob("*"))
            if p.is_file()
        }


@pytest.fixture
def store(tmp_path: Path) -> SpyStore:
    return SpyStore((tmp_path / "store").as_uri())


@pytest.fixture
def a(tmp_path: Path) -> Host:
    return Host("host-a", tmp_path / "a" / "ckpt", tmp_path / "a" / "state.json")


@pytest.fixture
def b(tmp_path: Path) -> Host:
    return Host("host-b", tmp_path / "b" / "ckpt", tmp_path / "b" / "state.json")


def blobs(store: ArtifactStore) -> list[str]:
    return [key for key, _ in store.list(f"jobs/{JOB}/checkpoints/.blobs")]


def write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def test_a_fresh_host_restores_the_published_files(store: SpyStore, a: Host, b: Host) -> None:
    write(a.dir, {"model.pt": b"m" * 5000, "sub/opt.pt": b"o" * 10, "empty": b""})
    write(a.dir, {"next.pt.tmp": b"half", ".hidden": b"h"})  # never published

    manifest = a.publish(store, epoch=3)

    assert manifest is not None and manifest.sequence == 1 and manifest.epoch == 3
    assert sorted(manifest.files) == ["empty", "model.pt", "sub/opt.pt"]
    assert manifest.files["model.pt"].sha256 == hashlib.sha256(b"m" * 5000).hexdigest()
    assert json.loads(store.read_bytes(f"jobs/{JOB}/checkpoints.json"))["host"] == "host-a"
    restored = b.restore(store)
    assert restored is not None
    assert (restored.epoch, restored.files, restored.bytes) == (3, 3, 5010)
    assert restored.downloaded_bytes == 5010 and restored.host == "host-a"
    assert b.files() == {"empty": b"", "model.pt": b"m" * 5000, "sub/opt.pt": b"o" * 10}
    assert b.restore(store) is None  # it has that checkpoint now
    assert b.publish(store) is None  # and nothing new to publish


def test_unchanged_files_are_not_uploaded_again(store: SpyStore, a: Host) -> None:
    write(a.dir, {"model.pt": b"1" * 100, "opt.pt": b"2" * 100})
    a.publish(store, epoch=1)
    assert len(store.puts) == 2 and len(blobs(store)) == 2
    store.puts.clear()

    assert a.publish(store, epoch=1) is None
    assert a.publish(store) is None
    assert store.puts == []
    relabelled = a.publish(store, epoch=2)  # a new epoch, the same files: no upload
    assert relabelled is not None and relabelled.epoch == 2 and store.puts == []

    write(a.dir, {"model.pt": b"3" * 100})
    manifest = a.publish(store, epoch=2)
    assert manifest is not None and manifest.sequence == 3
    assert len(store.puts) == 1 and "/checkpoints/.blobs/" in store.puts[0]
    assert len(blobs(store)) == 2  # the replaced blob is gone after the publish

    (a.dir / "opt.pt").unlink()
    manifest = a.publish(store, epoch=3)
    assert manifest is not None and sorted(manifest.files) == ["model.pt"]
    assert len(blobs(store)) == 1


def test_the_same_host_keeps_its_newer_local_checkpoint(store: SpyStore, a: Host) -> None:
    write(a.dir, {"model.pt": b"epoch 1"})
    a.publish(store, epoch=1)
    write(a.dir, {"model.pt": b"epoch 2, not yet published"})

    assert a.restore(store) is None
    assert a.files() == {"model.pt": b"epoch 2, not yet published"}


def test_a_newer_publish_by_another_host_is_restored(store: SpyStore, a: Host, b: Host) -> None:
    write(a.dir, {"model.pt": b"a1", "old.pt": b"a-old", "keep.pt": b"k"})
    a.publish(store, epoch=1)
    b.restore(store)
    write(b.dir, {"model.pt": b"b2"})
    (b.dir / "old.pt").unlink()
    assert b.publish(store, epoch=2).sequence == 2
    store.puts.clear()

    restored = a.restore(store)

    assert restored is not None and restored.epoch == 2
    assert restored.downloaded_bytes == 2  # keep.pt was here already
    assert a.files() == {"model.pt": b"b2", "keep.pt": b"k"}  # old.pt went with it
    assert a.publish(store) is None and store.puts == []
    write(a.dir, {"model.pt": b"a3"})
    assert a.publish(store, epoch=3).sequence == 3
    assert b.restore(store) is not None and b.files()["model.pt"] == b"a3"


def test_a_host_that_missed_a_publish_uploads_everything_it_names(
    store: SpyStore, a: Host, b: Host
) -> None:
    """A second attempt published meanwhile (and deleted the blobs it replaced): the
    first host's record of its blobs is stale, so it names none of them."""
    write(a.dir, {"model.pt": b"a1", "data.pt": b"d"})
    a.publish(store)
    b.restore(store)
    write(b.dir, {"model.pt": b"b2", "data.pt": b"d2"})
    b.publish(store)
    write(a.dir, {"model.pt": b"a3"})
    store.puts.clear()

    manifest = a.publish(store)

    assert manifest is not None and manifest.sequence == 3 and len(store.puts) == 2
    assert sorted(k.rsplit("/", 1)[1] for k in blobs(store)) == sorted(
        e.blob.rsplit("/", 1)[1] for e in manifest.files.values()
    )


def test_a_manifest_with_a_missing_blob_is_refused(store: SpyStore, a: Host, b: Host) -> None:
    write(a.dir, {"model.pt": b"m", "opt.pt": b"o"})
    manifest = a.publish(store, epoch=1)
    store.delete(f"jobs/{JOB}/checkpoints/{manifest.files['opt.pt'].blob}")
    write(b.dir, {"mine.pt": b"b's own"})

    with pytest.raises(ArtifactError, match=r"checkpoint 1 of job job-1 .* incomplete"):
        b.restore(store)
    assert b.files() == {"mine.pt": b"b's own"}  # nothing restored, nothing removed


def test_a_manifest_with_a_truncated_blob_is_refused(store: SpyStore, a: Host, b: Host) -> None:
    # A blob is checked by its size (the kernel copies it unhashed); on S3 too
    # (tests/integration/test_artifact_s3.py).
    write(a.dir, {"model.pt": b"m" * 100, "opt.pt": b"o"})
    manifest = a.publish(store, epoch=1)
    store.put_bytes(f"jobs/{JOB}/checkpoints/{manifest.files['model.pt'].blob}", b"m" * 99)

    with pytest.raises(ArtifactError, match="corrupt: it holds 99 bytes, expected 100"):
        b.restore(store)
    assert not b.dir.exists() or list(b.dir.iterdir()) == []  # no half restore, no staging
    assert not b.state.exists()


def test_a_manifest_naming_a_path_outside_the_job_is_refused(
    store: SpyStore, a: Host, b: Host
) -> None:
    write(a.dir, {"model.pt": b"m"})
    a.publish(store)
    raw = json.loads(store.read_bytes(f"jobs/{JOB}/checkpoints.json"))
    raw["files"]["../../../escape.pt"] = raw["files"].pop("model.pt")
    store.put_bytes(f"jobs/{JOB}/checkpoints.json", json.dumps(raw).encode())

    with pytest.raises(BadArtifactPath, match=r"escape\.pt"):
        b.restore(store)
    assert not (b.dir.parent.parent / "escape.pt").exists()


def test_nothing_to_restore_without_a_manifest(store: SpyStore, a: Host) -> None:
    assert a.restore(store) is None
    assert read_manifest(store, JOB) is None


def test_poke_never_blocks_on_a_hanging_store(store: SpyStore, a: Host) -> None:
    write(a.dir, {"model.pt": b"1"})
    store.release.clear()
    errors: list[str] = []
    sync = CheckpointSync(
        store, JOB, a.dir, attempt=1, host="a", state_path=a.state, interval_s=0.0,
        on_error=errors.append,
    ).start()  # fmt: skip
    sync.poke(1)
    assert store.entered.wait(10), "the sync never started uploading"

    started = time.monotonic()
    for epoch in range(2, 1002):
        sync.poke(epoch)
    assert time.monotonic() - started < 0.5  # the upload hangs all the while

    store.release.set()
    manifest = sync.finish(timeout_s=30)
    assert manifest is not None and manifest.epoch == 1001
    assert read_manifest(store, JOB) == manifest
    assert errors == []


def test_failed_passes_are_retried_and_reported(store: SpyStore, a: Host) -> None:
    write(a.dir, {"model.pt": b"1"})
    store.fail_next = 2
    errors: list[str] = []
    archived = threading.Event()
    with CheckpointSync(
        store, JOB, a.dir, attempt=1, host="a", state_path=a.state, interval_s=0.0,
        on_error=errors.append, also=archived.set,
    ) as sync:  # fmt: skip
        sync.poke(7)
        wait_until(lambda: read_manifest(store, JOB), timeout_s=10, what="the retried publish")
    assert len(errors) == 2
    assert all(store.url in e and "injected failure" in e for e in errors)
    assert archived.is_set()
    assert sync.last is not None and sync.last.epoch == 7
    assert blobs(store) == [f"jobs/{JOB}/checkpoints/{sync.last.files['model.pt'].blob}"]


def test_a_sync_reads_the_manifest_once_then_after_a_failed_pass_only(
    store: SpyStore, a: Host, b: Host
) -> None:
    write(b.dir, {"model.pt": b"b"})
    b.publish(store, epoch=1)  # another host's, before this attempt
    write(a.dir, {"model.pt": b"0"})
    store.reads.clear()
    sync = CheckpointSync(
        store, JOB, a.dir, attempt=2, host="a", state_path=a.state, interval_s=0.0,
        on_error=lambda _: None,
    ).start()  # fmt: skip
    for epoch, fail in [(2, 0), (3, 0), (4, 1), (5, 0), (6, 0)]:
        write(a.dir, {"model.pt": str(epoch).encode()})
        store.fail_next = fail
        sync.poke(epoch)
        wait_until(lambda e=epoch: (read_manifest(store, JOB) or b).epoch == e, timeout_s=10,
                   what=f"epoch {epoch} published")  # fmt: skip
    sync.finish(timeout_s=10)
    # By the first pass (b's manifest) and by the one after the failure; the others
    # (and finish's) know the manifest they published.
    by_sync = [r for r in store.reads if r.startswith("checkpoint-sync")]
    assert by_sync == [f"checkpoint-sync-{JOB}: jobs/{JOB}/checkpoints.json"] * 2, store.reads
    manifest = read_manifest(store, JOB)
    assert manifest is not None and (manifest.sequence, manifest.epoch) == (6, 6)
    assert blobs(store) == [f"jobs/{JOB}/checkpoints/{manifest.files['model.pt'].blob}"]


def test_finish_publishes_the_last_state(store: SpyStore, a: Host) -> None:
    write(a.dir, {"model.pt": b"1"})
    also_runs: list[float] = []
    sync = CheckpointSync(
        store, JOB, a.dir, attempt=2, host="a", state_path=a.state, interval_s=3600,
        on_error=pytest.fail, also=lambda: also_runs.append(time.monotonic()),
    ).start()  # fmt: skip
    sync.poke(1)
    wait_until(lambda: read_manifest(store, JOB), timeout_s=10, what="the first publish")
    write(a.dir, {"model.pt": b"2", "extra.pt": b"x"})
    sync.poke(2)
    sync.poke(None)  # no epoch: the last one stays
    # The next pass is an hour away: finish stops waiting and publishes now.

    manifest = sync.finish(timeout_s=10)

    assert manifest is not None and (manifest.sequence, manifest.epoch) == (2, 2)
    assert manifest.attempt == 2 and sorted(manifest.files) == ["extra.pt", "model.pt"]
    assert len(also_runs) == 1


def job_log(path: Path) -> list[str]:
    lines = [
        encode("job", "attempt 1 started", job_id=JOB, attempt=1, event="attempt_started"),
        encode("job", "epoch 1", job_id=JOB, attempt=1),
        encode("job", "attempt 2 started", job_id=JOB, attempt=2, event="attempt_started"),
        encode("job", "épоch 1 again ✓", job_id=JOB, attempt=2),
        "not one of trainq's lines",
        encode("job", "attempt 2 ended", job_id=JOB, attempt=2, event="attempt_ended"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def test_an_attempts_log_is_archived_alone(store: SpyStore, tmp_path: Path) -> None:
    lines = job_log(tmp_path / f"{JOB}.log")

    artifact = archive_log(store, JOB, 2, tmp_path / f"{JOB}.log")

    assert artifact is not None and artifact.path == archive_key(2) == "logs/attempt-2.log.gz"
    packed = store.read_bytes(f"jobs/{JOB}/logs/attempt-2.log.gz")
    assert (artifact.size, artifact.sha256) == (len(packed), hashlib.sha256(packed).hexdigest())
    assert gzip.decompress(packed).decode().endswith("\n")
    got = archived_lines(store, JOB, 2)
    assert got is not None
    got_lines = list(got)
    assert got_lines == [lines[2], lines[3], lines[5]]
    decoded = [decode(line) for line in got_lines]
    assert [d.event for d in decoded if d] == ["attempt_started", None, "attempt_ended"]
    assert archive_log(store, JOB, 3, tmp_path / f"{JOB}.log") is None
    assert archive_log(store, JOB, 1, tmp_path / "missing.log") is None
    assert archived_lines(store, JOB, 3) is None


def test_an_archive_kept_up_to_date_reads_each_line_once_and_ends_whole(
    store: SpyStore, tmp_path: Path
) -> None:
    path = tmp_path / f"{JOB}.log"
    lines = job_log(path)  # attempt 1's lines, then attempt 2's
    archive = LogArchive(store, JOB, 2, path)
    first = archive.update()
    assert first is not None
    more = encode("job", "after the first sync", job_id=JOB, attempt=2)
    unfinished = encode("job", "unfinished", job_id=JOB, attempt=2)
    with path.open("a", encoding="utf-8") as log:
        log.write(f"{more}\n{unfinished[:20]}")
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, *args, **kwargs)
        if self == path:
            read = handle.read

            def counted(*size: int) -> bytes:
                got: bytes = read(*size)
                reads.append(len(got))
                return got

            handle.read = counted
        return handle

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "open", counting_open)
        second = archive.update()

    # Only what was written since the first update is read, the unfinished line kept back.
    assert sum(reads) == len(more) + 1 + 20
    assert second is not None and second.size > first.size
    got = archived_lines(store, JOB, 2)
    assert got is not None and list(got) == [lines[2], lines[3], lines[5], more]
    with path.open("a", encoding="utf-8") as log:
        log.write(unfinished[20:] + "\n")
    archive.update(final=True)
    archive.close()
    got = archived_lines(store, JOB, 2)
    assert got is not None and list(got) == [lines[2], lines[3], lines[5], more, unfinished]


def test_outputs_skip_symlinks_and_the_job_lists_its_artifacts(
    store: SpyStore, a: Host, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    write(outputs, {"model.pt": b"model", "eval/metrics.json": b"{}", ".hidden": b"h"})
    secret = tmp_path / "secret"
    write(secret, {"key": b"never uploaded"})
    (outputs / "link").symlink_to(secret / "key")
    (outputs / "linked-dir").symlink_to(secret)
    (outputs / "dangling").symlink_to(tmp_path / "nowhere")

    uploaded = upload_outputs(store, JOB, 2, outputs)

    assert [(x.path, x.size, x.attempt) for x in uploaded] == [
        ("outputs/.hidden", 1, 2),
        ("outputs/eval/metrics.json", 2, 2),
        ("outputs/model.pt", 5, 2),
    ]
    assert uploaded[2].sha256 == hashlib.sha256(b"model").hexdigest()
    write(a.dir, {"ckpt.pt": b"c" * 7})
    a.publish(store)
    job_log(tmp_path / "job.log")
    archive_log(store, JOB, 1, tmp_path / "job.log")
    listed = list_artifacts(store, JOB)
    assert [path for path, _ in listed] == [
        "checkpoints/ckpt.pt",
        "logs/attempt-1.log.gz",
        "outputs/.hidden",
        "outputs/eval/metrics.json",
        "outputs/model.pt",
    ]
    assert ("checkpoints/ckpt.pt", 7) in listed
    assert [x.path for x in checkpoints.listed(store, JOB)] == ["checkpoints/ckpt.pt"]
    download(store, JOB, "checkpoints/ckpt.pt", tmp_path / "got" / "ckpt.pt")
    download(store, JOB, "outputs/model.pt", tmp_path / "got" / "model.pt")
    assert (tmp_path / "got" / "ckpt.pt").read_bytes() == b"c" * 7
    assert (tmp_path / "got" / "model.pt").read_bytes() == b"model"
    with pytest.raises(KeyError):
        download(store, JOB, "checkpoints/none.pt", tmp_path / "got" / "none")
    with pytest.raises(BadArtifactPath):
        download(store, JOB, "../other/outputs/x", tmp_path / "got" / "x")
