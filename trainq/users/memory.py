"""The in-memory twin of the users' store for unit tests: the same contract as Redis's."""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable

from trainq.errors import NotAuthenticated, UserExists, UserNotFound
from trainq.store.rates import MemoryBuckets, Rate
from trainq.users import tokens
from trainq.users.model import IssuedToken, Principal, TokenInfo, User
from trainq.users.protocols import (
    LAST_USED_RESOLUTION_S,
    UNKNOWN_TOKEN,
    check_name,
    name_taken,
    over_rate,
    token_not_found,
    user_not_found,
)


class MemoryUsers:
    """Users and tokens in dicts; ``clock`` gives the time (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._users: dict[str, User] = {}
        self._tokens: dict[str, TokenInfo] = {}
        self._digests: dict[str, str] = {}  # token id -> sha256 of its secret
        self._buckets = MemoryBuckets()  # request rates by token id
        self._lock = threading.Lock()

    def add(self, name: str, admin: bool = False) -> tuple[User, IssuedToken]:
        check_name(name)
        with self._lock:
            if name in self._users:
                raise UserExists(name_taken(name))
            user = User(name=name, admin=admin, created_at=self._clock())
            self._users[name] = user
            return user, self._issue(name)

    def get(self, name: str) -> User:
        with self._lock:
            return self._user(name)

    def list(self) -> builtins.list[User]:
        with self._lock:
            return sorted(self._users.values(), key=lambda u: u.name)

    def tokens(self, name: str | None = None) -> builtins.list[TokenInfo]:
        with self._lock:
            if name is not None:
                self._user(name)
            chosen = [t for t in self._tokens.values() if name is None or t.user == name]
        return sorted(chosen, key=lambda t: (t.created_at, t.id))

    def issue(self, name: str) -> IssuedToken:
        with self._lock:
            self._user(name)
            return self._issue(name)

    def revoke(self, token_id: str) -> TokenInfo:
        with self._lock:
            info = self._tokens.get(token_id)
            if info is None:
                raise UserNotFound(token_not_found(token_id))
            info = info.model_copy(update={"revoked": True})
            self._tokens[token_id] = info
            return info

    def disable(self, name: str) -> User:
        return self._set_disabled(name, True)

    def enable(self, name: str) -> User:
        return self._set_disabled(name, False)

    def authenticate(self, token: str, rate: Rate | None = None) -> Principal:
        token_id, secret = tokens.parse(token)
        now = self._clock()
        with self._lock:
            info = self._tokens.get(token_id)
            stored = self._digests.get(token_id, "")
            user = self._users.get(info.user) if info is not None else None
            if info is None or user is None or info.revoked:
                raise NotAuthenticated(UNKNOWN_TOKEN)
            if not tokens.matches(secret, stored):
                raise NotAuthenticated(UNKNOWN_TOKEN)
            if user.disabled:
                raise NotAuthenticated(f"user {user.name} is disabled")
            last = info.last_used_at
            if last is None or now - last >= LAST_USED_RESOLUTION_S:
                self._tokens[token_id] = info.model_copy(update={"last_used_at": now})
            wait_s = self._buckets.take(token_id, rate, now) if rate is not None else 0.0
        if rate is not None and wait_s:
            raise over_rate(rate, wait_s)
        return Principal(user.name, admin=user.admin, token_id=token_id)

    def _user(self, name: str) -> User:
        user = self._users.get(name)
        if user is None:
            raise UserNotFound(user_not_found(name))
        return user

    def _issue(self, name: str) -> IssuedToken:
        token_id, secret, token = tokens.new_token()
        info = TokenInfo(id=token_id, user=name, created_at=self._clock())
        self._tokens[token_id] = info
        self._digests[token_id] = tokens.digest(secret)
        return IssuedToken(info=info, secret=token)

    def _set_disabled(self, name: str, disabled: bool) -> User:
        with self._lock:
            user = self._user(name).model_copy(update={"disabled": disabled})
            self._users[name] = user
            return user
