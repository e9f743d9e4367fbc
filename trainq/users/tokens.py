"""Bearer tokens: ``tq_<id>_<secret>``, stored only as the sha256 of the secret.

The id (16 hex digits) names the token in listings, audit entries and ``revoke``;
the secret (43 URL-safe characters: 32 random bytes) is shown once, when issued.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from trainq.errors import NotAuthenticated

TOKEN_PREFIX = "tq"
_ID_BYTES = 8
_SECRET_BYTES = 32
_TOKEN = re.compile(r"tq_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_\-]{43,128})")
_ID = re.compile(r"[0-9a-f]{16}")
_SHAPE = "expected tq_<16 hex digits>_<43 or more URL-safe characters>"


def new_token() -> tuple[str, str, str]:
    """A fresh token: its id, its secret, and the whole token to hand out."""
    token_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return token_id, secret, f"{TOKEN_PREFIX}_{token_id}_{secret}"


def parse(token: str) -> tuple[str, str]:
    """The id and secret of ``token``; NotAuthenticated when it has not the token's shape.

    The message describes the shape only: a token pasted in the wrong place must never
    end up in a log.
    """
    found = _TOKEN.fullmatch(token)
    if found is None:
        raise NotAuthenticated(f"malformed bearer token: {_SHAPE}")
    return found["id"], found["secret"]


def is_token_id(text: str) -> bool:
    """Whether ``text`` has a token id's shape (safe to echo, unlike a whole token)."""
    return _ID.fullmatch(text) is not None


def digest(secret: str) -> str:
    """What is stored of a secret: its sha256, in hex.

    A fast hash is right here, unlike for passwords: the secret is 32 random bytes,
    so no dictionary or brute force gets anywhere near it, and a slow hash (bcrypt)
    would only cost every API request its time.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    """Whether ``secret`` is the one ``stored_digest`` was made from (constant time)."""
    return hmac.compare_digest(digest(secret).encode("utf-8"), stored_digest.encode("utf-8"))
