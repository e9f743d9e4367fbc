"""The web page's sessions without Redis: the store contract on the in-memory twin, the
cross-site decision, ``Authenticate`` with a cookie, where a login may send the browser,
the rate limit's bucket and the audit entry of a login.

Every store test takes the ``users``, ``sessions`` and ``clock`` fixtures only, so
tests/integration/test_sessions_store.py runs the same tests against Redis.
"""

from __future__ import annotations

import pytest
from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from tests.unit.test_users import FakeClock
from trainq.api.auditing import _Answer, entry_for
from trainq.api.auth import Authenticate, cross_site, own_origin, same_origin
from trainq.api.ratelimit import bucket_key
from trainq.api.routes.session import safe_next
from trainq.config import Settings
from trainq.users.memory import MemoryUsers
from trainq.users.model import ENV_TOKEN_USER, Principal
from trainq.users.protocols import UserStore
from trainq.users.sessions import (
    SESSION_COOKIE,
    MemorySessions,
    Session,
    Sessions,
    digest,
    still_valid,
    well_formed,
)

TTL_S = 3600.0
CSRF = "c" * 43


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def users(clock: FakeClock) -> UserStore:
    return MemoryUsers(clock=clock)


@pytest.fixture
def sessions(users: UserStore, clock: FakeClock) -> Sessions:
    return MemorySessions(users, TTL_S, clock=clock)


def _login(users: UserStore, sessions: Sessions, name: str = "alice") -> tuple[str, str]:
    """A new user's session: the cookie's value and the token's id."""
    _, issued = users.add(name)
    principal = users.authenticate(issued.secret)
    cookie, _ = sessions.create(principal)
    return cookie, issued.info.id


# The store contract ---------------------------------------------------------------------


def test_a_session_acts_for_whoever_logged_in_until_it_expires(
    users: UserStore, sessions: Sessions, clock: FakeClock
) -> None:
    _, issued = users.add("alice", admin=True)
    principal = users.authenticate(issued.secret)

    cookie, made = sessions.create(principal)

    assert well_formed(cookie) and len(cookie) == 43
    assert (made.user, made.admin, made.token_id) == ("alice", True, issued.info.id)
    assert made.expires_at == pytest.approx(clock.now + TTL_S)
    assert len(made.csrf) >= 43 and made.csrf != cookie
    found = sessions.get(cookie)
    assert found is not None and found.principal() == Principal("alice", True, issued.info.id)
    assert found.csrf == made.csrf
    clock.advance(TTL_S - 1)
    assert sessions.get(cookie) is not None
    clock.advance(1)
    assert sessions.get(cookie) is None


def test_each_login_is_its_own_session_with_its_own_csrf_token(
    users: UserStore, sessions: Sessions
) -> None:
    _, issued = users.add("alice")
    principal = users.authenticate(issued.secret)

    first, second = sessions.create(principal), sessions.create(principal)

    assert first[0] != second[0] and first[1].csrf != second[1].csrf
    sessions.delete(first[0])
    assert sessions.get(first[0]) is None
    assert sessions.get(second[0]) is not None


@pytest.mark.parametrize(
    "cookie", [None, "", "x", "A" * 42, "A" * 44, "A" * 42 + "!", "tq_" + "a" * 40]
)
def test_malformed_or_unknown_cookies_name_no_session(
    sessions: Sessions, cookie: str | None
) -> None:
    assert sessions.get(cookie) is None
    sessions.delete(cookie)  # nothing to end: no error


def test_a_forged_cookie_of_the_right_shape_names_no_session(
    users: UserStore, sessions: Sessions
) -> None:
    cookie, _ = _login(users, sessions)
    forged = ("B" if cookie[0] != "B" else "C") + cookie[1:]

    assert sessions.get(forged) is None
    assert sessions.get(cookie) is not None


def test_revoking_the_login_token_or_disabling_the_user_ends_the_session(
    users: UserStore, sessions: Sessions
) -> None:
    cookie, token_id = _login(users, sessions)
    other, _ = _login(users, sessions, "bob")

    users.disable("alice")
    assert sessions.get(cookie) is None
    users.enable("alice")
    assert sessions.get(cookie) is not None
    users.revoke(token_id)
    assert sessions.get(cookie) is None
    assert sessions.get(other) is not None  # bob's is untouched


def test_a_session_takes_the_admin_flag_of_its_users_record_as_read_with_it() -> None:
    admin_now = '{"name": "alice", "created_at": 1, "admin": true}'

    promoted = still_valid(_session(), "0", admin_now)

    assert promoted is not None and promoted.admin and not _session().admin


def test_a_session_of_an_api_token_names_no_token_to_check(
    users: UserStore, sessions: Sessions
) -> None:
    cookie, made = sessions.create(Principal(ENV_TOKEN_USER, admin=True))

    assert made.token_id is None
    found = sessions.get(cookie)
    assert found is not None and found.principal() == Principal(ENV_TOKEN_USER, admin=True)


# What a session's validity depends on -------------------------------------------------


def _session(token_id: str | None = "0123456789abcdef") -> Session:
    return Session(
        user="alice", admin=False, token_id=token_id, csrf=CSRF, created_at=0, expires_at=10
    )


@pytest.mark.parametrize(
    ("revoked", "user_json", "valid"),
    [
        ("0", '{"name": "alice", "created_at": 1}', True),
        ("1", '{"name": "alice", "created_at": 1}', False),
        ("", '{"name": "alice", "created_at": 1}', False),  # the token is gone
        ("0", "", False),  # the user is gone
        ("0", '{"name": "alice", "created_at": 1, "disabled": true}', False),
        ("0", '{"name": "mallory", "created_at": 1}', False),  # not the session's user
        ("0", "{not json", False),
    ],
)
def test_still_valid_needs_a_live_token_and_an_enabled_user(
    revoked: str, user_json: str, valid: bool
) -> None:
    assert (still_valid(_session(), revoked, user_json) is not None) is valid


def test_only_a_digest_of_the_secret_is_what_a_store_keys_by() -> None:
    secret = "s" * 43
    assert digest(secret) != secret and len(digest(secret)) == 64
    assert digest(secret) == digest(secret) and digest(secret) != digest("t" * 43)


# The cross-site decision --------------------------------------------------------------

OWN = "http://127.0.0.1:8000"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_need_no_csrf_token_nor_origin(method: str) -> None:
    assert cross_site(method, "https://evil.example", OWN, None, CSRF) is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "delete"])
@pytest.mark.parametrize(
    ("origin", "sent", "refused"),
    [
        (None, CSRF, False),
        (OWN, CSRF, False),
        ("HTTP://127.0.0.1:8000", CSRF, False),
        (None, None, True),
        (OWN, None, True),
        (None, "", True),
        (None, CSRF[:-1] + "d", True),
        (None, CSRF + "c", True),
        ("https://evil.example", CSRF, True),
        ("http://127.0.0.1:8001", CSRF, True),
        ("https://127.0.0.1:8000", CSRF, True),
        ("null", CSRF, True),
        ("http://127.0.0.1:8000.evil.example", CSRF, True),
    ],
)
def test_an_unsafe_request_needs_the_csrf_token_and_no_foreign_origin(
    method: str, origin: str | None, sent: str | None, refused: bool
) -> None:
    refusal = cross_site(method, origin, OWN, sent, CSRF)

    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.startswith("cross-site request refused")
        assert CSRF not in refusal


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("http://a.example", "http://a.example:80", True),
        ("https://A.example", "https://a.example:443/", True),
        ("https://a.example", "http://a.example", False),
        ("http://[::1]:8000", "http://[::1]:8000", True),
        ("http://a.example:99999", "http://a.example:99999", False),  # no valid port
        ("ftp://a.example", "ftp://a.example", False),
        ("http://a.example/path", "http://a.example", False),
        ("null", "null", False),
    ],
)
def test_same_origin_compares_scheme_host_and_port(first: str, second: str, same: bool) -> None:
    assert same_origin(first, second) is same


def _request(
    method: str = "GET", headers: dict[str, str] | None = None, scheme: str = "http"
) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request(
        {
            "type": "http",
            "method": method,
            "path": "/train/x",
            "scheme": scheme,
            "server": ("127.0.0.1", 8000),
            "headers": raw,
        }
    )


def test_the_own_origin_is_the_requests_host_over_https_when_forwarded_so() -> None:
    assert own_origin(_request(headers={"Host": "api.example:8000"})) == "http://api.example:8000"
    forwarded = {"Host": "api.example", "X-Forwarded-Proto": "https"}
    assert own_origin(_request(headers=forwarded)) == "https://api.example"
    assert own_origin(_request(headers={"Host": "api.example"}, scheme="https")) == (
        "https://api.example"
    )


# Authenticate with a session cookie ---------------------------------------------------


def _authenticate(users: UserStore, sessions: Sessions, api_tokens: str = "") -> Authenticate:
    settings = Settings(api_tokens=api_tokens)
    return Authenticate(settings, lambda: users, lambda: sessions)


def _with_cookie(cookie: str, method: str = "GET", **headers: str) -> Request:
    return _request(method, {"Host": "127.0.0.1:8000", "Cookie": f"{SESSION_COOKIE}={cookie}",
                             **headers})  # fmt: skip


def test_a_session_cookie_acts_for_its_user_and_a_token_wins_over_it(
    users: UserStore, sessions: Sessions
) -> None:
    cookie, token_id = _login(users, sessions)
    _, bobs = users.add("bob")
    authenticate = _authenticate(users, sessions)
    asked = _with_cookie(cookie)

    assert authenticate(asked, None) == Principal("alice", False, token_id)
    assert asked.state.principal.name == "alice" and asked.state.session.user == "alice"
    bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=bobs.secret)
    also_token = _with_cookie(cookie)
    assert authenticate(also_token, bearer).name == "bob"
    assert also_token.state.session is None


def test_a_forged_or_ended_session_is_401(users: UserStore, sessions: Sessions) -> None:
    cookie, _ = _login(users, sessions)
    authenticate = _authenticate(users, sessions)
    sessions.delete(cookie)

    for value in (cookie, "A" * 43, "junk"):
        with pytest.raises(HTTPException) as refused:
            authenticate(_with_cookie(value), None)
        assert refused.value.status_code == 401 and value not in str(refused.value.detail)


def test_an_unsafe_call_with_a_session_needs_its_csrf_token(
    users: UserStore, sessions: Sessions
) -> None:
    cookie, _ = _login(users, sessions)
    csrf = sessions.get(cookie).csrf  # type: ignore[union-attr]
    authenticate = _authenticate(users, sessions)

    refused = _with_cookie(cookie, "DELETE")
    with pytest.raises(HTTPException) as caught:
        authenticate(refused, None)
    assert caught.value.status_code == 403
    assert refused.state.principal.name == "alice"  # the audit trail names who was used
    foreign = _with_cookie(
        cookie, "DELETE", **{"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    with pytest.raises(HTTPException):
        authenticate(foreign, None)
    same = _with_cookie(
        cookie, "DELETE", **{"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8000"}
    )
    assert authenticate(same, None).name == "alice"


def test_a_session_of_an_api_token_lasts_only_while_the_api_has_such_tokens(
    users: UserStore, sessions: Sessions
) -> None:
    cookie, _ = sessions.create(Principal(ENV_TOKEN_USER, admin=True))

    assert _authenticate(users, sessions, "first")(_with_cookie(cookie), None).admin
    with pytest.raises(HTTPException) as refused:
        _authenticate(users, sessions, "")(_with_cookie(cookie), None)
    assert refused.value.status_code == 401


# Where a login may send the browser ---------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "sent_to"),
    [
        (None, "/ui/"),
        ("", "/ui/"),
        ("/ui/jobs/abc", "/ui/jobs/abc"),
        ("/ui/compare?ids=a,b", "/ui/compare?ids=a,b"),
        ("/ui", "/ui"),
        ("/uix", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui//evil.example", "/ui/"),
        ("/ui/\\evil.example", "/ui/"),
        ("/ui/../train", "/ui/"),
        ("/train", "/ui/"),
        ("/ui/\njobs", "/ui/"),
    ],
)
def test_a_login_sends_the_browser_only_to_a_page_of_the_ui(
    wanted: str | None, sent_to: str
) -> None:
    assert safe_next(wanted) == sent_to


# The rate limit and the audit trail ---------------------------------------------------


def test_a_session_has_a_rate_bucket_of_its_own_named_by_a_digest() -> None:
    settings = Settings(key_prefix="p:")
    cookie = "Z" * 43

    def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
        return {"type": "http", "headers": headers, "client": ("10.0.0.1", 5)}

    with_cookie = bucket_key(settings, scope([(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())]))
    other = bucket_key(settings, scope([(b"cookie", f"{SESSION_COOKIE}={'Y' * 43}".encode())]))
    bare = bucket_key(settings, scope([]))

    assert with_cookie.startswith("p:rate:session:") and cookie not in with_cookie
    assert len({with_cookie, other, bare}) == 3 and bare == "p:rate:addr:10.0.0.1"


def test_a_login_is_audited_as_its_user_without_a_target_or_the_form() -> None:
    answer = _Answer()
    answer.see({"type": "http.response.start", "status": 303,
                "headers": [(b"location", b"/ui/jobs/abc")]})  # fmt: skip
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/ui/login",
        "headers": [],
        "client": ("10.0.0.1", 5),
        "state": {"principal": Principal("alice", token_id="0123456789abcdef")},
    }

    entry = entry_for(scope, 303, answer)

    assert (entry.action, entry.actor, entry.target) == ("ui.login", "alice", None)
    assert entry.token_id == "0123456789abcdef"
