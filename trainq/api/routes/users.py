"""``/users`` and ``/tokens``: add users, issue and revoke tokens, disable users (admins).

The same store as ``trainq users`` (:mod:`trainq.cli.users`). A new token is in the
answer once and nowhere else. The audit middleware records every call.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from trainq import connections
from trainq.api.auth import Caller
from trainq.api.models import UNAUTHORIZED, Problem, Responses
from trainq.config import USER_NAME_PATTERN, Settings
from trainq.users.access import Action, decide
from trainq.users.model import IssuedToken, Principal, TokenInfo, User

UserName = Annotated[str, Path(pattern=USER_NAME_PATTERN, description="The user's name")]
TokenId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{16}$", description="The token's id (never the token)")
]


class UserList(BaseModel):
    users: list[User] = Field(description="By name")
    tokens: list[TokenInfo] = Field(description="Every token, revoked ones too, oldest first")


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=USER_NAME_PATTERN, examples=["alice"])
    admin: StrictBool = Field(
        default=False, description="May manage users and read the audit trail"
    )


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: StrictBool = Field(description="true: every token of the user is refused")


class NewToken(BaseModel):
    user: User
    token: str = Field(description="The bearer token: shown only in this answer, never stored")
    token_id: str = Field(description="Its id, for listings and DELETE /tokens/{token_id}")


# Every answer of these routes besides 200/201 and FastAPI's own 422.
_REFUSALS: Responses = {
    **UNAUTHORIZED,
    403: {"model": Problem, "description": "The caller is not an admin"},
    503: {"model": Problem, "description": "Redis does not answer"},
}
_NO_USER: Responses = {404: {"model": Problem, "description": "No such user"}}
_BODY: Responses = {
    400: {"model": Problem, "description": "The body is not JSON"},
    413: {"model": Problem, "description": "Body over the size limit"},
}


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["users"])

    def admin_only(principal: Principal) -> None:
        if decide(principal, Action.MANAGE_USERS) != "allowed":
            raise HTTPException(403, f"only an admin may manage users: {principal.name} is not one")

    @api.get("/users", response_model=UserList, responses=_REFUSALS, summary="Users and tokens")
    def list_users(principal: Caller) -> UserList:
        """Every user and every token (ids, never secrets)."""
        admin_only(principal)
        store = connections.users(settings)
        return UserList(users=store.list(), tokens=store.tokens())

    @api.post(
        "/users",
        status_code=201,
        response_model=NewToken,
        responses={
            **_REFUSALS,
            **_BODY,
            409: {"model": Problem, "description": "The name is taken"},
        },
        summary="Add a user and issue their first token",
    )
    def add_user(principal: Caller, body: NewUser, response: Response) -> NewToken:
        """The answer holds the user's token: it is shown only now."""
        admin_only(principal)
        user, issued = connections.users(settings).add(body.name, admin=body.admin)
        response.headers["Location"] = f"/users/{user.name}"
        return _new_token(user, issued)

    @api.post(
        "/users/{name}/tokens",
        status_code=201,
        response_model=NewToken,
        responses={**_REFUSALS, **_NO_USER},
        summary="Issue another token for a user",
    )
    def issue_token(principal: Caller, name: UserName) -> NewToken:
        """The answer holds the new token: it is shown only now."""
        admin_only(principal)
        store = connections.users(settings)
        user = store.get(name)
        return _new_token(user, store.issue(name))

    @api.patch(
        "/users/{name}",
        response_model=User,
        responses={**_REFUSALS, **_BODY, **_NO_USER},
        summary="Disable or enable a user",
    )
    def change_user(principal: Caller, name: UserName, body: UserChange) -> User:
        """A disabled user's tokens are refused until the user is enabled again."""
        admin_only(principal)
        store = connections.users(settings)
        return store.disable(name) if body.disabled else store.enable(name)

    @api.delete(
        "/tokens/{token_id}",
        response_model=TokenInfo,
        responses={**_REFUSALS, 404: {"model": Problem, "description": "No such token"}},
        summary="Revoke a token",
    )
    def revoke_token(principal: Caller, token_id: TokenId) -> TokenInfo:
        """The token is refused from now on; revoking it again changes nothing."""
        admin_only(principal)
        return connections.users(settings).revoke(token_id)

    return api


def _new_token(user: User, issued: IssuedToken) -> NewToken:
    return NewToken(user=user, token=issued.secret, token_id=issued.info.id)
