"""The remote CLI's login: the API URL and token ``trainq login`` saves (mode 0600) in
the user's config directory, and which API the CLI's commands use (the environment
first, then the saved login). A settings source like the environment, so it is read
here, in :mod:`trainq.config`, and nowhere else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainq.config import Settings
from trainq.errors import ConfigError

# `trainq login` saves the API's URL and token here, as JSON {"api_url", "token"}.
_LOGIN_FILE = "login.json"


def saved_login_path(settings: Settings) -> Path:
    """Where ``trainq login`` keeps the API URL and token (mode 0600)."""
    return settings.config_dir / _LOGIN_FILE


def saved_login(settings: Settings) -> tuple[str, str] | None:
    """The saved API URL and token; None when there is no login. ConfigError when the
    file is malformed or readable by others (a token must stay private)."""
    path = saved_login_path(settings)
    try:
        with path.open(encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            raw = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the saved login {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(
            f"the saved login {path} is readable by others (mode {mode & 0o777:o}): "
            "run `trainq logout` and `trainq login` again"
        )

    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    url = data.get("api_url") if isinstance(data, dict) else None
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url or not isinstance(token, str):
        raise ConfigError(f"the saved login {path} is malformed: run `trainq login` again")
    return url, token


def remote_api(settings: Settings) -> tuple[str, str] | None:
    """The API URL and token the CLI's job commands use; None: direct to Redis.

    TRAINQ_API_URL (with TRAINQ_TOKEN) wins over the saved login, whose token goes only
    to its own URL; a TRAINQ_TOKEN set alone goes to the saved login's URL.
    """
    token = settings.token.get_secret_value()
    if settings.api_url and token:
        return settings.api_url, token
    saved = saved_login(settings)
    if not settings.api_url:
        return None if saved is None else (saved[0], token or saved[1])
    if saved is not None and saved[0].rstrip("/") == settings.api_url.rstrip("/"):
        return settings.api_url, saved[1]
    return settings.api_url, ""


def save_login(settings: Settings, api_url: str, token: str) -> Path:
    """Save the URL and token for later commands: the file is created 0600 and replaced
    whole, so no other user can ever read it, even briefly (a new folder: 0700)."""

    path = saved_login_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a folder made here: 0700
    partial = path.with_name(f".{_LOGIN_FILE}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # exactly 0600, whatever the umask
            json.dump({"api_url": api_url, "token": token}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def forget_login(settings: Settings) -> bool:
    """Remove the saved login; whether there was one."""
    try:
        saved_login_path(settings).unlink()
    except FileNotFoundError:
        return False
    return True
