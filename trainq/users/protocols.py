"""What the rest of trainq may ask of the users' store, and the rules both stores keep.

Implemented in Redis (:mod:`trainq.users.store`) and in memory for unit tests
(:mod:`trainq.users.memory`).
"""

from __future__ import annotations

import builtins
import math
import re
from typing import Protocol

from trainq.config import USER_NAME_PATTERN
from trainq.errors import RateLimited
from trainq.store.rates import Rate
from trainq.users.model import IssuedToken, Principal, TokenInfo, User
from trainq.users.tokens import is_token_id

# A token's last_used_at is rewritten at most this often: a busy client costs one
# write a minute, not one per request, and "last used" needs no finer grain.
LAST_USED_RESOLUTION_S = 60.0

UNKNOWN_TOKEN = "unknown or revoked token"
_NAME = re.compile(USER_NAME_PATTERN)


class UserStore(Protocol):
    def add(self, name: str, admin: bool = False) -> tuple[User, IssuedToken]:
        """A new user and its first token; UserExists when the name is taken,
        ValueError (naming the rule) when the name is not a valid user name."""

    def get(self, name: str) -> User:
        """The user, or :class:`~trainq.errors.UserNotFound`."""

    def list(self) -> builtins.list[User]:
        """Every user, by name."""

    def tokens(self, name: str | None = None) -> builtins.list[TokenInfo]:
        """Every token (revoked ones too), or ``name``'s (UserNotFound), oldest first."""

    def issue(self, name: str) -> IssuedToken:
        """Another token for ``name`` (enabled or not); UserNotFound."""

    def revoke(self, token_id: str) -> TokenInfo:
        """Mark the token revoked (again is fine); UserNotFound for an unknown id."""

    def disable(self, name: str) -> User:
        """Refuse every token of ``name`` until enabled again; UserNotFound."""

    def enable(self, name: str) -> User:
        """Accept ``name``'s live tokens again; UserNotFound."""

    def authenticate(self, token: str, rate: Rate | None = None) -> Principal:
        """Whom ``token`` acts for; NotAuthenticated (never quoting the token) when it is
        malformed, unknown, revoked, or its user is disabled. With ``rate``, the request
        is counted against the token's bucket in the same round trip, and one over it
        raises RateLimited (with the seconds to wait)."""


def check_name(name: str) -> None:
    """ValueError naming the rule when ``name`` is not a valid user name."""
    if _NAME.fullmatch(name) is None:
        raise ValueError(
            f"invalid user name {name!r}: 1 to 64 letters, digits and '_.@-', starting "
            f"with a letter or digit (pattern {USER_NAME_PATTERN})"
        )


def name_taken(name: str) -> str:
    return f"the user name {name!r} is taken"


def user_not_found(name: str) -> str:
    return f"no user named {name!r}"


def token_not_found(token_id: str) -> str:
    if not is_token_id(token_id):  # perhaps a whole token: never echo it
        return "no token with that id: a token id is 16 hex digits (trainq users tokens)"
    return f"no token with id {token_id}"


def over_rate(rate: Rate, retry_after_s: float) -> RateLimited:
    """The refusal of a request over its token's rate."""
    wait_s = max(1, math.ceil(retry_after_s))
    return RateLimited(
        f"too many requests: the limit is {rate.per_s:g} per second per token, bursts of "
        f"{rate.burst}; retry after {wait_s} s",
        retry_after_s,
    )
