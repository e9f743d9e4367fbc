"""``trainq users``: add users, issue and revoke their API tokens, disable and enable them.

On a host that reaches Redis they talk to it directly, and each change (or refusal)
is one audit entry, actor ``TRAINQ_USER``, address "local". With a remote API (as for
job commands: TRAINQ_API_URL, or ``trainq login``), they go through its admin routes
with the caller's token, and the API audits them. A new token is printed alone on
stdout, once; it is never stored, logged or audited. Exit codes: 1 no such user or
token, the name is taken, or the caller is no admin; 2 an invalid name; 3 Redis or
the API does not answer.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from trainq import connections
from trainq.audit.trail import AuditEntry
from trainq.cli.app import cli, err, fail, out
from trainq.cli.render import clock
from trainq.config import get_settings
from trainq.config.login import remote_api
from trainq.errors import ConfigError, UserExists, UserNotFound
from trainq.remote.http import ApiClient
from trainq.remote.users import RemoteUsers
from trainq.users.model import IssuedToken, TokenInfo
from trainq.users.protocols import UserStore
from trainq.users.tokens import is_token_id

users_cli = typer.Typer(
    name="users",
    help="Users and their API tokens (talks to Redis: run it where Redis answers).",
    no_args_is_help=True,
)
cli.add_typer(users_cli, name="users")

UserName = Annotated[str, typer.Argument(help="The user's name")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


@users_cli.command("add")
def add(
    name: UserName,
    admin: Annotated[bool, typer.Option("--admin", help="May manage users and see all")] = False,
) -> None:
    """Add a user; print their first token (shown only now) alone on stdout."""
    try:
        user, issued = _store().add(name, admin=admin)
    except UserExists as exc:
        raise _refused("users.add", name, exc, code=1, answer=409) from None
    except ValueError as exc:
        raise _refused("users.add", name, exc, code=2, answer=422) from None
    role = "admin" if user.admin else "user"
    _audit("users.add", 200, name, detail=f"added ({role})", token_id=issued.info.id)
    _show(issued, f"user {name} added ({role}); token id {issued.info.id}.")


@users_cli.command("token")
def token(name: UserName) -> None:
    """Issue another token for a user; print it (shown only now) alone on stdout."""
    try:
        issued = _store().issue(name)
    except UserNotFound as exc:
        raise _refused("users.token", name, exc, code=1, answer=404) from None
    _audit("users.token", 200, name, detail="token issued", token_id=issued.info.id)
    _show(issued, f"token id {issued.info.id} issued to {name}.")


@users_cli.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id")]) -> None:
    """Revoke a token: it is refused from now on."""
    # Never echo a whole token pasted where its id belongs.
    target = token_id if is_token_id(token_id) else "(not a token id)"
    try:
        info = _store().revoke(token_id)
    except UserNotFound as exc:
        raise _refused("tokens.revoke", target, exc, code=1, answer=404) from None
    _audit("tokens.revoke", 200, info.id, detail=f"token of {info.user} revoked")
    out.print(f"token {info.id} of {info.user} revoked", markup=False, highlight=False)


@users_cli.command("disable")
def disable(name: UserName) -> None:
    """Disable a user: every token of theirs is refused until enabled again."""
    _set_disabled(name, True)


@users_cli.command("enable")
def enable(name: UserName) -> None:
    """Enable a disabled user: their live tokens work again."""
    _set_disabled(name, False)


@users_cli.command("list")
def list_(as_json: AsJson = False) -> None:
    """Users by name: role, state, how many live tokens, when added."""
    store = _store()
    users = store.list()
    live: dict[str, int] = {}
    for info in store.tokens():
        live[info.user] = live.get(info.user, 0) + (not info.revoked)
    if as_json:
        rows = [{**u.model_dump(mode="json"), "live_tokens": live.get(u.name, 0)} for u in users]
        out.print_json(json.dumps({"users": rows}))
        return
    table = _table("name", "role", "state", "live tokens", "created")
    for user in users:
        table.add_row(
            escape(user.name),
            "admin" if user.admin else "user",
            "disabled" if user.disabled else "enabled",
            str(live.get(user.name, 0)),
            clock(user.created_at),
        )
    out.print(table)


@users_cli.command("tokens")
def tokens(
    name: Annotated[str | None, typer.Argument(help="Only this user's tokens")] = None,
    as_json: AsJson = False,
) -> None:
    """Tokens, oldest first: id, user, created, last used, revoked (never a secret)."""
    try:
        infos = _store().tokens(name)
    except UserNotFound as exc:
        raise fail(escape(str(exc)), 1) from None
    if as_json:
        out.print_json(json.dumps({"tokens": [t.model_dump(mode="json") for t in infos]}))
        return
    table = _table("id", "user", "created", "last used", "revoked")
    for info in infos:
        table.add_row(*_token_row(info))
    out.print(table)


def _set_disabled(name: str, disabled: bool) -> None:
    action = "users.disable" if disabled else "users.enable"
    store = _store()
    try:
        user = store.disable(name) if disabled else store.enable(name)
    except UserNotFound as exc:
        raise _refused(action, name, exc, code=1, answer=404) from None
    state = "disabled" if user.disabled else "enabled"
    _audit(action, 200, name, detail=state)
    out.print(f"user {name} {state}", markup=False, highlight=False)


def _store() -> UserStore | RemoteUsers:
    """Redis's users, or the remote API's (its token must be an admin's)."""
    settings = get_settings()
    try:
        remote = remote_api(settings)
        if remote is None:
            return connections.users(settings)
        return RemoteUsers(ApiClient(*remote, settings.api_timeout_s))
    except ConfigError as exc:
        raise fail(escape(str(exc)), 2) from None


def _show(issued: IssuedToken, what: str) -> None:
    """The token alone on stdout (``TOKEN=$(trainq users add bob)``); how to use it on
    stderr."""
    settings = get_settings()
    remote = remote_api(settings)
    api_url = (remote[0] if remote else settings.api_url) or "<API URL>"
    user = issued.info.user
    err.print(
        f"{what} The token is shown only now: give it to {user}, who runs: "
        f"trainq login {api_url} --token <token>",
        markup=False,
        highlight=False,
    )
    out.print(issued.secret, markup=False, highlight=False, soft_wrap=True)


def _refused(action: str, target: str, exc: Exception, code: int, answer: int) -> typer.Exit:
    _audit(action, answer, target, detail=str(exc))
    return fail(escape(str(exc)), code)


def _audit(action: str, answer: int, target: str, detail: str, token_id: str | None = None) -> None:
    if remote_api(get_settings()) is not None:
        return  # the API recorded it, with who asked and from where
    entry = AuditEntry(
        actor=get_settings().user,
        action=action,
        answer=answer,
        target=target,
        address="local",
        detail=detail,
        token_id=token_id,
    )
    connections.audit_trail().record(entry)


def _table(*columns: str) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def _token_row(info: TokenInfo) -> tuple[str, str, str, str, str]:
    last_used = clock(info.last_used_at) if info.last_used_at is not None else "never"
    revoked = "revoked" if info.revoked else ""
    return info.id, escape(info.user), clock(info.created_at), last_used, revoked
