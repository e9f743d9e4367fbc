"""The web page's security through a real API server on a real Redis, without a
browser: every page and data call needs a session; the session cookie's attributes; a
forged, expired, ended or disabled session is refused; a cross-site request is refused;
and a session may cancel only what its user may.

Each call is made on its own (no cookie jar): the cookie is sent only where a test
sends it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.ui_api import ADMIN, COOKIE, Api, set_cookie, start_api
from tests.harness import wait_until

pytestmark = pytest.mark.e2e

EVIL = "https://evil.example"
PAGES = ["/ui/", "/ui/jobs/{job}", "/ui/compare?ids={job},{job}", "/ui/cluster"]
DATA_CALLS = [
    "/train",
    "/train/{job}",
    "/train/{job}/metrics",
    "/train/{job}/events",
    "/stats",
    "/queue",
    "/ui/session",
]


@pytest.fixture(scope="module")
def api(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("ui-api")
    server, api = start_api(redis_server, folder, ["alice", "bob", "erin", "dave"])
    yield api
    server.stop()


# Nothing without a session ----------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("cookie", [None, "A" * 43, "forged"])
def test_every_page_without_a_session_sends_the_browser_to_the_login_form(
    api: Api, page: str, cookie: str | None
) -> None:
    path = page.format(job=api.job("alice"))

    answer = api.call("GET", path, cookie)

    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/ui/login")
    assert api.call("GET", "/ui/login").status_code == 200  # the form itself is public


@pytest.mark.parametrize("path", DATA_CALLS)
@pytest.mark.parametrize("cookie", [None, "A" * 43, "forged"])
def test_every_data_call_without_a_session_or_token_is_401(
    api: Api, path: str, cookie: str | None
) -> None:
    status, text = api.opened(path.format(job=api.job("alice")), cookie)

    assert status == 401, text
    assert json.loads(text)["detail"]


def test_a_forged_cookie_cannot_cancel_either(api: Api) -> None:
    job_id = api.job("alice")
    _, csrf = api.session("alice")

    answer = api.call("DELETE", f"/train/{job_id}", "B" * 43, headers={"X-CSRF-Token": csrf})

    assert answer.status_code == 401
    assert api.status(job_id) == "queued"


# Logging in -----------------------------------------------------------------------------


def test_a_login_sets_a_strict_http_only_cookie_that_opens_pages_and_data(api: Api) -> None:
    job_id = api.job("alice")

    answer = api.login("alice")

    assert answer.status_code == 303 and answer.headers["location"] == "/ui/cluster"
    cookie = set_cookie(answer)
    value = cookie[COOKIE]
    assert value and value != api.tokens["alice"] and api.tokens["alice"] not in value
    assert "httponly" in cookie and cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/" and cookie["max-age"] == str(8 * 3600)
    assert "secure" not in cookie  # plain http here
    for path in DATA_CALLS:
        status, text = api.opened(path.format(job=job_id), value)
        assert status == 200, (path, text)
    assert api.call("GET", "/ui/session", value).json()["user"] == "alice"
    for page in PAGES:
        shown = api.call("GET", page.format(job=job_id), value)
        assert shown.status_code == 200, (page, shown.text[:200])
        assert shown.headers["content-type"].startswith("text/html")


def test_a_login_over_https_marks_the_cookie_secure(api: Api) -> None:
    answer = api.login("alice", **{"X-Forwarded-Proto": "https"})

    assert answer.status_code == 303
    assert "secure" in set_cookie(answer)


@pytest.mark.parametrize("token", ["", "wrong", "tq_0123456789abcdef_" + "x" * 43])
def test_a_refused_token_goes_back_to_the_form_without_a_cookie(api: Api, token: str) -> None:
    answer = api.call("POST", "/ui/login", data={"token": token})

    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?error=1"
    assert "set-cookie" not in answer.headers


def test_a_cross_site_login_is_refused(api: Api) -> None:
    answer = api.login("alice", Origin=EVIL)

    assert answer.status_code == 403, answer.text
    assert "cross-site" in answer.json()["detail"]
    assert "set-cookie" not in answer.headers


def test_disabling_the_user_or_revoking_the_token_ends_the_session(api: Api) -> None:
    cookie, _ = api.session("erin")

    assert api.call("PATCH", "/users/erin", json={"disabled": True}, headers=ADMIN).is_success
    assert api.call("GET", "/train", cookie).status_code == 401
    assert api.call("GET", "/ui/", cookie).status_code == 303
    assert api.call("PATCH", "/users/erin", json={"disabled": False}, headers=ADMIN).is_success
    assert api.call("GET", "/train", cookie).status_code == 200
    token_id = api.tokens["erin"].split("_")[1]  # tq_<id>_<secret>
    assert api.call("DELETE", f"/tokens/{token_id}", headers=ADMIN).is_success
    assert api.call("GET", "/train", cookie).status_code == 401


# Cross-site requests --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "cancelled"),
    [
        ({}, False),
        ({"X-CSRF-Token": "wrong"}, False),
        ({"X-CSRF-Token": "{csrf}", "Origin": EVIL}, False),
        ({"X-CSRF-Token": "{csrf}", "Origin": "null"}, False),
        ({"X-CSRF-Token": "{csrf}"}, True),
        ({"X-CSRF-Token": "{csrf}", "Origin": "{own}"}, True),
    ],
)
def test_a_cancel_with_a_session_needs_its_csrf_token_and_no_foreign_origin(
    api: Api, headers: dict[str, str], cancelled: bool
) -> None:
    job_id = api.job("alice")
    cookie, csrf = api.session("alice")
    sent = {k: v.format(csrf=csrf, own=api.url) for k, v in headers.items()}

    answer = api.call("DELETE", f"/train/{job_id}", cookie, headers=sent)

    if cancelled:
        assert answer.status_code in (200, 202), answer.text
        assert api.status(job_id) == "cancelled"
    else:
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"].startswith("cross-site request refused")
        assert csrf not in answer.text
        assert api.status(job_id) == "queued"


def test_another_users_job_cannot_be_cancelled_with_a_session(api: Api) -> None:
    job_id = api.job("alice")
    cookie, csrf = api.session("bob")

    answer = api.call("DELETE", f"/train/{job_id}", cookie, headers={"X-CSRF-Token": csrf})

    assert answer.status_code == 403, answer.text
    assert "alice" in answer.json()["detail"]
    assert api.status(job_id) == "queued"


def test_a_logout_needs_the_csrf_token_and_then_ends_the_session(api: Api) -> None:
    cookie, csrf = api.session("dave")

    without = api.call("POST", "/ui/logout", cookie)
    wrong = api.call("POST", "/ui/logout", cookie, data={"csrf": "wrong"})
    foreign = api.call("POST", "/ui/logout", cookie, data={"csrf": csrf}, headers={"Origin": EVIL})
    assert [r.status_code for r in (without, wrong, foreign)] == [403, 403, 403]
    assert api.call("GET", "/train", cookie).status_code == 200  # still logged in

    answer = api.call("POST", "/ui/logout", cookie, data={"csrf": csrf})

    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    cleared = set_cookie(answer)
    assert cleared[COOKIE] == "" and cleared["max-age"] == "0"
    assert api.call("GET", "/train", cookie).status_code == 401
    assert api.call("GET", "/ui/", cookie).status_code == 303


def test_logins_and_logouts_are_audited_without_a_token_or_cookie(api: Api) -> None:
    cookie, csrf = api.session("dave")
    assert api.call("POST", "/ui/logout", cookie, data={"csrf": csrf}).status_code == 303
    refused = api.call("POST", "/ui/login", data={"token": "tq_0123456789abcdef_" + "y" * 43})
    assert refused.status_code == 303

    def entries() -> list[dict[str, Any]]:
        answer = api.call("GET", "/audit", headers=ADMIN, params={"limit": 500})
        found: list[dict[str, Any]] = answer.json()["entries"]
        ours = [e for e in found if e["action"] in ("ui.login", "ui.logout")]
        return found if len(ours) >= 3 else []

    trail = wait_until(entries, 30, "the logins and logout in the audit trail")
    text = json.dumps(trail)
    assert cookie not in text and csrf not in text and "y" * 43 not in text
    assert all(token not in text for token in api.tokens.values())
    actions = {(e["action"], e["actor"], e["answer"]) for e in trail}
    assert {("ui.login", "dave", 303), ("ui.logout", "dave", 303)} <= actions
    assert ("ui.login", "anonymous", 303) in actions


# Expiry -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_an_expired_session_is_refused(redis_server: str, tmp_path: Path) -> None:
    server, short = start_api(redis_server, tmp_path, ["alice"], TRAINQ_UI_SESSION_TTL_S="10")
    try:
        answer = short.login("alice")
        cookie = set_cookie(answer)
        assert cookie["max-age"] == "10"
        assert short.call("GET", "/train", cookie[COOKIE]).status_code == 200

        def refused() -> bool:
            return short.call("GET", "/train", cookie[COOKIE]).status_code == 401

        wait_until(refused, 30, "the session to expire", interval_s=0.5)
        assert short.call("GET", "/ui/", cookie[COOKIE]).status_code == 303
    finally:
        server.stop()
