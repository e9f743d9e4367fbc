"""A real API server on a real Redis for the web page's tests without a browser
(tests/e2e/test_ui_security.py, test_job_events.py): its users' tokens, sessions and
calls, each made on its own (no cookie jar: the cookie is sent only where a test
sends it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.harness import REPO
from trainq.store.keys import Keys
from trainq.testing import ApiServer
from trainq.users.store import RedisUsers

ADMIN_TOKEN = "ui-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
COOKIE = "trainq_session"


@dataclass
class Api:
    url: str
    tokens: dict[str, str]  # user name -> token

    def call(self, method: str, path: str, cookie: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if cookie is not None:
            headers["Cookie"] = f"{COOKIE}={cookie}"
        return httpx.request(
            method, self.url + path, headers=headers, follow_redirects=False, timeout=30, **kw
        )

    def opened(self, path: str, cookie: str | None = None) -> tuple[int, str]:
        """GET ``path``: its status and the first chunk of its body (an event stream
        does not end while its job runs)."""
        headers = {} if cookie is None else {"Cookie": f"{COOKIE}={cookie}"}
        with httpx.stream("GET", self.url + path, headers=headers, timeout=30) as answer:
            return answer.status_code, next(answer.iter_text(), "")

    def login(self, user: str, **headers: str) -> httpx.Response:
        form = {"token": self.tokens[user], "next": "/ui/cluster"}
        return self.call("POST", "/ui/login", data=form, headers=headers)

    def session(self, user: str) -> tuple[str, str]:
        """A new session of ``user``: its cookie's value and its CSRF token."""
        answer = self.login(user)
        assert answer.status_code == 303, answer.text
        cookie = set_cookie(answer)[COOKIE]
        described = self.call("GET", "/ui/session", cookie)
        assert described.status_code == 200, described.text
        return cookie, str(described.json()["csrf"])

    def job(self, user: str) -> str:
        """A new queued job of ``user`` (no worker serves this cluster's queue)."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        submitted = self.call("POST", "/train", json={"epochs": 1}, headers=headers)
        assert submitted.status_code == 202, submitted.text
        return str(submitted.json()["id"])

    def status(self, job_id: str) -> str:
        return str(self.call("GET", f"/train/{job_id}", headers=ADMIN).json()["status"])


def set_cookie(answer: httpx.Response) -> dict[str, str]:
    """The Set-Cookie header's cookie (name: value) and attributes (lower-cased name:
    value, "" for a flag)."""
    (header,) = answer.headers.get_list("set-cookie")
    first, *attributes = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    found = {name: value.strip('"')}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        found[key.lower()] = val
    return found


def start_api(redis_url: str, folder: Path, users: list[str], **env: str) -> tuple[ApiServer, Api]:
    prefix = env.pop("TRAINQ_KEY_PREFIX", f"ui-{uuid.uuid4().hex[:8]}:")
    store = RedisUsers(redis.Redis.from_url(redis_url, decode_responses=True), Keys(prefix))
    tokens = {name: store.add(f"{name}")[1].secret for name in users}
    settings = {
        "TRAINQ_REDIS_URL": redis_url,
        "TRAINQ_KEY_PREFIX": prefix,
        "TRAINQ_API_TOKENS": ADMIN_TOKEN,
        "TRAINQ_QUEUE": f"ui-{uuid.uuid4().hex[:8]}",  # no worker: jobs stay queued
        "TRAINQ_LOG_DIR": str(folder / "logs"),
        **env,
    }
    server = ApiServer(folder / "api.log", settings, cwd=REPO).start()
    return server, Api(server.url, tokens)
