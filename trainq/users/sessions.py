"""Login sessions of the web page (``/ui``): a cookie's secret stands for a principal.

Logging in with a token (``POST /ui/login``) creates a session: a random secret (32
bytes, URL-safe) goes to the browser as the cookie's value, and only its sha256 is
written, as the key (:meth:`~trainq.store.keys.Keys.session`) of a JSON string with a
TTL: who (user, admin, the id of the token that logged in), the session's CSRF token,
when it was made and when it expires. Redis forgets it when it expires; the cookie's
``Max-Age`` is the same TTL.

Reading a session is one round trip (a Lua script): the session, and for a user's token
whether that token is revoked and the user's current record. A revoked token, a
disabled or removed user ends every session it opened, at once. A session opened with
one of ``TRAINQ_API_TOKENS`` (no token id) is the API's to judge: see
:class:`trainq.api.auth.Authenticate`.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Protocol, cast

import redis
from pydantic import BaseModel, ValidationError

from trainq.errors import UserNotFound
from trainq.store.keys import Keys
from trainq.users.model import Principal, User
from trainq.users.protocols import UserStore

# The cookie that carries a session's secret.
SESSION_COOKIE = "trainq_session"
_SECRET_BYTES = 32
_CSRF_BYTES = 32
# What a cookie value must look like before it is looked up (43 URL-safe characters).
_SECRET = re.compile(r"[A-Za-z0-9_\-]{43}")

# KEYS[1]: the session. ARGV[1], ARGV[2]: the token and user key prefixes. Answers {}
# (no session) or {session JSON, the token's revoked flag ('' when the session names no
# token or the token is gone), the user's JSON ('' when gone or no token)}. The token's
# and user's keys are built here, undeclared, which a single Redis (trainq's) allows.
_READ = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {} end
local token_id = cjson.decode(raw)['token_id']
if type(token_id) ~= 'string' then return {raw, '', ''} end
local revoked = redis.call('HGET', ARGV[1] .. token_id, 'revoked') or ''
local name = redis.call('HGET', ARGV[1] .. token_id, 'user') or ''
local user = ''
if name ~= '' then user = redis.call('GET', ARGV[2] .. name) or '' end
return {raw, revoked, user}
"""


class Session(BaseModel):
    """A login session as stored (never its secret): whom it acts for and its CSRF token."""

    user: str
    admin: bool
    token_id: str | None  # None: logged in with one of TRAINQ_API_TOKENS
    csrf: str
    created_at: float
    expires_at: float

    def principal(self) -> Principal:
        return Principal(self.user, admin=self.admin, token_id=self.token_id)


def digest(secret: str) -> str:
    """What is stored of a cookie's secret: its sha256, in hex (32 random bytes need no
    slow hash: nothing guesses them)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def well_formed(cookie_value: str | None) -> bool:
    """Whether ``cookie_value`` has a session secret's shape (anything else is never
    looked up)."""
    return cookie_value is not None and _SECRET.fullmatch(cookie_value) is not None


def new_session(principal: Principal, now: float, ttl_s: float) -> tuple[str, Session]:
    """A fresh secret (the cookie's value) and the session it will stand for."""
    session = Session(
        user=principal.name,
        admin=principal.admin,
        token_id=principal.token_id,
        csrf=secrets.token_urlsafe(_CSRF_BYTES),
        created_at=now,
        expires_at=now + ttl_s,
    )
    return secrets.token_urlsafe(_SECRET_BYTES), session


def still_valid(session: Session, revoked: str, user_json: str) -> Session | None:
    """The session as it stands now, given its token's revoked flag and its user's
    record as read with it: None when the token is revoked or gone, the user gone or
    disabled; with the user's current admin flag otherwise. A session without a token
    id (TRAINQ_API_TOKENS) is returned as it is."""
    if session.token_id is None:
        return session
    if revoked != "0" or not user_json:
        return None
    try:
        user = User.model_validate_json(user_json)
    except ValidationError:
        return None
    if user.disabled or user.name != session.user:
        return None
    return session.model_copy(update={"admin": user.admin})


class Sessions(Protocol):
    ttl_s: float

    def create(self, principal: Principal) -> tuple[str, Session]:
        """A new session of ``principal``: the cookie's value (shown once) and the session."""

    def get(self, cookie_value: str | None) -> Session | None:
        """The live session of ``cookie_value``; None when it is malformed, unknown or
        expired, or its token revoked or its user disabled."""

    def delete(self, cookie_value: str | None) -> None:
        """End the session of ``cookie_value`` (nothing when there is none)."""


class RedisSessions:
    """Sessions in Redis under ``keys``' prefix, each living ``ttl_s``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._keys = keys
        self.ttl_s = ttl_s
        self._clock = clock
        self._read = client.register_script(_READ)

    def create(self, principal: Principal) -> tuple[str, Session]:
        """A new session of ``principal``: the cookie's value (shown once) and the session."""
        secret, session = new_session(principal, self._clock(), self.ttl_s)
        key = self._keys.session(digest(secret))
        self._redis.set(key, session.model_dump_json(), px=max(1, int(self.ttl_s * 1000)))
        return secret, session

    def get(self, cookie_value: str | None) -> Session | None:
        """The live session of ``cookie_value``; None when it is malformed, unknown or
        expired, or its token revoked or its user disabled."""
        if not well_formed(cookie_value):
            return None
        assert cookie_value is not None
        # The key is the secret's digest: Redis finds it, no secret is compared here.
        keys = [self._keys.session(digest(cookie_value))]
        found = cast(
            builtins.list[str],
            self._read(keys=keys, args=[self._keys.token(""), self._keys.user("")]),
        )
        if not found:
            return None
        try:
            session = Session.model_validate_json(found[0])
        except ValidationError:
            return None
        if session.expires_at <= self._clock():  # Redis's TTL is the rule; this, a backstop
            return None
        return still_valid(session, found[1], found[2])

    def delete(self, cookie_value: str | None) -> None:
        """End the session of ``cookie_value`` (nothing when there is none)."""
        if well_formed(cookie_value):
            assert cookie_value is not None
            self._redis.delete(self._keys.session(digest(cookie_value)))


class MemorySessions:
    """The in-memory twin for unit tests, judging tokens and users by ``users``."""

    def __init__(
        self, users: UserStore, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._users = users
        self.ttl_s = ttl_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}  # by the digest of the secret
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> tuple[str, Session]:
        secret, session = new_session(principal, self._clock(), self.ttl_s)
        with self._lock:
            self._sessions[digest(secret)] = session
        return secret, session

    def get(self, cookie_value: str | None) -> Session | None:
        if not well_formed(cookie_value):
            return None
        assert cookie_value is not None
        with self._lock:
            session = self._sessions.get(digest(cookie_value))
        if session is None or session.expires_at <= self._clock():
            return None
        if session.token_id is None:
            return session
        try:
            user_json = self._users.get(session.user).model_dump_json()
            tokens = {t.id: t for t in self._users.tokens(session.user)}
        except UserNotFound:
            return None
        token = tokens.get(session.token_id)
        revoked = "" if token is None else ("1" if token.revoked else "0")
        return still_valid(session, revoked, user_json)

    def delete(self, cookie_value: str | None) -> None:
        if well_formed(cookie_value):
            assert cookie_value is not None
            with self._lock:
                self._sessions.pop(digest(cookie_value), None)
