"""Users and tokens over the REST API (``/users``, ``/tokens``: admins only), for
``trainq users`` in remote mode: what :class:`~trainq.users.store.RedisUsers` does,
with the same exceptions. The API records each change in its audit trail."""

from __future__ import annotations

import builtins
import time
from typing import Any
from urllib.parse import quote

from trainq.errors import Forbidden, UserExists, UserNotFound
from trainq.remote import scheduling
from trainq.remote.answers import Errors
from trainq.remote.http import ApiClient
from trainq.users.model import IssuedToken, TokenInfo, User

_ERRORS: Errors = {403: Forbidden, 404: UserNotFound, 409: UserExists}


class RemoteUsers:
    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def add(self, name: str, admin: bool = False) -> tuple[User, IssuedToken]:
        body = {"name": name, "admin": admin}
        made = self._api.fetch("POST", "/users", json=body, errors=_ERRORS)
        return User.model_validate(made["user"]), _issued(made)

    def issue(self, name: str) -> IssuedToken:
        return _issued(self._api.fetch("POST", f"{_user_path(name)}/tokens", errors=_ERRORS))

    def revoke(self, token_id: str) -> TokenInfo:
        path = f"/tokens/{quote(token_id, safe='')}"
        return TokenInfo.model_validate(self._api.fetch("DELETE", path, errors=_ERRORS))

    def disable(self, name: str) -> User:
        return self._set_disabled(name, True)

    def enable(self, name: str) -> User:
        return self._set_disabled(name, False)

    def list(self) -> builtins.list[User]:
        return [User.model_validate(u) for u in self._everything()["users"]]

    def tokens(self, name: str | None = None) -> builtins.list[TokenInfo]:
        found = self._everything()
        if name is not None and name not in {u["name"] for u in found["users"]}:
            raise UserNotFound(f"no user named {name!r}")
        infos = [TokenInfo.model_validate(t) for t in found["tokens"]]
        return [t for t in infos if name is None or t.user == name]

    def quota(self, owner: str) -> scheduling.OwnerQuota:
        """GET /users/{name}/quota: the owner's policy and the cluster's defaults."""
        return scheduling.quota(self._api, owner)

    def change_quota(self, owner: str, fields: dict[str, Any]) -> scheduling.OwnerQuota:
        """PATCH /users/{name}/quota: ``fields`` merged in (None: back to the default)."""
        return scheduling.change_quota(self._api, owner, fields)

    def _everything(self) -> dict[str, Any]:
        found: dict[str, Any] = self._api.fetch("GET", "/users", errors=_ERRORS)
        return found

    def _set_disabled(self, name: str, disabled: bool) -> User:
        body = {"disabled": disabled}
        changed = self._api.fetch("PATCH", _user_path(name), json=body, errors=_ERRORS)
        return User.model_validate(changed)


def _user_path(name: str) -> str:
    return f"/users/{quote(name, safe='')}"


def _issued(made: dict[str, Any]) -> IssuedToken:
    user = str(made["user"]["name"])
    info = TokenInfo(id=str(made["token_id"]), user=user, created_at=time.time())
    return IssuedToken(info=info, secret=str(made["token"]))
