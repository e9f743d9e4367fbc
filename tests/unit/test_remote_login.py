"""The saved login: private from its first byte, and the environment wins over it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainq.config import Settings
from trainq.config.login import (
    forget_login,
    remote_api,
    save_login,
    saved_login,
    saved_login_path,
)
from trainq.errors import ConfigError


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config folder, and no remote setting from the test's environment."""
    for name in ("TRAINQ_API_URL", "TRAINQ_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "config" / "trainq"
    monkeypatch.setenv("TRAINQ_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave new files readable and writable by everyone."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_the_login_file_is_0600_in_a_0700_folder_whatever_the_umask(config_dir: Path) -> None:
    path = save_login(Settings(), "http://api:8000", "tq_secret")

    assert path == saved_login_path(Settings()) == config_dir / "login.json"
    assert mode(path) == 0o600
    assert mode(config_dir) == 0o700
    assert [p.name for p in config_dir.iterdir()] == ["login.json"]  # no partial left
    assert saved_login(Settings()) == ("http://api:8000", "tq_secret")


def test_a_new_login_replaces_the_old_one_whole(config_dir: Path) -> None:
    save_login(Settings(), "http://old:8000", "tq_old")
    save_login(Settings(), "http://new:8000", "tq_new")

    assert remote_api(Settings()) == ("http://new:8000", "tq_new")
    assert mode(config_dir / "login.json") == 0o600


def test_no_login_and_no_environment_is_direct_mode(config_dir: Path) -> None:
    assert remote_api(Settings()) is None


def test_the_environment_wins_over_the_saved_login(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_login(Settings(), "http://saved:8000", "tq_saved")

    monkeypatch.setenv("TRAINQ_API_URL", "http://env:9000")
    assert remote_api(Settings()) == ("http://env:9000", "")  # never the file's token elsewhere
    monkeypatch.setenv("TRAINQ_API_URL", "http://saved:8000/")
    assert remote_api(Settings()) == ("http://saved:8000/", "tq_saved")  # its own URL
    monkeypatch.setenv("TRAINQ_API_URL", "http://env:9000")
    monkeypatch.setenv("TRAINQ_TOKEN", "tq_env")
    assert remote_api(Settings()) == ("http://env:9000", "tq_env")
    monkeypatch.delenv("TRAINQ_API_URL")
    assert remote_api(Settings()) == ("http://saved:8000", "tq_env")


def test_a_login_file_others_can_read_is_refused(config_dir: Path) -> None:
    path = save_login(Settings(), "http://api:8000", "tq_secret")
    path.chmod(0o644)

    with pytest.raises(ConfigError, match="readable by others") as raised:
        remote_api(Settings())
    assert "tq_secret" not in str(raised.value)


@pytest.mark.parametrize("text", ["not json", "[]", '{"api_url": "", "token": "t"}', "{}"])
def test_a_malformed_login_file_is_a_config_error(config_dir: Path, text: str) -> None:
    path = save_login(Settings(), "http://api:8000", "tq_secret")
    path.write_text(text)

    with pytest.raises(ConfigError, match="malformed"):
        remote_api(Settings())


def test_logout_forgets_the_login(config_dir: Path) -> None:
    save_login(Settings(), "http://api:8000", "tq_secret")

    assert forget_login(Settings()) is True
    assert remote_api(Settings()) is None
    assert forget_login(Settings()) is False
