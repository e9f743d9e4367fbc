"""``trainq login``, ``logout`` and ``whoami``: which API the job commands go to, as whom.

``trainq login URL`` checks the token against the API (``GET /me``) and only then saves
the URL and token, readable by this user alone (:func:`trainq.config.login.save_login`);
from then on the job commands go over that API. ``TRAINQ_API_URL`` (with
``TRAINQ_TOKEN``) wins over a saved login.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from trainq.cli.app import cli, err, fail, out
from trainq.cli.backend import open_jobs
from trainq.config import get_settings
from trainq.config.login import forget_login, save_login, saved_login_path
from trainq.errors import ConfigError, NotAuthenticated


@cli.command()
def login(
    url: Annotated[str, typer.Argument(help="The trainq API, e.g. https://trainq.example.org")],
    token: Annotated[
        str | None,
        typer.Option(help="Your API token (default: asked for, hidden; or read from stdin)"),
    ] = None,
) -> None:
    """Check a token against the API and save both: job commands then go over the API."""
    # Lazy: httpx, for a remote API only; `trainq worker` imports this module too.
    from trainq.remote import ApiClient, RemoteJobs

    settings = get_settings()
    url = url.rstrip("/")
    given = token if token is not None else _read_token()
    if not given:
        raise fail("no token given", 2)
    try:
        api = ApiClient(url, given, settings.api_timeout_s)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    with api:
        try:
            me = RemoteJobs(api).me()
        except NotAuthenticated as exc:
            raise fail(str(exc), 1) from None
    path = save_login(settings, url, given)
    out.print(f"logged in to {url} as {me.name} ({'admin' if me.admin else 'user'})",
              highlight=False)  # fmt: skip
    err.print(f"saved to {path} (readable by you only)", highlight=False)
    if settings.api_url and settings.api_url.rstrip("/") != url:
        err.print(f"note: TRAINQ_API_URL={settings.api_url} is set and wins over this login",
                  highlight=False)  # fmt: skip


@cli.command()
def logout() -> None:
    """Forget the saved login: job commands go to Redis again (unless TRAINQ_API_URL)."""
    settings = get_settings()
    path = saved_login_path(settings)
    if forget_login(settings):
        out.print(f"logged out (removed {path})", highlight=False)
    else:
        out.print("not logged in", highlight=False)
    if settings.api_url:
        err.print(f"note: TRAINQ_API_URL={settings.api_url} is still set", highlight=False)


@cli.command()
def whoami() -> None:
    """Who you are to trainq, and where your job commands go."""
    with open_jobs() as jobs:
        out.print(jobs.whoami(), highlight=False)


def _read_token() -> str:
    """The token from a hidden prompt, or from stdin when it is not a terminal."""
    if sys.stdin.isatty():
        return str(typer.prompt("API token", hide_input=True)).strip()
    return sys.stdin.readline().strip()
