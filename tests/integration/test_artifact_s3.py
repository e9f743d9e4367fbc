"""The artifact store on a real S3-compatible server (moto's, as a subprocess)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from tests.s3server import S3Server, store_settings
from trainq.artifacts.checkpoints import publish, restore
from trainq.artifacts.store import ArtifactStore
from trainq.config import Settings
from trainq.errors import ArtifactError, ArtifactNotFound, StoreUnavailable
from trainq.testing import free_port

pytestmark = pytest.mark.integration


def s3_store(url: str, endpoint_url: str, timeout_s: float = 30.0) -> ArtifactStore:
    settings = Settings(**store_settings(url, endpoint_url), artifact_timeout_s=timeout_s)
    return ArtifactStore.from_settings(settings)


@pytest.fixture
def store(s3_server: S3Server) -> ArtifactStore:
    bucket = s3_server.make_bucket(f"b-{uuid.uuid4().hex[:12]}")
    return s3_store(f"s3://{bucket}/trainq", s3_server.endpoint_url)


def test_put_get_list_delete(store: ArtifactStore, tmp_path: Path) -> None:
    store.probe()
    data = os.urandom(6 * (1 << 20) + 5)  # past s3fs's 5 MB block: a multipart upload
    (tmp_path / "model.pt").write_bytes(data)

    assert store.put_file(tmp_path / "model.pt", "jobs/j/outputs/model.pt") == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    store.put_bytes("jobs/j/logs/a.txt", b"abc")
    store.put_bytes("jobs/other/x", b"x")

    assert store.list("jobs/j") == [
        ("jobs/j/logs/a.txt", 3),
        ("jobs/j/outputs/model.pt", len(data)),
    ]
    assert store.list("jobs/none") == []
    assert store.exists("jobs/j/logs/a.txt") and not store.exists("jobs/j/nope")
    assert store.read_bytes("jobs/j/logs/a.txt") == b"abc"
    store.get_file("jobs/j/outputs/model.pt", tmp_path / "down" / "model.pt")
    assert (tmp_path / "down" / "model.pt").read_bytes() == data
    assert os.listdir(tmp_path / "down") == ["model.pt"]
    with store.open("jobs/j/logs/a.txt") as f:
        assert f.read() == b"abc"
    with pytest.raises(ArtifactNotFound, match=store.url):
        store.read_bytes("jobs/j/nope")
    with pytest.raises(ArtifactNotFound):
        store.get_file("jobs/j/nope", tmp_path / "nope")

    store.delete_prefix("jobs/j")
    assert store.list("jobs") == [("jobs/other/x", 1)]
    store.delete_prefix("jobs/j")  # nothing there: no error


def test_a_checkpoint_published_on_one_host_is_restored_on_another(
    store: ArtifactStore, tmp_path: Path
) -> None:
    a, b = tmp_path / "a" / "ckpt", tmp_path / "b" / "ckpt"
    a.mkdir(parents=True)
    (a / "model.pt").write_bytes(b"weights" * 1000)
    (a / "sub").mkdir()
    (a / "sub" / "opt.pt").write_bytes(b"optimizer")

    manifest = publish(
        store, "j", a, attempt=1, host="a", epoch=4, state_path=tmp_path / "a" / "state.json"
    )
    assert manifest is not None
    restored = restore(store, "j", b, state_path=tmp_path / "b" / "state.json")

    assert restored is not None and (restored.epoch, restored.files) == (4, 2)
    assert (b / "model.pt").read_bytes() == b"weights" * 1000
    assert (b / "sub" / "opt.pt").read_bytes() == b"optimizer"
    assert restore(store, "j", b, state_path=tmp_path / "b" / "state.json") is None


def test_a_truncated_blob_is_not_restored(store: ArtifactStore, tmp_path: Path) -> None:
    """A blob of another size than its manifest says fails the restore, leaving the
    host's folder untouched (a restore streams it unhashed)."""
    a, b = tmp_path / "a" / "ckpt", tmp_path / "b" / "ckpt"
    a.mkdir(parents=True)
    (a / "model.pt").write_bytes(b"m" * 100)
    manifest = publish(
        store, "j", a, attempt=1, host="a", epoch=1, state_path=tmp_path / "a" / "state.json"
    )
    assert manifest is not None
    store.put_bytes(f"jobs/j/checkpoints/{manifest.files['model.pt'].blob}", b"m" * 60)

    with pytest.raises(ArtifactError, match="corrupt: it holds 60 bytes, expected 100"):
        restore(store, "j", b, state_path=tmp_path / "b" / "state.json")
    assert not b.exists() or list(b.iterdir()) == []


def test_probe_of_an_unreachable_endpoint_fails_fast_naming_the_url() -> None:
    store = s3_store("s3://bucket/prefix", f"http://127.0.0.1:{free_port()}", timeout_s=5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="artifact store s3://bucket/prefix does not answer"):
        store.probe()
    assert time.monotonic() - started < 5


def test_an_operation_on_an_unreachable_endpoint_fails_within_its_timeout() -> None:
    store = s3_store("s3://bucket/prefix", f"http://127.0.0.1:{free_port()}", timeout_s=5)
    for call in (
        lambda: store.put_bytes("jobs/j/x", b"x"),
        lambda: store.read_bytes("jobs/j/x"),
        lambda: store.list("jobs"),
    ):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="s3://bucket/prefix"):
            call()
        assert time.monotonic() - started < 10


def test_probe_of_a_missing_bucket_fails(s3_server: S3Server) -> None:
    store = s3_store("s3://no-such-bucket/prefix", s3_server.endpoint_url)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="s3://no-such-bucket/prefix does not answer"):
        store.probe()
    assert time.monotonic() - started < 5
