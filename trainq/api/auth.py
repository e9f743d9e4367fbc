"""Bearer tokens: every endpoint but ``/health`` (and ``/metrics`` if public) needs one."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_scheme = HTTPBearer(
    auto_error=False,
    description="A token from the server's TRAINQ_API_TOKENS setting",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)]


class TokenCheck:
    """A dependency that accepts a request carrying one of ``tokens``.

    With no tokens the API is open: only ``dev_mode`` allows that (see
    :func:`trainq.api.app.create_app`).
    """

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [token.encode() for token in tokens]

    def __call__(self, credentials: Credentials) -> None:
        if not self._tokens:
            return
        if credentials is None:
            raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        given = credentials.credentials.encode()
        # Compare with every token in constant time, so timing reveals none of them.
        if not any([hmac.compare_digest(given, token) for token in self._tokens]):
            raise _unauthorized("invalid bearer token")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )
