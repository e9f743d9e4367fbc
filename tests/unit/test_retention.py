"""trainq.retention: compress idle logs, delete compressed ones past retention."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from trainq.logs.retention import IDLE_BEFORE_COMPRESSION_S, open_log, sweep

NOW = 2_000_000_000  # whole seconds, so mtimes compare exactly
DAY = 86_400
RETENTION_DAYS = 7


def _make(path: Path, age_s: float, content: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        content = f"{path.name}\n".encode() * 50
    path.write_bytes(content)
    mtime = NOW - age_s
    os.utime(path, (mtime, mtime))
    return path


def _gz(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


def _gzip(path: Path, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(b"old\n")
    mtime = NOW - age_s
    os.utime(path, (mtime, mtime))
    return path


def test_idle_logs_are_compressed_in_place(tmp_path: Path) -> None:
    contents = {
        tmp_path / "TrainingWorker_20330516.log": '{"msg": "héllo"}\n'.encode() * 200,
        tmp_path / "jobs" / "job-1.log": bytes(range(256)) * 40,
        tmp_path / "jobs" / "job-2.log": b"",
    }
    ages = [2 * DAY, DAY, 3 * DAY + 0.5]
    for (path, content), age in zip(contents.items(), ages, strict=True):
        _make(path, age, content)

    done = sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert sorted(done.compressed) == sorted(_gz(p) for p in contents)
    assert done.deleted == []
    for (path, content), age in zip(contents.items(), ages, strict=True):
        packed = _gz(path)
        assert not path.exists()
        assert packed.is_file()
        assert gzip.decompress(packed.read_bytes()) == content
        assert packed.stat().st_mtime == NOW - age
    assert not list(tmp_path.rglob("*.tmp"))


def test_fresh_logs_are_left_alone(tmp_path: Path) -> None:
    fresh = [
        _make(tmp_path / "TrainingWorker_today.log", 0),
        _make(tmp_path / "jobs" / "running.log", IDLE_BEFORE_COMPRESSION_S - 1),
        _make(tmp_path / "jobs" / "from-the-future.log", -3_600),
    ]
    before = {p: (p.read_bytes(), p.stat().st_mtime) for p in fresh}

    done = sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert done.compressed == []
    assert done.deleted == []
    assert {p: (p.read_bytes(), p.stat().st_mtime) for p in fresh} == before
    assert sorted(tmp_path.rglob("*")) == sorted([*fresh, tmp_path / "jobs"])


def test_other_files_and_deeper_folders_are_left_alone(tmp_path: Path) -> None:
    others = [
        _make(tmp_path / "notes.txt", 30 * DAY),
        _make(tmp_path / "jobs" / "job-1.json", 30 * DAY),
        _make(tmp_path / "jobs" / "nested" / "deep.log", 30 * DAY),
        _make(tmp_path / "archive" / "x.log", 30 * DAY),
    ]

    done = sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert done.compressed == []
    assert done.deleted == []
    assert all(p.is_file() for p in others)


def test_compressed_logs_past_retention_are_deleted(tmp_path: Path) -> None:
    old = [
        _gzip(tmp_path / "TrainingWorker_20330501.log.gz", RETENTION_DAYS * DAY),
        _gzip(tmp_path / "jobs" / "job-old.log.gz", 30 * DAY),
    ]
    young = [
        _gzip(tmp_path / "TrainingWorker_20330510.log.gz", RETENTION_DAYS * DAY - 1),
        _gzip(tmp_path / "jobs" / "job-young.log.gz", DAY),
    ]

    done = sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert sorted(done.deleted) == sorted(old)
    assert done.compressed == []
    assert not any(p.exists() for p in old)
    assert all(p.is_file() for p in young)


def test_fractional_retention_days(tmp_path: Path) -> None:
    past = _gzip(tmp_path / "jobs" / "a.log.gz", DAY // 2)
    within = _gzip(tmp_path / "jobs" / "b.log.gz", DAY // 2 - 1)

    done = sweep(tmp_path, 0.5, now=NOW)

    assert done.deleted == [past]
    assert within.is_file()


def test_a_log_idle_past_retention_is_compressed_then_deleted(tmp_path: Path) -> None:
    path = _make(tmp_path / "jobs" / "ancient.log", (RETENTION_DAYS + 1) * DAY)
    recent = _make(tmp_path / "jobs" / "recent.log", 2 * DAY)

    done = sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert sorted(done.compressed) == sorted([_gz(path), _gz(recent)])
    assert done.deleted == [_gz(path)]
    assert not path.exists()
    assert not _gz(path).exists()
    assert _gz(recent).is_file()


def test_sweep_twice_changes_nothing_more(tmp_path: Path) -> None:
    _make(tmp_path / "jobs" / "job-1.log", 2 * DAY)
    sweep(tmp_path, RETENTION_DAYS, now=NOW)
    after_first = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    done = sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert done.compressed == []
    assert done.deleted == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == after_first


def test_sweep_defaults_now_to_the_clock(tmp_path: Path) -> None:
    old = tmp_path / "jobs" / "old.log"
    old.parent.mkdir()
    old.write_text("x\n")
    os.utime(old, (0, 0))  # 1970: long idle, within a 100-year retention
    fresh = tmp_path / "fresh.log"
    fresh.write_text("y\n")

    done = sweep(tmp_path, 36_500)

    assert done.deleted == []

    assert done.compressed == [_gz(old)]
    assert fresh.is_file()


@pytest.mark.parametrize("missing", ["no-such-dir", "file-not-dir"])
def test_sweep_without_a_log_folder_does_nothing(tmp_path: Path, missing: str) -> None:
    log_dir = tmp_path / missing
    if missing == "file-not-dir":
        log_dir.write_text("not a folder")

    done = sweep(log_dir, RETENTION_DAYS, now=NOW)

    assert (done.compressed, done.deleted) == ([], [])


def test_sweep_without_a_jobs_folder_still_sweeps_the_log_dir(tmp_path: Path) -> None:
    path = _make(tmp_path / "TrainingAgent_20330101.log", 2 * DAY)

    done = sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert done.compressed == [_gz(path)]


# open_log


def test_open_log_prefers_the_plain_file(tmp_path: Path) -> None:
    path = _make(tmp_path / "job.log", 0)
    _gzip(_gz(path), 0)

    assert open_log(path) == path


def test_open_log_falls_back_to_the_compressed_file(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    packed = _gzip(_gz(path), 0)

    assert open_log(path) == packed


def test_open_log_finds_what_sweep_compressed(tmp_path: Path) -> None:
    path = _make(tmp_path / "jobs" / "job.log", 2 * DAY)
    assert open_log(path) == path

    sweep(tmp_path, RETENTION_DAYS, now=NOW)

    assert open_log(path) == _gz(path)


def test_open_log_without_either_is_none(tmp_path: Path) -> None:
    assert open_log(tmp_path / "job.log") is None
    (tmp_path / "folder.log").mkdir()
    assert open_log(tmp_path / "folder.log") is None
