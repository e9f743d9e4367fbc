"""Who is asking: users, their tokens as stored (never the secret), and the principal
a request or a direct client acts as."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from trainq.config import USER_NAME_PATTERN

# The owner of jobs submitted with a TRAINQ_API_TOKENS token (the API's first tokens,
# from before users existed): an admin.
ENV_TOKEN_USER = "admin"
# The API's caller in dev mode when it sends no token (an open API on a dev machine).
DEV_USER = "dev"


class User(BaseModel):
    """A user as stored: no secret."""

    name: str = Field(pattern=USER_NAME_PATTERN)
    admin: bool = False
    disabled: bool = False
    created_at: float


class TokenInfo(BaseModel):
    """A token as stored and listed: its id, whose it is, when made and last used."""

    id: str
    user: str
    created_at: float
    last_used_at: float | None = None
    revoked: bool = False


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``secret`` is the whole bearer token (``tq_<id>_<secret>``), shown
    once, to whoever issued it, and never stored (only its secret part's sha256 is)."""

    info: TokenInfo
    secret: str


@dataclass(frozen=True)
class Principal:
    """Whom a call acts for: the owner of what it submits, checked by
    :func:`trainq.users.access.decide`. ``token_id`` is None for TRAINQ_API_TOKENS,
    dev mode and direct (Redis) clients."""

    name: str
    admin: bool = False
    token_id: str | None = None
