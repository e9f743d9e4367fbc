"""ArtifactStore on a local folder: round trips, write-then-publish, key checks, errors."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from trainq.artifacts.keys import artifact_key, job_prefix
from trainq.artifacts.store import ArtifactStore
from trainq.errors import ArtifactError, ArtifactNotFound, BadArtifactPath, StoreUnavailable
from trainq.testing import wait_until


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(root: Path) -> ArtifactStore:
    return ArtifactStore(root.as_uri())


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_put_file_returns_size_and_sha256_and_round_trips(
    store: ArtifactStore, tmp_path: Path
) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # more than one chunk
    local = tmp_path / "model.pt"
    local.write_bytes(data)

    assert store.put_file(local, "jobs/j1/outputs/model.pt") == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert store.read_bytes("jobs/j1/outputs/model.pt") == data
    with store.open("jobs/j1/outputs/model.pt") as f:
        assert f.read() == data
    copy = tmp_path / "down" / "copy.pt"
    assert store.get_file("jobs/j1/outputs/model.pt", copy)[1] == hashlib.sha256(data).hexdigest()
    assert copy.read_bytes() == data
    assert files_under(copy.parent) == ["copy.pt"]  # no temporary name left


def test_put_bytes_list_exists_and_delete_prefix(store: ArtifactStore, root: Path) -> None:
    assert store.put_bytes("jobs/j1/a.txt", b"abc") == (3, hashlib.sha256(b"abc").hexdigest())
    store.put_bytes("jobs/j1/deep/er/b.bin", b"12345")
    store.put_bytes("jobs/j2/c.txt", b"")

    assert store.list("jobs/j1") == [("jobs/j1/a.txt", 3), ("jobs/j1/deep/er/b.bin", 5)]
    assert store.list("") == [
        ("jobs/j1/a.txt", 3),
        ("jobs/j1/deep/er/b.bin", 5),
        ("jobs/j2/c.txt", 0),
    ]
    assert store.list("jobs/none") == []
    assert store.exists("jobs/j1/a.txt")
    assert not store.exists("jobs/j1/deep")  # a folder is not a key
    assert not store.exists("jobs/j1/missing")
    # Overwriting publishes the new bytes whole.
    store.put_bytes("jobs/j1/a.txt", b"abcdef")
    assert store.read_bytes("jobs/j1/a.txt") == b"abcdef"

    store.delete_prefix("jobs/j1")
    assert store.list("jobs") == [("jobs/j2/c.txt", 0)]
    store.delete_prefix("jobs/j1")  # nothing there: no error
    assert not any(name.startswith(".") for name in files_under(root))


def test_a_put_is_invisible_until_complete(
    store: ArtifactStore, root: Path, tmp_path: Path
) -> None:
    """The source is a FIFO fed by the test: the upload is stuck halfway, under a
    hidden temporary name, until the test writes the rest."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result: list[tuple[int, str]] = []
    put = threading.Thread(target=lambda: result.append(store.put_file(fifo, "jobs/j/big.bin")))
    put.start()
    first = b"x" * (1 << 20)  # one whole chunk: the upload writes it, then waits
    with fifo.open("wb") as feed:
        feed.write(first)
        feed.flush()
        folder = root / "jobs" / "j"
        temp = wait_until(
            lambda: [p for p in folder.glob(".*") if p.stat().st_size >= len(first)],
            timeout_s=10,
            what="the partial upload",
            interval_s=0.01,
        )
        assert temp[0].name.startswith(".big.bin.") and temp[0].name.endswith(".partial")
        assert not store.exists("jobs/j/big.bin")
        assert store.list("jobs") == []  # the temporary name is never listed
        with pytest.raises(ArtifactNotFound):
            store.read_bytes("jobs/j/big.bin")
        feed.write(b"y" * 24)
    put.join(timeout=10)

    assert result == [(len(first) + 24, hashlib.sha256(first + b"y" * 24).hexdigest())]
    assert store.read_bytes("jobs/j/big.bin") == first + b"y" * 24
    assert files_under(root) == ["jobs/j/big.bin"]


def test_a_failed_put_leaves_nothing(store: ArtifactStore, root: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=str(root)):
        store.put_file(tmp_path / "missing.bin", "jobs/j/x.bin")
    assert store.list("") == []


def test_get_file_refuses_bytes_that_do_not_match(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes("jobs/j/x", b"real")
    local = tmp_path / "down" / "x"
    local.parent.mkdir()
    local.write_bytes(b"old")
    with pytest.raises(ArtifactError, match="corrupt"):
        store.get_file("jobs/j/x", local, sha256="0" * 64)
    assert local.read_bytes() == b"old"  # untouched
    assert files_under(local.parent) == ["x"]


def test_missing_keys_raise_artifact_not_found_naming_the_url(
    store: ArtifactStore, tmp_path: Path
) -> None:
    for call in (
        lambda: store.read_bytes("jobs/j/none"),
        lambda: store.open("jobs/j/none"),
        lambda: store.get_file("jobs/j/none", tmp_path / "none"),
    ):
        with pytest.raises(ArtifactNotFound, match="jobs/j/none") as caught:
            call()
        assert store.url in str(caught.value)
        assert isinstance(caught.value, KeyError)
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/", "empty"),
        ("/etc/passwd", "absolute"),
        ("../other/x", "'..'"),
        ("outputs/../../other/x", "'..'"),
        ("outputs/..", "'..'"),
        ("outputs\\..\\x", "backslash"),
        ("outputs/a\0b", "NUL"),
    ],
)
def test_artifact_key_refuses_paths_that_leave_the_job(path: str, why: str) -> None:
    with pytest.raises(BadArtifactPath, match=why) as caught:
        artifact_key("j1", path)
    assert repr(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_artifact_key_and_job_prefix() -> None:
    assert job_prefix("j1") == "jobs/j1"
    assert artifact_key("j1", "outputs/model.pt") == "jobs/j1/outputs/model.pt"
    assert artifact_key("j1", "./outputs//model.pt") == "jobs/j1/outputs/model.pt"
    assert artifact_key("j1", "outputs/..model") == "jobs/j1/outputs/..model"  # a name
    for job_id in ("", "..", "a/b", "a\\b"):
        with pytest.raises(BadArtifactPath):
            job_prefix(job_id)


def test_store_keys_cannot_leave_the_root(store: ArtifactStore) -> None:
    for key in ("../outside", "jobs/../../x", "a\\b"):
        with pytest.raises(BadArtifactPath):
            store.put_bytes(key, b"x")


def test_probe_creates_the_folder_and_leaves_nothing(store: ArtifactStore, root: Path) -> None:
    store.probe()
    assert root.is_dir()
    assert files_under(root) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_probe_fails_on_a_folder_it_cannot_write(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        store = ArtifactStore((locked / "artifacts").as_uri())
        with pytest.raises(StoreUnavailable, match="does not answer") as caught:
            store.probe()
        assert store.url in str(caught.value)
    finally:
        locked.chmod(stat.S_IRWXU)


def test_probe_fails_where_a_file_stands_in_for_the_folder(tmp_path: Path) -> None:
    """Also when running as root: a file where the folder should be."""
    (tmp_path / "artifacts").write_text("not a folder")
    store = ArtifactStore((tmp_path / "artifacts").as_uri())
    with pytest.raises(StoreUnavailable, match=f"artifact store {store.url} does not answer"):
        store.probe()


def test_the_shown_url_has_no_credentials() -> None:
    store = ArtifactStore("s3://key:secret@bucket/prefix", timeout_s=1)
    assert store.url == "s3://bucket/prefix"
    assert "secret" not in repr(store)
